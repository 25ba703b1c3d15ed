# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logic behind the ebpf_attach module: find the pinned program, work out the hook, let the
hook decide from the kernel what to do, do it, verify it, and count failures in the event file.

Every input is checked before anything changes: the program's pin, the hook against the
program's type, the target, the kernel features the hook needs, the interface.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_state import pin_key
from ansible_collections.ebpf.observability.plugins.module_utils.state import attach_events
from ansible_collections.ebpf.observability.plugins.module_utils.state import attach_record
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import capabilities
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import (
    AttachError, ProgramRef, error_type_of, prog_label, read_link, unpin_link,
)
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_btf import BTF_HOOKS, BtfTracingHook
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_multi import MULTI_HOOKS, MultiProbeHook
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_perf import PerfEventHook
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_usdt import UsdtHook
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_tc import DIRECTIONS, TcHook
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_tracing import (
    TRACING_HOOKS, TracingHook,
)
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_xdp import XdpHook
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpffs import DEFAULT_PIN_ROOT
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import named_sections
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink

NETWORK_HOOKS = ("xdp", "tc")
HOOKS = ("auto",) + NETWORK_HOOKS + TRACING_HOOKS + BTF_HOOKS + MULTI_HOOKS + ("perf_event", "usdt")
# program types (as the kernel names them) each hook accepts
HOOK_PROG_TYPES = {
    "xdp": ("xdp",),
    "tc": ("sched_cls",),
    "tracepoint": ("tracepoint",),
    "raw_tracepoint": ("raw_tracepoint", "raw_tracepoint_writable"),
    "kprobe": ("kprobe",), "kretprobe": ("kprobe",), "uprobe": ("kprobe",), "uretprobe": ("kprobe",),
    "tp_btf": ("tracing",), "fentry": ("tracing",), "fexit": ("tracing",), "fmod_ret": ("tracing",), "lsm": ("lsm",),
    "perf_event": ("perf_event",), "usdt": ("kprobe",),
}
HOOK_PROG_TYPES.update((hook, ("kprobe",)) for hook in MULTI_HOOKS)
HOOK_FOR_PROG_TYPE = {"xdp": "xdp", "sched_cls": "tc", "tracepoint": "tracepoint", "raw_tracepoint": "raw_tracepoint",
                      "raw_tracepoint_writable": "raw_tracepoint", "lsm": "lsm", "perf_event": "perf_event"}
# libbpf section prefixes -> hook
SECTION_HOOKS = {
    "xdp": "xdp", "xdp.frags": "xdp",
    "tc": "tc", "classifier": "tc", "tcx": "tc",
    "tracepoint": "tracepoint", "tp": "tracepoint",
    "raw_tracepoint": "raw_tracepoint", "raw_tp": "raw_tracepoint",
    "raw_tracepoint.w": "raw_tracepoint", "raw_tp.w": "raw_tracepoint",
    "kprobe": "kprobe", "kretprobe": "kretprobe",
    "uprobe": "uprobe", "uretprobe": "uretprobe", "uprobe.s": "uprobe", "uretprobe.s": "uretprobe",
    "tp_btf": "tp_btf", "fentry": "fentry", "fentry.s": "fentry", "fexit": "fexit", "fexit.s": "fexit",
    "fmod_ret": "fmod_ret", "fmod_ret.s": "fmod_ret", "lsm": "lsm", "lsm.s": "lsm", "perf_event": "perf_event",
    "usdt": "usdt", "kprobe.multi": "kprobe_multi", "kretprobe.multi": "kretprobe_multi",
    "uprobe.multi": "uprobe_multi", "uretprobe.multi": "uretprobe_multi",
}


# libbpf sections whose hooks ebpf_attach does not attach (yet): a clear refusal, not a guess
UNSUPPORTED_SECTIONS = {
    "ksyscall": "syscall kprobes", "kretsyscall": "syscall kretprobes", "uprobe.multi.s": "sleepable multi-uprobes",
    "uretprobe.multi.s": "sleepable multi-uretprobes",
}


