# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Multi-probe hooks of ebpf_attach, from libbpf's ``kprobe.multi/``, ``kretprobe.multi/``,
``uprobe.multi/`` and ``uretprobe.multi/`` sections: one bpf_link attaches the program to every
kernel function matching a glob (``kprobe_multi``, ``kretprobe_multi``: Linux 5.18 with kprobes
and fprobe) or to every function of a binary matching one (``uprobe_multi``, ``uretprobe_multi``:
Linux 6.6), pinned at ``links/<program>-<hook>-<target>`` like the single probes, replaced the
same way (kernel.multi_probes).

Targets: a kernel function glob (``tcp_v4_*``), or ``<binary>:<function glob>`` with the binary a
path or a library or program name found as for uprobes (``libc.so.6:malloc*``). The functions
are matched when attaching; Linux 6.6+ reports a link's function count (and a uprobe_multi
link's file), which must still match.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import multi_probes
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import AttachError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_tracing import TracingHook, resolve_binary
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

MULTI_HOOKS = ("kprobe_multi", "kretprobe_multi", "uprobe_multi", "uretprobe_multi")
_LINK_TYPES = {"kprobe_multi": "kprobe_multi", "kretprobe_multi": "kprobe_multi",
               "uprobe_multi": "uprobe_multi", "uretprobe_multi": "uprobe_multi"}


class MultiProbeHook(TracingHook):
    """See the module docstring. Reading, replacing, detaching, the link's pin and the views
    are TracingHook's."""

    def __init__(self, backend, hook):
        self.matched = None
        super(MultiProbeHook, self).__init__(backend, hook)

    @property
    def kernel(self):
        return self.name.startswith("k")

    def parse_target(self, hook, target):
        target = (target or "").strip()
        if hook.startswith("k"):
            if not target or ":" in target or "/" in target:
                raise AttachError("invalid %s target %r" % (hook, target), "invalid_argument",
                                  hint="expected a kernel function glob, for example tcp_v4_*")
            return {"pattern": target, "canonical": target}
        path, sep, pattern = target.rpartition(":")
        if not sep or not path or not pattern:
            raise AttachError("invalid %s target %r" % (hook, target), "invalid_argument",
                              hint="expected <binary>:<function glob>, for example libc.so.6:malloc*")
        return {"path": resolve_binary(path), "pattern": pattern, "canonical": target}

    def validate(self):
        try:
            if self.kernel:
                features.require_kprobes()
            else:
                features.require_uprobes()
            features.require_perf_link("a %s" % self.name)
        except BpfError as e:
            raise AttachError(e.msg, "kprobes_unavailable" if self.kernel else "unsupported", hint=e.hint)
        self._functions()

    def _functions(self):
        """The functions the target's glob matches now: names (kernel) or {name: offset}."""
        if self.matched is None:
            t = self.target
            if self.kernel:
                tracefs = features.tracefs_root() or features.mount_tracefs()
                self.matched = multi_probes.kernel_functions(t["pattern"], tracefs)
            else:
                if not os.path.isfile(t["path"]):
                    raise AttachError("%s target file %s does not exist" % (self.name, t["path"]), "unknown_target",
                                      errno=errno.ENOENT)
                try:
                    self.matched = multi_probes.binary_functions(t["path"], t["pattern"])
                except BpfError as e:
                    raise AttachError(e.msg, "unknown_target", hint=e.hint)
            if not self.matched:
                raise AttachError("no function matches %s %s" % (self.name, t["canonical"]), "unknown_target",
                                  hint="kernel functions are listed in available_filter_functions of tracefs; a binary's "
                                       "with `nm`" if self.kernel else "list the binary's functions with `nm -D --defined-only`")
        return self.matched

    def _matches(self, link):
        if link.get("type_name") != _LINK_TYPES[self.name]:
            return False
        if link.get("count") and self.matched is not None and link["count"] != len(self.matched):
            return False
        return self.kernel or not link.get("path") or link["path"] == os.path.realpath(self.target["path"])

    def _open_link(self):
        retprobe = self.name.startswith(("kret", "uret"))
        functions = self._functions()
        if self.kernel:
            return multi_probes.kprobe_multi_link(self.prog.fd, functions, retprobe)
        return multi_probes.uprobe_multi_link(self.prog.fd, self.target["path"], [functions[n] for n in sorted(functions)],
                                              retprobe)
