# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""XDP coexistence for ebpf_attach: our program as a component of libxdp's multi-program
dispatcher (kernel/libxdp), beside programs loaded by xdp-loader or bpfman.

- ``multiprog: auto`` (the default) joins the dispatcher an interface runs; on an interface that
  runs nothing it attaches directly, as ``never`` does; a lone program that is not ours is
  refused (replaced only with ``force``), whatever the setting.
- ``always`` makes a dispatcher when the interface runs none; ``never`` never uses one.
- A component is ours when it has the pinned program's name and uses one of its maps; it is the
  current version when its maps are exactly the pinned program's (each load has its own
  read-only data map) and its priority and chain-call actions are the ones asked.
- The component is loaded from the object file the load record names (checked against the
  record's digest) with every map shared with the pinned program, so counters are the same.
- libxdp has no call that swaps one component for another: an upgrade adds the new version,
  then removes the old one (two atomic dispatcher swaps; between them both run).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import libbpf
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import libxdp
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import named_sections
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError, errno_error
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import AttachError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import prog_facts
from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_state import MAPS_DIR

MULTIPROG = ("auto", "always", "never")
DISPATCHER_MODES = ("drv", "skb")  # libxdp does not offload a dispatcher


def unsupported_reason(prog):
    """Why this host cannot put ``prog`` (a ProgramRef) in a dispatcher, or None."""
    if not prog.name:
        return "the program is given by its pin, not loaded by ebpf_program (a component is loaded from its object file)"
    if not libxdp.available():
        return "libxdp (%s) is not installed" % libxdp.LIBXDP_SONAME
    if not features.has_fentry():
        return "the kernel cannot run libxdp's dispatcher: its components are freplace programs, which need BPF trampolines"
    return None


def check_settings(params):
    """(multiprog, priority, chain_call_actions) from the module's options, checked."""
    multiprog = params.get("multiprog") or "auto"
    if multiprog not in MULTIPROG:
        raise AttachError("unknown multiprog %r" % (multiprog,), "invalid_argument", hint="use one of %s" % ", ".join(MULTIPROG))
    priority = params.get("priority")
    if priority is not None and not 0 <= int(priority) <= 0xffffffff:
        raise AttachError("priority must be between 0 and 4294967295 (lower runs first)", "invalid_argument")
    actions = params.get("chain_call_actions")
    if actions is not None:
        unknown = [a for a in actions if a not in libxdp.ACTIONS]
        if unknown:
            raise AttachError("unknown XDP action(s) %s in chain_call_actions" % ", ".join(unknown), "invalid_argument",
                              hint="use %s" % ", ".join(libxdp.ACTIONS))
        actions = sorted(set(actions), key=libxdp.ACTIONS.index)
    return multiprog, None if priority is None else int(priority), actions


def is_ours(prog, component):
    """Whether dispatcher ``component`` is a version of ``prog``: its name, and maps of its own."""
    facts = prog_facts(component["prog_id"]) or {}
    return facts.get("name") == prog.info["name"] and bool(set(facts.get("map_ids") or []) & set(prog.info.get("map_ids") or []))


def is_current(prog, component, priority, actions):
    """Whether dispatcher ``component`` (one of ours) runs this version of ``prog`` as asked."""
    facts = prog_facts(component["prog_id"]) or {}
    return (sorted(facts.get("map_ids") or []) == sorted(prog.info.get("map_ids") or [])
            and (priority is None or component["priority"] == priority)
            and (actions is None or component["chain_call_actions"] == actions))


def _object_file(prog):
    record = prog.record or {}
    src, digest = record.get("source"), record.get("source_sha256")
    hint = "load it again with ebpf.observability.ebpf_program name=%s (its record then names its file)" % prog.name
    if not src:
        raise AttachError("the load record of %s does not name its object file" % prog.name, "program_missing", hint=hint)
    try:
        with open(src, "rb") as f:
            data = f.read()
    except (IOError, OSError) as e:
        raise AttachError("cannot read %s, the object file %s was loaded from" % (src, prog.name), "program_missing",
                          errno=e.errno, hint=hint)
    if hashlib.sha256(data).hexdigest() != digest:
        raise AttachError("%s changed since %s was loaded from it" % (src, prog.name), "program_missing", hint=hint)
    return src


def _shared_map_fds(prog):
    """{map name: fd} of every map the component must share: the object's pinned maps and
    the pinned program's own (its read-only data and bss among them)."""
    fds = {}
    try:
        maps_dir = os.path.join(prog.pin_dir, MAPS_DIR)
        for name in sorted(os.listdir(maps_dir)) if os.path.isdir(maps_dir) else []:
            fds[name] = sc.obj_get(os.path.join(maps_dir, name))
        for map_id in prog.info.get("map_ids") or []:
            fd = sc.map_fd_by_id(map_id)
            name = sc.map_info(fd.fd)["name"]
            if name in fds:
                fd.close()
            else:
                fds[name] = fd
    except BpfError:
        for fd in fds.values():
            fd.close()
        raise
    return fds


def join(prog, ifindex, mode, priority, actions):
    """Load ``prog`` (a ProgramRef) as a component of the dispatcher of ``ifindex`` and add it;
    the component's facts."""
    src = _object_file(prog)
    fds = _shared_map_fds(prog)
    try:
        with libbpf.BpfObject(src, object_name=prog.name) as obj:
            named_sections.assign_types(obj.programs)
            if obj.program(prog.program) is None:
                raise AttachError("%s holds no program %s" % (src, prog.program), "program_missing")
            for p in obj.programs:
                p.autoload = p.name == prog.program
            for m in obj.maps:
                m.pin_path = None  # never pinned by libbpf (LIBBPF_PIN_BY_NAME would pin under the bpffs root)
                fd = fds.get(m.name) or fds.get(m.name[:15])  # the kernel keeps 15 characters of a map name
                if fd is not None:
                    err = libbpf.lib().bpf_map__reuse_fd(m.ptr, fd.fd)
                    if err:
                        raise errno_error("cannot share map %s with the pinned program" % m.name, err)
            return libxdp.attach(obj, prog.program, ifindex, mode, priority, actions)
    finally:
        for fd in fds.values():
            fd.close()


def dispatcher_mode(modes, dispatcher):
    """The mode a component joins in: the dispatcher's own, which the asked modes must allow;
    for a new dispatcher, the asked modes libxdp can use."""
    if dispatcher:
        if dispatcher["mode"] not in modes:
            raise AttachError("the XDP dispatcher runs in %s mode, which the asked mode (%s) does not allow"
                              % (dispatcher["mode"], "/".join(modes)), "invalid_argument",
                              hint="set mode: %s or auto to join it" % dispatcher["mode"])
        return [dispatcher["mode"]]
    usable = [m for m in modes if m in DISPATCHER_MODES]
    if not usable:
        raise AttachError("libxdp's dispatcher cannot run in hw mode", "invalid_argument", hint="set mode: drv, skb or auto")
    return usable