def hook_from_section(section):
    """(hook, target, direction) that a libbpf section name implies; (None, None, None) when it
    names no hook ebpf_attach knows."""
    head, _sep, rest = (section or "").partition("/")
    if head in UNSUPPORTED_SECTIONS:
        raise AttachError("section %s: %s are not attached by ebpf_attach" % (section, UNSUPPORTED_SECTIONS[head]),
                          "unsupported", hint="use a variant of the program on a tracepoint, raw tracepoint, tp_btf, "
                                              "fentry, kprobe or uprobe hook")
    hook = SECTION_HOOKS.get(head)
    if hook is None:
        return None, None, None
    if hook == "tc":
        return hook, None, rest if rest in DIRECTIONS else None
    if hook == "xdp":  # xdp/<interface>[,<interface>...] names where it runs (ebpf_exporter's sections)
        return hook, ",".join(named_sections.xdp_interfaces(section) or []) or None, None
    return hook, rest or None, None


def resolve_hook(asked, type_name, section, target=None, direction=None):
    """(hook, target, direction) for an attach, from the options and the program's section and
    type; AttachError when they cannot fit together."""
    s_hook, s_target, s_direction = hook_from_section(section) if section else (None, None, None)
    hook = asked
    if asked == "auto":
        hook = s_hook or HOOK_FOR_PROG_TYPE.get(type_name)
        if hook is None:
            if type_name == "kprobe":
                raise AttachError("a kprobe-type program can be a kprobe, kretprobe, uprobe, uretprobe or usdt program and its section "
                                  "name is not known", "invalid_argument", hint="set hook and target")
            if type_name == "tracing":
                raise AttachError("a tracing program can be a tp_btf, fentry, fexit or fmod_ret program and its section "
                                  "name is not known", "invalid_argument", hint="set hook (and target)")
            raise AttachError("%s programs cannot be attached by ebpf_attach" % type_name, "program_type_mismatch",
                              hint="it attaches xdp, sched_cls (tc), tracepoint, raw_tracepoint and kprobe-type programs")
    if type_name not in HOOK_PROG_TYPES[hook]:
        fits = HOOK_FOR_PROG_TYPE.get(type_name)
        raise AttachError("a %s program cannot be attached to the %s hook" % (type_name, hook), "program_type_mismatch",
                          hint=("use hook: %s" % fits) if fits else "the %s hook needs a %s program" % (hook, " or ".join(HOOK_PROG_TYPES[hook])))
    if s_hook == hook:
        target = target or s_target
        direction = direction or s_direction
    if hook == "tc":
        direction = direction or "ingress"
    return hook, target, direction


IFNAMSIZ = 16


def check_ifname(name):
    """Refuse an interface name the kernel can never hold (dev_valid_name), before anything is
    looked up or changed."""
    if len(name) > IFNAMSIZ - 1:
        raise AttachError("interface names are at most %d characters; %r has %d" % (IFNAMSIZ - 1, name, len(name)),
                          "invalid_argument", hint="give the name `ip link` shows")
    if not name or name in (".", "..") or any(c == "/" or c == ":" or c.isspace() for c in name):
        raise AttachError("%r is not a valid interface name" % name, "invalid_argument",
                          hint="interface names are 1 to %d characters without '/', ':' or spaces" % (IFNAMSIZ - 1))


