# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tracing hooks of ebpf_attach: tracepoints, raw tracepoints, kprobes, kretprobes, uprobes and
uretprobes, each through a bpf_link pinned at ``links/<program>-<hook>-<target>`` so the
attachment outlives the module; removing the pin detaches it.

Targets:
- tracepoint: ``category/name`` or ``category:name`` (``syscalls/sys_enter_getpid``), resolved
  through tracefs (mounted at /sys/kernel/tracing when no tracefs is mounted);
- raw_tracepoint: the tracepoint's name (``sys_enter``);
- kprobe / kretprobe: a kernel function, optionally ``+offset`` for a kprobe (``do_unlinkat``);
- uprobe / uretprobe: ``/abs/path:function[+offset]`` or ``/abs/path:0xoffset``; instead of a
  path, a library (``libc.so.6:malloc``) or program name, found where libbpf looks (resolve_binary).

A new version of the program gets a new link, pinned over the old one (rename), after which the
old link is released: the hook is never without a program (both may run for an instant).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import time

from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_state import pin_key
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import elf_symbols
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import perf_event
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import (
    ATTACH, LINK_GONE_TIMEOUT, REPLACE, AttachError, Hook, pin_link, prog_facts, read_link,
    unpin_link, wait_link_gone,
)
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

BTF_DIR = "/sys/kernel/btf"
TRACING_HOOKS = ("tracepoint", "raw_tracepoint", "kprobe", "kretprobe", "uprobe", "uretprobe")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_KPROBE_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)(?:\+(0x[0-9a-fA-F]+|[0-9]+))?$")
_UPROBE_FUNC_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.@$]*)(?:\+(0x[0-9a-fA-F]+|[0-9]+))?$")
_OFFSET_RE = re.compile(r"^(0x[0-9a-fA-F]+|[0-9]+)$")
# perf event types a perf_event link reports, per hook
_PERF_TYPES = {"tracepoint": ("tracepoint",), "kprobe": ("kprobe",), "kretprobe": ("kretprobe",),
               "uprobe": ("uprobe",), "uretprobe": ("uretprobe",)}


def _bad_target(hook, target, expected):
    return AttachError("invalid %s target %r" % (hook, target), "invalid_argument", hint="expected %s" % expected)


def parse_target(hook, target):
    """The parts of a tracing target (see the module docstring) as a dict; AttachError when
    it cannot be one."""
    target = (target or "").strip()
    if not target:
        raise AttachError("hook %s needs a target" % hook, "invalid_argument", hint=_EXPECTED[hook])
    if hook == "tracepoint":
        category, _sep, name = target.replace(":", "/", 1).partition("/")
        if not (_NAME_RE.match(category or "") and _NAME_RE.match(name or "")):
            raise _bad_target(hook, target, _EXPECTED[hook])
        return {"category": category, "name": name, "canonical": "%s/%s" % (category, name)}
    if hook == "raw_tracepoint":
        if not _NAME_RE.match(target):
            raise _bad_target(hook, target, _EXPECTED[hook])
        return {"name": target, "canonical": target}
    if hook in ("kprobe", "kretprobe"):
        m = _KPROBE_RE.match(target)
        if not m or (hook == "kretprobe" and m.group(2)):
            raise _bad_target(hook, target, _EXPECTED[hook])
        return {"function": m.group(1), "offset": int(m.group(2) or "0", 0), "canonical": target}
    path, sep, where = target.rpartition(":")
    if not sep or not path or "/" in path and not os.path.isabs(path) or not where:
        raise _bad_target(hook, target, _EXPECTED[hook])
    path = resolve_binary(path)
    if _OFFSET_RE.match(where):
        return {"path": os.path.normpath(path), "function": None, "offset": int(where, 0), "canonical": target}
    m = _UPROBE_FUNC_RE.match(where)
    if not m or (hook == "uretprobe" and m.group(2)):
        raise _bad_target(hook, target, _EXPECTED[hook])
    return {"path": os.path.normpath(path), "function": m.group(1), "offset": int(m.group(2) or "0", 0), "canonical": target}


def _arch_lib_dirs():
    machine = os.uname().machine
    triplet = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}.get(machine, machine + "-linux-gnu")
    return ["/lib/" + triplet, "/usr/lib/" + triplet]


