# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""BTF-typed hooks of ebpf_attach: ``tp_btf`` (BTF-typed tracepoints), ``fentry``, ``fexit``,
``fmod_ret`` and ``lsm``, each through a bpf_link pinned at ``links/<program>-<hook>-<target>``.

Their target is fixed when the program is loaded (libbpf resolves the section's
``tp_btf/sched_switch`` or ``fentry/do_unlinkat`` to a BTF id), so attaching only opens the link
(BPF_RAW_TRACEPOINT_OPEN without a name, Linux 5.5+). A ``target`` option, when given, must name
the same target as the program's section. tp_btf needs no BPF trampoline; fentry, fexit, fmod_ret
and lsm do, and a kernel without trampolines cannot even load such a program (ebpf_program says
so); ebpf_attach checks the feature again before it changes anything.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import AttachError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_tracing import TracingHook
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

BTF_HOOKS = ("tp_btf", "fentry", "fexit", "fmod_ret", "lsm")
# The link each hook's attachment is, as link_info reports it: (link type, attach type name).
_LINKS = {"tp_btf": ("raw_tracepoint", None), "fentry": ("tracing", "trace_fentry"),
          "fexit": ("tracing", "trace_fexit"), "fmod_ret": ("tracing", "modify_return"), "lsm": ("tracing", "lsm_mac")}


class BtfTracingHook(TracingHook):
    """See the module docstring. ``section_target`` is the target the program's section names
    (None when unknown: a program given by pin without a load record). Reading, replacing,
    detaching, the link's pin and the views are TracingHook's."""

    def __init__(self, backend, hook, section_target=None):
        self.section_target = section_target
        super(BtfTracingHook, self).__init__(backend, hook)

    def parse_target(self, hook, target):
        if target and self.section_target and target != self.section_target:
            raise AttachError("the target of a %s program is fixed when it is loaded: %s was loaded for %s, not %s"
                              % (hook, self.prog.label, self.section_target, target), "invalid_argument",
                              hint="leave target out, or load a program whose section names %s/%s" % (hook, target))
        target = target or self.section_target
        if not target:
            raise AttachError("hook %s needs the program's target (its section name was not recorded)" % hook,
                              "invalid_argument", hint="set target to what the program was loaded for")
        return {"canonical": target}

    def validate(self):
        if self.name != "tp_btf":
            try:
                features.require_fentry(self.name)
            except BpfError as e:
                raise AttachError(e.msg, "unsupported", hint=e.hint)

    def _matches(self, link):
        link_type, attach_type = _LINKS[self.name]
        if link.get("type_name") != link_type:
            return False
        if attach_type is None:
            return link.get("tp_name") == self.target["canonical"]
        return link.get("attach_type_name") == attach_type

    def _open_link(self):
        try:
            return sc.raw_tracepoint_open(None, self.prog.fd)
        except BpfError as e:
            if e.errno in (errno.EINVAL, errno.EOPNOTSUPP, sc.ENOTSUPP):
                raise AttachError("%s cannot be attached as %s %s (the kernel refused the link: errno %d)"
                                  % (self.prog.label, self.name, self.target["canonical"], e.errno),
                                  "program_type_mismatch", errno=e.errno,
                                  hint="a %s program is loaded from a SEC(\"%s/...\") function" % (self.name, self.name))
            raise
