# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The XDP hook of ebpf_attach, through netlink (IFLA_XDP).

- Attaching adds only (XDP_FLAGS_UPDATE_IF_NOEXIST): a program that appears meanwhile is never
  overwritten.
- Our older program (an upgrade) and, with ``force``, a foreign one are replaced atomically in
  their mode (XDP_FLAGS_REPLACE with the expected program's fd): the interface never runs
  without a program.
- ``mode: auto`` tries hw, drv, skb in order and keeps the first the interface accepts; a named
  mode is strict unless ``mode_fallback`` lets it continue down that order.
- A program that has to change mode (the asked mode is not the one it runs in) is detached and
  attached again: the only case with a moment without a program, reported in a warning.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import attachments
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import (
    ATTACH, MOVE, REPLACE, AttachError, Hook, prog_facts, prog_label,
)
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink_codec import XDP_MODE_ATTRS

MODE_ORDER = ("hw", "drv", "skb")
MODES = ("auto",) + MODE_ORDER


def modes_to_try(mode, fallback=False):
    """The XDP modes an attach may use, in the order tried."""
    if mode == "auto":
        return MODE_ORDER
    if mode not in MODE_ORDER:
        raise AttachError("unknown XDP mode %r" % (mode,), "invalid_argument", hint="use one of %s" % ", ".join(MODES))
    if fallback:
        return MODE_ORDER[MODE_ORDER.index(mode):]
    return (mode,)


def held_programs(xdp_state):
    """[(mode, prog_id)] of what an interface runs, from Netlink.xdp_query()."""
    return [(mode, xdp_state[mode + "_prog_id"]) for mode, _attr in XDP_MODE_ATTRS if xdp_state[mode + "_prog_id"]]


class XdpHook(Hook):
    """See the module docstring."""

    name = "xdp"

    def __init__(self, backend):
        super(XdpHook, self).__init__(backend)
        self.nl = backend.netlink
        self.ifindex = backend.ifindex
        self.ifname = backend.ifname
        self.modes = modes_to_try(self.params.get("mode") or "auto", self.params.get("mode_fallback"))
        self._target = None  # (mode, prog_id) that REPLACE or MOVE acts on

    def read(self):
        return {"held": held_programs(self.nl.xdp_query(self.ifindex))}

    def attached(self, state):
        return any(pid == self.prog.id and mode in self.modes for mode, pid in state["held"])

    def holds_ours(self, state):
        return any(self.prog.owns(pid) for _mode, pid in state["held"])

    def needs_attach(self, state):
        if self.attached(state):
            return None
        held = state["held"]
        ours = [(mode, pid) for mode, pid in held if self.prog.owns(pid)]
        if ours:
            self._target = ours[0]
        elif held:
            if not self.params.get("force"):
                raise self._foreign(held[0])
            self._target = held[0]
        else:
            return ATTACH
        return REPLACE if self._target[0] in self.modes else MOVE

    def _foreign(self, held):
        mode, pid = held
        links = [a for a in attachments.find_attachments([pid], self.nl) if a["kind"] == "link"]
        hint = "set force: true to replace it (atomically, in %s mode)" % mode
        if links:
            hint = ("it is attached through bpf_link id %d, which only its owner can remove (unpin the link or end "
                    "the process holding it); force cannot replace it" % links[0]["link_id"])
        return AttachError("%s is attached to %s in %s mode and was not attached by this collection"
                           % (prog_label(pid), self.ifname, mode), "foreign_program", hint=hint)

    def attach(self, state, action):
        fd = self.prog.fd
        if action == REPLACE:
            mode, old = self._target
            with sc.prog_fd_by_id(old) as old_fd:
                self.nl.xdp_set(self.ifindex, fd, mode, expected_fd=old_fd)
            return
        if action == MOVE:
            mode, old = self._target
            with sc.prog_fd_by_id(old) as old_fd:
                self.nl.xdp_clear(self.ifindex, mode, old_fd)
            self.warn("%s ran in %s mode on %s and was detached to attach in %s mode: no XDP program ran on %s "
                      "for a moment" % (prog_label(old), mode, self.ifname, "/".join(self.modes), self.ifname))
        if len(self.modes) == 1:
            self.nl.xdp_set(self.ifindex, fd, self.modes[0])
        else:
            self.nl.xdp_attach_negotiated(self.ifindex, fd, modes=self.modes)

    def detach(self, state):
        for mode, pid in state["held"]:
            if self.prog.owns(pid):
                with sc.prog_fd_by_id(pid) as old_fd:
                    self.nl.xdp_clear(self.ifindex, mode, old_fd)

    def netlink_keys(self, state):
        return [("xdp-%d-%s" % (self.ifindex, mode), pid) for mode, pid in state["held"] if self.prog.owns(pid)]

    def _view(self, mode, pid, name):
        return {"hook": "xdp", "interface": self.ifname, "ifindex": self.ifindex, "mode": mode,
                "prog_id": pid, "prog_name": name}

    def view(self, state):
        held = state["held"]
        if not held:
            return {}
        mine = [h for h in held if h[1] == self.prog.id] or [h for h in held if self.prog.owns(h[1])] or held
        mode, pid = mine[0]
        return self._view(mode, pid, (prog_facts(pid) or {}).get("name"))

    def predict(self, state, action):
        if action == REPLACE:
            mode = self._target[0]
        else:
            mode = self.modes[0] if len(self.modes) == 1 else None  # negotiated when attaching
        return self._view(mode, self.prog.id, self.prog.info["name"])