def resolve_binary(name):
    """The file a uprobe target names, found as libbpf finds it: a path as it is; a library
    (``libc.so.6``: a name with ``.so``) in LD_LIBRARY_PATH, /usr/lib64, /usr/lib and the
    architecture's library directories; a program in PATH, /usr/bin and /usr/sbin. An
    unresolved name comes back as it is, and the check for the file names it."""
    if "/" in name:
        return os.path.normpath(name)
    if name.endswith(".so") or ".so." in name:
        dirs = (os.environ.get("LD_LIBRARY_PATH") or "").split(":") + ["/usr/lib64", "/usr/lib"] + _arch_lib_dirs()
        access = os.R_OK
    else:
        dirs = (os.environ.get("PATH") or "").split(":") + ["/usr/bin", "/usr/sbin"]
        access = os.R_OK | os.X_OK
    for directory in dirs:
        candidate = os.path.join(directory, name)
        if directory and os.path.isfile(candidate) and os.access(candidate, access):
            return os.path.realpath(candidate)
    return name


_EXPECTED = {
    "tracepoint": "category/name, for example syscalls/sys_enter_openat",
    "raw_tracepoint": "a tracepoint name, for example sys_enter",
    "kprobe": "a kernel function, optionally with +offset, for example do_unlinkat",
    "kretprobe": "a kernel function, for example do_unlinkat",
    "uprobe": "/absolute/path:function[+offset], library.so.N:function or /absolute/path:0xoffset",
    "uretprobe": "/absolute/path:function, library.so.N:function or /absolute/path:0xoffset",
}


def raw_tracepoint_known(name, btf_dir=BTF_DIR):
    """Whether the kernel has raw tracepoint ``name``: every tracepoint has a ``btf_trace_<name>``
    type in the BTF of the kernel or of its module. None when there is no BTF to look in (the
    kernel decides when attaching)."""
    try:
        files = sorted(os.listdir(btf_dir), key=lambda n: n != "vmlinux")
    except OSError:
        return None
    needle = b"\0btf_trace_" + name.encode("ascii") + b"\0"
    for entry in files:
        try:
            with open(os.path.join(btf_dir, entry), "rb") as f:
                if needle in f.read():
                    return True
        except (IOError, OSError):
            continue
    return False if files else None


