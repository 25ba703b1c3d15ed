# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a TCX program runs among the others on its hook (Linux 6.6's multi-program API): the
``tcx_position`` option of ebpf_attach (first, last, before or after another program), checked
against the order the kernel reports (BPF_PROG_QUERY) and asked for when linking
(BPF_F_BEFORE / BPF_F_AFTER with the other program's id, BPF_F_ID).

Without ``tcx_position`` a new link goes first and an existing one stays where it is. The
program another is placed against (``tcx_relative_to``) is a program id, the path of a pinned
program, or ``<name>/<program>`` of an object of this collection under the pin root.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_state import PROGS_DIR
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import AttachError
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

POSITIONS = ("first", "last", "before", "after")


class TcxOrder:
    """The asked position (None: none asked) and the program it is relative to."""

    def __init__(self, position, relative_to, pin_root):
        if position not in (None,) + POSITIONS:
            raise AttachError("tcx_position must be one of %s" % ", ".join(POSITIONS), "invalid_argument")
        if (position in ("before", "after")) != (relative_to not in (None, "")):
            raise AttachError("tcx_relative_to goes with tcx_position before or after, and they need it", "invalid_argument",
                              hint="name the program as an id, a pin path or <name>/<program>")
        self.position = position
        self.relative_to = relative_to
        self.pin_root = pin_root
        self._relative_id = None

    def relative_id(self):
        """The id of the program this one is placed against (AttachError when there is none)."""
        if self._relative_id is None and self.relative_to not in (None, ""):
            ref = self.relative_to
            if isinstance(ref, int) or str(ref).isdigit():
                self._relative_id = int(ref)
            else:
                name, _sep, program = str(ref).partition("/")
                path = ref if str(ref).startswith("/") else os.path.join(self.pin_root, name, PROGS_DIR, program)
                try:
                    with sc.obj_get(path) as fd:
                        self._relative_id = sc.prog_info(fd)["id"]
                except BpfError as e:
                    raise AttachError("tcx_relative_to %s: no program is pinned at %s" % (ref, path), "invalid_argument",
                                      errno=e.errno)
        return self._relative_id

    def in_place(self, chain, prog_id):
        """Whether ``prog_id`` stands where asked in ``chain`` (the hook's program ids in run order)."""
        if self.position is None or prog_id not in chain:
            return prog_id in chain
        index = chain.index(prog_id)
        if self.position == "first":
            return index == 0
        if self.position == "last":
            return index == len(chain) - 1
        other = self.relative_id()
        if other not in chain:
            return False
        return chain.index(other) == index + (1 if self.position == "before" else -1)

    def check_relative(self, chain, where):
        """AttachError unless the program to be placed against runs on the hook."""
        if self.position in ("before", "after") and self.relative_id() not in chain:
            raise AttachError("tcx_relative_to: program id %d is not attached to %s" % (self.relative_id(), where),
                              "invalid_argument", hint="attach it first, or place this one first or last")

    def link_options(self):
        """(flags, relative_id) for BPF_LINK_CREATE."""
        if self.position == "last":
            return sc.BPF_F_AFTER, 0
        if self.position in ("before", "after"):
            flag = sc.BPF_F_BEFORE if self.position == "before" else sc.BPF_F_AFTER
            return flag | sc.BPF_F_ID, self.relative_id()
        return sc.BPF_F_BEFORE, 0