class AttachBackend:
    """The decisions and kernel changes behind the ebpf_attach module. ``params`` are the
    module's options (missing keys take the module's defaults)."""

    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode
        self.state = params.get("state") or "present"
        self.events_dir = params.get("events_dir") or attach_events.DEFAULT_DIR
        self.warnings = []
        self.prog = None
        self.netlink = None
        self.ifname = params.get("interface")
        self.ifindex = None
        self.hook_name = params.get("hook") or "auto"
        self.target = params.get("target")
        self.direction = params.get("direction")
        self.hook = None

    def run(self):
        """The module's result dict; BpfError (counted in the event file) on failure."""
        try:
            capabilities.require_bpf()
            return self._run()
        except BpfError as e:
            if not self.check_mode:
                self._record(e)
            raise
        finally:
            self.close()

    def close(self):
        if self.netlink is not None:
            self.netlink.close()
            self.netlink = None
        if self.prog is not None:
            self.prog.close()

    def _record(self, err):
        notes = []
        try:
            attach_events.record(self.events_dir, self.ifname if self.hook_name in NETWORK_HOOKS + ("auto",) else "",
                                 error_type_of(err), self.hook_name, str(err), notes)
            for note in notes:
                err.msg += " [%s]" % note
        except BpfError as e:
            err.msg += " [the attachment event file was not updated: %s]" % e

    # -- steps ------------------------------------------------------------------------------

    def _program(self):
        p = self.params
        try:
            self.prog = ProgramRef(p.get("pin_root") or DEFAULT_PIN_ROOT, name=p.get("name"), program=p.get("program"), pin=p.get("pin"))
        except AttachError as e:
            if self.state == "absent" and e.error_type == "program_missing":
                self.warnings.append("%s; nothing of it can be attached" % e)
                return False
            raise
        except BpfError as e:  # a name or pin root that cannot be
            raise AttachError(e.msg, "invalid_argument", errno=e.errno, hint=e.hint)
        return True

    def _interface(self):
        if not self.ifname:
            raise AttachError("the %s hook needs an interface" % self.hook_name, "invalid_argument")
        self.netlink = Netlink()
        try:
            self.ifindex = self.netlink.ifindex(self.ifname)
        except BpfError as e:
            if e.errno != errno.ENODEV:
                raise
            if self.state == "absent":
                self.warnings.append("interface %s does not exist; nothing is attached to it" % self.ifname)
                return False
            raise AttachError("interface %s does not exist" % self.ifname, "interface_missing", errno=errno.ENODEV, hint=e.hint)
        if self.state == "present" and not self.netlink.link_is_up(self.ifindex):
            if self.params.get("require_up"):
                raise AttachError("interface %s is down and require_up is set" % self.ifname, "interface_down",
                                  hint="bring it up first; ebpf_attach never changes an interface's state")
            self.warnings.append("interface %s is down: the program is attached and runs once it is up" % self.ifname)
        return True

    def _section_interface(self):
        """An XDP program whose section names its interfaces (``xdp/eth0``) runs on the one it
        names when no interface is given; with several, each is its own attachment."""
        named, self.target = (self.target or "").split(",") if self.target else [], None
        if self.ifname or not named:
            return
        if len(named) > 1:
            raise AttachError("%s names the interfaces %s in its section: set interface to one of them (an attachment each)"
                              % (self.prog.label, ", ".join(named)), "invalid_argument")
        self.ifname = named[0]
        check_ifname(self.ifname)

    def _hook(self):
        if self.hook_name in NETWORK_HOOKS:
            return XdpHook(self) if self.hook_name == "xdp" else TcHook(self)
        if self.ifname:
            raise AttachError("interface applies to the xdp and tc hooks only, not to %s" % self.hook_name, "invalid_argument")
        if self.hook_name == "perf_event":
            hook = PerfEventHook(self)
        elif self.hook_name == "usdt":
            hook = UsdtHook(self)
        elif self.hook_name in MULTI_HOOKS:
            hook = MultiProbeHook(self, self.hook_name)
        elif self.hook_name in BTF_HOOKS:
            s_hook, s_target, _d = hook_from_section(self.prog.section)
            hook = BtfTracingHook(self, self.hook_name, s_target if s_hook == self.hook_name else None)
        else:
            hook = TracingHook(self, self.hook_name)
        if self.state == "present":
            hook.validate()
        return hook

    def _run(self):
        if self.ifname:
            check_ifname(self.ifname)
        if not self._program():
            return self._result(None, {}, {})
        self.hook_name, self.target, self.direction = resolve_hook(
            self.hook_name, self.prog.type_name, self.prog.section, self.target, self.direction)
        if self.hook_name == "xdp":
            self._section_interface()
        if self.hook_name in NETWORK_HOOKS and not self._interface():
            return self._stale_tcx_pin()
        hook = self.hook = self._hook()
        state = hook.read()
        before = hook.view(state)
        action = hook.needs_attach(state) if self.state == "present" else hook.needs_detach(state)
        if action is None:
            return self._result(None, before, before)
        if self.state == "absent":
            self._check_made_by_us(hook, state)
        if self.check_mode:
            return self._result(action, before, hook.predict(state, action) if self.state == "present" else {})
        if self.state == "present":
            action = self._attach(hook, state, action)
            if action is None:
                return self._result(None, before, before)
            after_state = self._verify(hook.verify_attached)
            self._record_netlink(add=hook.netlink_keys(after_state), remove=[k for k, _p in hook.netlink_keys(state)])
            after = hook.view(after_state)
        else:
            hook.detach(state)
            after = hook.view(self._verify(hook.verify_detached))
            self._record_netlink(remove=[k for k, _p in hook.netlink_keys(state)])
        return self._result(action, before, after)

    def _attach(self, hook, state, action):
        """Carry out ``action``. Another tool that changed the hook between our read and our
        change (the host lock keeps our own runs apart) makes the kernel answer EBUSY or EEXIST:
        then read the hook again and decide once more instead of failing. Returns the action
        taken, None when the hook already holds our program."""
        try:
            hook.attach(state, action)
            return action
        except BpfError as e:
            if e.errno not in (errno.EBUSY, errno.EEXIST) or isinstance(e, AttachError):
                raise
        state = hook.read()
        action = hook.needs_attach(state)
        if action is not None:
            hook.attach(state, action)
        return action

    # -- attachments of programs given by pin (state/attach_record) --------------------------

    def _record_netlink(self, add=(), remove=()):
        if self.prog.name is None:
            attach_record.update(self.prog.pin_root, add=add, remove=remove)

    def _check_made_by_us(self, hook, state):
        """A program given by its pin may be another tool's: detach only the netlink attachments
        this collection made of it (attach_record), or any with force."""
        if self.prog.name is None:
            for key, prog_id in hook.netlink_keys(state):
                if attach_record.made_by_us(self.prog.pin_root, key, prog_id):
                    continue
                where = "the %s hook on %s%s" % (hook.name, self.ifname, " " + self.direction if self.hook_name == "tc" else "")
                if not self.params.get("force"):
                    raise AttachError("%s (%s) was not attached by this collection: %s" % (prog_label(prog_id), self.prog.pin, where),
                                      "foreign_program", hint="set force: true to detach it anyway")
                self.warnings.append("detaching %s, which this collection did not attach (force): %s" % (prog_label(prog_id), where))

    def _verify(self, check):
        try:
            return check()
        except BpfError as e:
            if e.errno == errno.ENODEV and not isinstance(e, AttachError):
                raise AttachError("interface %s vanished before the kernel could confirm the change" % self.ifname,
                                  "interface_missing", errno=errno.ENODEV)
            raise

    def _stale_tcx_pin(self):
        """state=absent on an interface that is gone: only a TCX link pin can be left of it."""
        if self.hook_name != "tc":
            return self._result(None, {}, {})
        path = os.path.join(self.prog.links_dir, pin_key(self.prog.link_prefix, "tc", self.ifname, self.direction))
        link = read_link(path)
        if link is None:
            return self._result(None, {}, {})
        before = {"hook": "tc", "interface": self.ifname, "ifindex": None, "direction": self.direction, "tc_api": "tcx",
                  "link_id": link["id"], "link_pin": path, "prog_id": link["prog_id"], "prog_name": None}
        if not self.check_mode:
            unpin_link(path, "tcx link of %s" % self.prog.label)
        return self._result("detach", before, {})

    def _result(self, action, before, after):
        return {
            "changed": action is not None,
            "action": action or "none",
            "hook": self.hook_name,
            "program": self.prog.public() if self.prog is not None else {},
            "attachment": after,
            "diff": {"before": before, "after": after},
            "multiprog": getattr(self.hook, "status", None),
        }