class TracingHook(Hook):
    """See the module docstring."""

    def __init__(self, backend, hook):
        super(TracingHook, self).__init__(backend)
        self.name = hook
        self.target = self.parse_target(hook, backend.target)
        self.link_path = os.path.join(self.prog.links_dir, pin_key(self.prog.link_prefix, hook, self.target["canonical"]))
        self.tracefs = None
        self.file_offset = None

    def parse_target(self, hook, target):
        """The target's parts (see parse_target), with at least ``canonical``."""
        return parse_target(hook, target)

    # -- checks before anything changes ------------------------------------------------

    def validate(self):
        """Kernel features and the target's existence, before any change (also in check mode)."""
        hook = self.name
        checks = []
        if hook in ("kprobe", "kretprobe"):
            checks.append((features.require_kprobes, "kprobes_unavailable"))
        elif hook in ("uprobe", "uretprobe"):
            checks.append((features.require_uprobes, "unsupported"))
        if hook != "raw_tracepoint":
            checks.append((lambda: features.require_perf_link("a %s" % hook), "unsupported"))
        for check, error_type in checks:
            try:
                check()
            except BpfError as e:
                raise AttachError(e.msg, error_type, hint=e.hint)
        if hook == "tracepoint":
            self._check_tracepoint()
        elif hook in ("uprobe", "uretprobe"):
            self._resolve_uprobe()

    def _check_tracepoint(self):
        self.tracefs = features.tracefs_root()
        if self.tracefs is None:
            if self.check_mode:
                self.warn("tracefs is not mounted: tracepoint %s could not be checked; the real run mounts it at %s"
                          % (self.target["canonical"], features.TRACEFS_MOUNTPOINT))
                return
            self.tracefs = features.mount_tracefs()
            self.warn("tracefs was not mounted; mounted it at %s" % self.tracefs)
        if perf_event.tracepoint_id(self.target["category"], self.target["name"], self.tracefs) is None:
            raise AttachError("this kernel has no tracepoint %s" % self.target["canonical"], "unknown_target", errno=errno.ENOENT,
                              hint="see %s/available_events for the tracepoints of this kernel" % self.tracefs)

    def _resolve_uprobe(self):
        path = self.target["path"]
        if not os.path.isfile(path):
            raise AttachError("uprobe target file %s does not exist" % path, "unknown_target", errno=errno.ENOENT,
                              hint=None if os.path.isabs(path) else "a library name is looked for in LD_LIBRARY_PATH, "
                              "/usr/lib64, /usr/lib and %s; a program in PATH, /usr/bin and /usr/sbin" % ", ".join(_arch_lib_dirs()))
        offset = self.target["offset"]
        if self.target["function"]:
            try:
                offset += elf_symbols.function_offset(path, self.target["function"])
            except BpfError as e:
                raise AttachError(e.msg, "unknown_target", errno=e.errno, hint=e.hint)
        self.file_offset = offset

    # -- kernel state -----------------------------------------------------------------

    def read(self):
        return {"link": read_link(self.link_path)}

    def _matches(self, link):
        """The pinned link is the attachment this hook and target describe."""
        if self.name == "raw_tracepoint":
            return link.get("type_name") == "raw_tracepoint" and link.get("tp_name") == self.target["name"]
        if link.get("type_name") != "perf_event":
            return False
        if "perf_event_type_name" not in link:
            # Kernels before 6.6 report nothing about a perf_event link's event: the link
            # pinned at this hook's path (named for hook and target) is the one this hook made.
            return True
        if link.get("perf_event_type_name") not in _PERF_TYPES[self.name]:
            return False
        if self.name == "tracepoint":
            return link.get("tp_name") == self.target["name"]
        if self.name in ("kprobe", "kretprobe"):
            return link.get("func_name") == self.target["function"]
        return link.get("file_name") == self.target["path"]  # the kernel reports the path it was given

    def attached(self, state):
        link = state["link"]
        return bool(link and link["prog_id"] == self.prog.id and self._matches(link))

    def holds_ours(self, state):
        return state["link"] is not None

    def needs_attach(self, state):
        if self.attached(state):
            return None
        if self.name == "raw_tracepoint" and self.check_mode and raw_tracepoint_known(self.target["name"]) is False:
            # a real run learns this from the kernel when attaching
            raise AttachError("this kernel has no raw tracepoint %s" % self.target["name"], "unknown_target", errno=errno.ENOENT)
        return REPLACE if state["link"] is not None else ATTACH

    # -- changes --------------------------------------------------------------------------

    def _open_link(self):
        hook, t = self.name, self.target
        if hook == "raw_tracepoint":
            try:
                return sc.raw_tracepoint_open(t["name"], self.prog.fd)
            except BpfError as e:
                if e.errno == errno.ENOENT:
                    raise AttachError("this kernel has no raw tracepoint %s" % t["name"], "unknown_target", errno=e.errno)
                raise
        if hook == "tracepoint":
            perf = perf_event.open_tracepoint(t["category"], t["name"], self.tracefs)
        elif hook in ("kprobe", "kretprobe"):
            try:
                perf = perf_event.open_probe("kprobe", t["function"], t["offset"], hook == "kretprobe", "%s %s" % (hook, t["canonical"]))
            except BpfError as e:
                if e.errno == errno.ENOENT:
                    raise AttachError(e.msg, "unknown_target", errno=e.errno, hint=e.hint)
                raise
        else:
            perf = perf_event.open_probe("uprobe", t["path"], self.file_offset, hook == "uretprobe", "%s %s" % (hook, t["canonical"]))
        with perf:
            return perf_event.link_perf_event(self.prog.fd, perf, "%s %s" % (hook, t["canonical"]))

    def _open_link_retrying(self):
        """_open_link, waiting while the kernel still releases an earlier link of this program
        to the same target: the link's id goes first, its hook a moment later (EEXIST)."""
        deadline = time.monotonic() + LINK_GONE_TIMEOUT
        delay = 0.0005
        while True:
            try:
                return self._open_link()
            except BpfError as e:
                if e.errno != errno.EEXIST:
                    raise
                if time.monotonic() > deadline:
                    raise AttachError("%s is already attached to %s %s through a link this task does not manage"
                                      % (self.prog.label, self.name, self.target["canonical"]), "foreign_program",
                                      errno=errno.EEXIST,
                                      hint="find it with `bpftool link show` and remove it (unpin it or end the process holding it)")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def attach(self, state, action):
        with self._open_link_retrying() as link:
            pin_link(link, self.link_path)
        old = state["link"]
        if action == REPLACE and old is not None:
            wait_link_gone(old["id"], "the previous %s link" % self.name)

    def detach(self, state):
        unpin_link(self.link_path, "%s link of %s" % (self.name, self.prog.label))

    # -- views ----------------------------------------------------------------------------

    def _view(self, link_id, prog_id, name):
        return {"hook": self.name, "target": self.target["canonical"], "link_id": link_id, "link_pin": self.link_path,
                "prog_id": prog_id, "prog_name": name}

    def view(self, state):
        link = state["link"]
        if link is None:
            return {}
        return self._view(link["id"], link["prog_id"], (prog_facts(link["prog_id"]) or {}).get("name"))

    def predict(self, state, action):
        return self._view(None, self.prog.id, self.prog.info["name"])
