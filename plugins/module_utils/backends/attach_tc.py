# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The TC hook of ebpf_attach: TCX bpf_links (Linux 6.6+) or clsact filters over netlink.

TCX (``tc_api: tcx``): BPF_LINK_CREATE with BPF_TCX_INGRESS/EGRESS, placed first among the
interface's TCX programs or where ``tcx_position`` says (backends.tcx_order), the link pinned at
``links/<program>-tc-<interface>-<direction>``. An upgrade swaps the link's program atomically
(BPF_LINK_UPDATE with the old program expected), in place; a program out of its asked place gets
a new link there (a new version before the old link goes; the same program right after it goes,
since a hook runs a program once). Other programs on the hook are never touched. Detaching
detaches the link and removes the pin.

netlink (``tc_api: netlink``): a direct-action ``bpf`` filter on the clsact qdisc (added when
missing) at our own priority and handle. Our filter is replaced in one request at the same
priority/handle; a foreign filter in our slot is replaced only with ``force``; other filters are
never touched, and the clsact qdisc is removed on detach only when no filter is left on it. An
``ingress`` qdisc has no egress hook: egress over netlink is refused there.

``tc_api: auto`` keeps an existing attachment of ours where it is and otherwise uses TCX when
the kernel has it, netlink when not; asking for the other API moves the attachment (the new
one is in place before the old one goes).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import zlib

from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_state import pin_key
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.backends.tcx_order import TcxOrder
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import (
    ATTACH, MOVE, REPLACE, AttachError, Hook, pin_link, prog_facts, prog_label, read_link,
    unpin_link,
)
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink_codec import TC_PRIO_MAX

TC_APIS = ("auto", "tcx", "netlink")
DIRECTIONS = ("ingress", "egress")
TCX_ATTACH_TYPES = {"ingress": sc.BPF_TCX_INGRESS, "egress": sc.BPF_TCX_EGRESS}
# Runs after the priority 1 most libbpf-based tools use and before tc's automatic priorities
# (49152 and up); the handle is derived from the program so two of ours never share a slot.
DEFAULT_PRIORITY = 256


def default_handle(label):
    """The filter handle of a program: crc32 of its label, never 0."""
    return zlib.crc32(label.encode("utf-8")) & 0xFFFFFFFF or 1


class TcHook(Hook):
    """See the module docstring."""

    name = "tc"

    def __init__(self, backend):
        super(TcHook, self).__init__(backend)
        self.nl = backend.netlink
        self.ifindex = backend.ifindex
        self.ifname = backend.ifname
        self.direction = backend.direction
        self.asked_api = self.params.get("tc_api") or "auto"
        priority, handle = self.params.get("priority"), self.params.get("handle")
        self.priority = DEFAULT_PRIORITY if priority is None else priority
        self.handle = default_handle(self.prog.label) if handle is None else handle
        if not 0 < self.priority <= TC_PRIO_MAX:
            raise AttachError("TC priority %d is out of range" % self.priority, "invalid_argument", hint="use 1 to %d" % TC_PRIO_MAX)
        if not 0 < self.handle <= 0xFFFFFFFF:
            raise AttachError("TC handle %d is out of range" % self.handle, "invalid_argument", hint="use 1 to 0xffffffff")
        self.link_path = os.path.join(self.prog.links_dir, pin_key(self.prog.link_prefix, "tc", self.ifname, self.direction))
        self.filter_name = self.prog.label[-64:]
        self.api = None  # chosen by needs_attach
        self.order = TcxOrder(self.params.get("tcx_position"), self.params.get("tcx_relative_to"), self.prog.pin_root)

    # -- kernel state -----------------------------------------------------------------

    def read(self):
        slot = None
        for entry in self.nl.tc_filters(self.ifindex, self.direction):
            if (entry["prio"], entry["handle"]) == (self.priority, self.handle):
                slot = entry
                break
        link = read_link(self.link_path)
        live = bool(link and link.get("type_name") == "tcx" and link.get("ifindex") == self.ifindex
                    and link.get("attach_type") == TCX_ATTACH_TYPES[self.direction])
        chain = []
        if self.order.position or live:
            try:
                chain = sc.prog_query(self.ifindex, TCX_ATTACH_TYPES[self.direction])["prog_ids"]
            except BpfError:
                chain = []  # no TCX on this kernel
        return {"slot": slot, "link": link, "live": live, "chain": chain}

    def _slot_prog(self, state):
        return state["slot"]["prog_id"] if state["slot"] else None

    def _slot_ours(self, state):
        return self.prog.owns(self._slot_prog(state))

    def _netlink_attached(self, state):
        slot = state["slot"]
        return bool(slot and slot["prog_id"] == self.prog.id and slot["direct_action"])

    def _tcx_attached(self, state):
        return state["live"] and state["link"]["prog_id"] == self.prog.id and self.order.in_place(state["chain"], self.prog.id)

    def attached(self, state):
        api = self.api or self._choose_api(state)
        if api == "tcx":
            return self._tcx_attached(state) and not self._slot_ours(state)
        return self._netlink_attached(state) and not state["link"]

    def holds_ours(self, state):
        apis = ("tcx", "netlink") if self.asked_api == "auto" else (self.asked_api,)
        return ("tcx" in apis and state["link"] is not None) or ("netlink" in apis and self._slot_ours(state))

    # -- decisions ----------------------------------------------------------------------

    def _choose_api(self, state):
        if self.asked_api == "tcx":
            if not features.has_tcx():
                raise AttachError("TCX is not available on this kernel (it needs Linux 6.6 or newer)", "unsupported",
                                  hint="use tc_api: netlink, or tc_api: auto to use TCX only where the kernel has it")
            return "tcx"
        if self.asked_api == "netlink":
            return "netlink"
        if state["live"]:
            return "tcx"
        if self._slot_ours(state) or not features.has_tcx():
            return "netlink"
        return "tcx"

    def needs_attach(self, state):
        self.api = self._choose_api(state)
        if self.attached(state):
            return None
        if self.api == "netlink" and not self.nl.has_hook(self.ifindex, self.direction):
            raise AttachError("interface %s has an 'ingress' qdisc, which has no egress hook: a TC egress filter cannot "
                              "be attached over netlink" % self.ifname, "invalid_argument",
                              hint="use tc_api: auto or tcx (a TCX link needs no qdisc), or replace the ingress qdisc "
                                   "with clsact (`tc qdisc del dev %s ingress` removes its filters too)" % self.ifname)
        if self.api == "tcx":
            self.order.check_relative(state["chain"], "TC %s on %s" % (self.direction, self.ifname))
            if state["live"]:
                # MOVE: drop our netlink filter, or put our program where it is asked to run
                return REPLACE if state["link"]["prog_id"] != self.prog.id else MOVE
            return MOVE if self._slot_ours(state) else ATTACH
        if state["slot"] and not self._slot_ours(state):
            if not self.params.get("force"):
                raise AttachError("%s holds TC %s priority %d handle %#x on %s and was not attached by this collection"
                                  % (self._slot_label(state), self.direction, self.priority, self.handle, self.ifname),
                                  "foreign_program", hint="set force: true to replace it, or choose another priority/handle")
            return REPLACE
        if state["slot"]:
            return REPLACE if self._slot_prog(state) != self.prog.id or state["link"] is None else MOVE
        return MOVE if state["link"] else ATTACH

    def _slot_label(self, state):
        pid = self._slot_prog(state)
        return prog_label(pid) if pid else "a %s filter" % state["slot"]["kind"]

    # -- changes --------------------------------------------------------------------------

    def attach(self, state, action):
        if self.api == "tcx":
            self._attach_tcx(state, action)
            if self._slot_ours(state):
                self._remove_filter(state)
            return
        self._attach_netlink(state, action)
        if state["link"] is not None:
            unpin_link(self.link_path, "tcx link of %s" % self.prog.label)

    def _attach_tcx(self, state, action):
        old_id = state["link"]["prog_id"] if state["live"] else None
        if old_id is not None and self.order.in_place(state["chain"], old_id):
            if old_id != self.prog.id:
                with sc.obj_get(self.link_path) as link, sc.prog_fd_by_id(old_id) as old:
                    sc.link_update(link, self.prog.fd, old_prog_fd=old)
            return
        if old_id == self.prog.id:  # the same program elsewhere on the hook: it can run there only once
            unpin_link(self.link_path, "tcx link of %s" % self.prog.label)
        flags, relative_id = self.order.link_options()
        with sc.link_create(self.prog.fd, self.ifindex, TCX_ATTACH_TYPES[self.direction], flags=flags,
                            relative_id=relative_id) as link:
            pin_link(link, self.link_path)  # replaces the previous link, or a pin whose interface is gone

    def _attach_netlink(self, state, action):
        created = self.nl.ensure_clsact(self.ifindex, self.direction)
        try:
            self.nl.tc_attach(self.ifindex, self.direction, self.prog.fd, self.priority, self.handle, self.filter_name,
                              replace=state["slot"] is not None)
        except BpfError:
            if created:
                self.nl.clsact_remove_if_empty(self.ifindex)
            raise

    def _remove_filter(self, state):
        self.nl.tc_detach(self.ifindex, self.direction, self.priority, self.handle, expected_prog_id=self._slot_prog(state))
        self.nl.clsact_remove_if_empty(self.ifindex)

    def detach(self, state):
        apis = ("tcx", "netlink") if self.asked_api == "auto" else (self.asked_api,)
        if "tcx" in apis and state["link"] is not None:
            unpin_link(self.link_path, "tcx link of %s" % self.prog.label)
        if "netlink" in apis and self._slot_ours(state):
            self._remove_filter(state)

    def netlink_keys(self, state):
        if not self._slot_ours(state):
            return []
        return [("tc-%d-%s-%d-%d" % (self.ifindex, self.direction, self.priority, self.handle), self._slot_prog(state))]

    # -- views ----------------------------------------------------------------------------

    def _base(self, api):
        return {"hook": "tc", "interface": self.ifname, "ifindex": self.ifindex, "direction": self.direction, "tc_api": api}

    def _tcx_view(self, link_id, prog_id, name, chain=()):
        out = self._base("tcx")
        out.update(link_id=link_id, link_pin=self.link_path, prog_id=prog_id, prog_name=name,
                   tcx_position=list(chain).index(prog_id) if prog_id in chain else None, tcx_chain=list(chain))
        return out

    def _netlink_view(self, prog_id, name):
        out = self._base("netlink")
        out.update(priority=self.priority, handle=self.handle, prog_id=prog_id, prog_name=name)
        return out

    def view(self, state):
        if state["live"]:
            pid = state["link"]["prog_id"]
            return self._tcx_view(state["link"]["id"], pid, (prog_facts(pid) or {}).get("name"), state["chain"])
        if state["slot"]:
            pid = self._slot_prog(state)
            return self._netlink_view(pid, (prog_facts(pid) or {}).get("name") or state["slot"]["name"])
        return {}

    def predict(self, state, action):
        name = self.prog.info["name"]
        if self.api == "tcx":
            return self._tcx_view(state["link"]["id"] if state["live"] else None, self.prog.id, name)
        return self._netlink_view(self.prog.id, name)
