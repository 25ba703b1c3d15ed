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
- ``multiprog`` puts the program in libxdp's multi-program dispatcher instead, beside other
  tools' programs (attach_xdp_multi); the module result's ``multiprog`` says whether it did and
  why (the view carries it only where a dispatcher runs).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import attachments
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import (
    ATTACH, MOVE, REPLACE, AttachError, Hook, prog_facts, prog_label,
)

JOIN = "join"
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink_codec import XDP_MODE_ATTRS
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import libxdp
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.backends import attach_xdp_multi as multi

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
        self.multiprog, self.priority, self.actions = multi.check_settings(self.params)
        self._unsupported = None if self.multiprog == "never" else multi.unsupported_reason(self.prog)
        self._target = None  # (mode, prog_id) that REPLACE or MOVE acts on
        self._dispatch = False  # the action goes through the dispatcher
        self.status = None

    def validate(self):
        if self.multiprog == "always" and self._unsupported:
            raise AttachError("multiprog: always, but %s" % self._unsupported, "unsupported",
                              hint="use multiprog: auto to attach directly where a dispatcher cannot run")

    def read(self):
        held = held_programs(self.nl.xdp_query(self.ifindex))
        found = None
        if held and libxdp.available():
            try:
                found = libxdp.dispatcher(self.ifindex)
            except BpfError as e:  # what runs there is still decided from netlink's answer
                if self.multiprog == "always":
                    raise
                text = "libxdp cannot read the XDP programs of %s, so a dispatcher there is not joined: %s" % (self.ifname, e)
                if text not in self.backend.warnings:
                    self.warn(text)
        state = {"held": held, "dispatcher": found if found and not found["legacy"] else None}
        # which components are ours, and which of them as asked: decided once per read (kernel queries)
        state["ours"] = [c for c in (state["dispatcher"] or {}).get("components", []) if multi.is_ours(self.prog, c)]
        state["current"] = [c for c in state["ours"] if multi.is_current(self.prog, c, self.priority, self.actions)]
        self.status = self._multiprog_view(state)  # the module's result says whether and why
        return state

    def attached(self, state):
        if state["dispatcher"]:  # our current component, and no other version of it left beside
            current = state["current"]
            return (self.multiprog != "never" and state["dispatcher"]["mode"] in self.modes and bool(current)
                    and len(current) == len(state["ours"]) == 1)
        return self.multiprog != "always" and any(pid == self.prog.id and mode in self.modes for mode, pid in state["held"])

    def holds_ours(self, state):
        return bool(state["ours"]) or any(self.prog.owns(pid) for _mode, pid in state["held"])

    def needs_attach(self, state):
        if self.attached(state):
            return None
        held = state["held"]
        self._dispatch = self.multiprog == "always" or (self.multiprog == "auto" and bool(state["dispatcher"]))
        if self._dispatch:
            self.validate()
            if state["dispatcher"]:
                return REPLACE if state["ours"] else JOIN
        ours = [(mode, pid) for mode, pid in held if self.prog.owns(pid)]
        if ours:
            self._target = ours[0]
        elif held:
            if not self.params.get("force"):
                raise self._foreign(held[0])
            self._target = held[0]
        else:
            return JOIN if self._dispatch else ATTACH
        if self._dispatch:
            return MOVE  # a plain program makes way for a dispatcher
        return REPLACE if self._target[0] in self.modes else MOVE

    def _foreign(self, held):
        mode, pid = held
        links = [a for a in attachments.find_attachments([pid], self.nl) if a["kind"] == "link"]
        hint = "set force: true to replace it (atomically, in %s mode)" % mode
        if links:
            hint = ("it is attached through bpf_link id %d, which only its owner can remove (unpin the link or end "
                    "the process holding it); force cannot replace it" % links[0]["link_id"])
        elif self.multiprog != "never" and not libxdp.available():
            hint += "; if it is libxdp's dispatcher, install libxdp1 to join it"
        elif self.multiprog != "never":
            hint += ", or load it through xdp-loader (libxdp's dispatcher), which ebpf_attach then joins"
        return AttachError("%s is attached to %s in %s mode and was not attached by this collection"
                           % (prog_label(pid), self.ifname, mode), "foreign_program", hint=hint)

    def attach(self, state, action):
        if self._dispatch:
            return self._attach_component(state, action)
        fd = self.prog.fd
        if action == REPLACE:
            mode, old = self._target
            with sc.prog_fd_by_id(old) as old_fd:
                self.nl.xdp_set(self.ifindex, fd, mode, expected_fd=old_fd)
            return
        if action == MOVE:
            self._clear_target()
        if len(self.modes) == 1:
            self.nl.xdp_set(self.ifindex, fd, self.modes[0])
        else:
            self.nl.xdp_attach_negotiated(self.ifindex, fd, modes=self.modes)

    def _clear_target(self):
        mode, old = self._target
        with sc.prog_fd_by_id(old) as old_fd:
            self.nl.xdp_clear(self.ifindex, mode, old_fd)
        self.warn("%s ran in %s mode on %s and was detached to attach %s: no XDP program ran on %s for a moment"
                  % (prog_label(old), mode, self.ifname, "through libxdp's dispatcher" if self._dispatch
                     else "in %s mode" % "/".join(self.modes), self.ifname))

    def _attach_component(self, state, action):
        modes = multi.dispatcher_mode(self.modes, state["dispatcher"])
        keep = state["current"][:1] if action == REPLACE else []  # an earlier run's removal that failed
        old = [c for c in state["ours"] if c not in keep] if action == REPLACE else []
        if action == MOVE:
            self._clear_target()
        for i, mode in enumerate(modes if not keep else ()):
            try:
                multi.join(self.prog, self.ifindex, mode, self.priority, self.actions)
                break
            except BpfError:
                if i == len(modes) - 1:
                    raise
        for component in old:
            libxdp.detach(self.ifindex, state["dispatcher"]["mode"], component["prog_id"])

    def detach(self, state):
        for component in state["ours"]:
            libxdp.detach(self.ifindex, state["dispatcher"]["mode"], component["prog_id"])
        for mode, pid in state["held"]:
            if self.prog.owns(pid):
                with sc.prog_fd_by_id(pid) as old_fd:
                    self.nl.xdp_clear(self.ifindex, mode, old_fd)

    def netlink_keys(self, state):
        return [("xdp-%d-%s" % (self.ifindex, mode), pid) for mode, pid in state["held"] if self.prog.owns(pid)]

    def _multiprog_view(self, state):
        d = state["dispatcher"]
        if d is None:
            reason = self._unsupported or ("multiprog: never" if self.multiprog == "never" else
                                           "the interface runs no dispatcher to join (multiprog: auto)")
            return {"used": False, "reason": reason}
        return {"used": True, "dispatcher_id": d["prog_id"],
                "components": [dict(c, ours=c in state["ours"]) for c in d["components"]]}

    def _view(self, mode, pid, name, state):
        view = {"hook": "xdp", "interface": self.ifname, "ifindex": self.ifindex, "mode": mode, "prog_id": pid, "prog_name": name}
        if state["dispatcher"]:
            view["multiprog"] = self._multiprog_view(state)
        return view

    def view(self, state):
        held = state["held"]
        if not held:
            return {}
        mine = state["current"] or state["ours"]
        if mine:
            return dict(self._view(state["dispatcher"]["mode"], mine[0]["prog_id"], mine[0]["name"], state),
                        priority=mine[0]["priority"], chain_call_actions=mine[0]["chain_call_actions"])
        mine = [h for h in held if h[1] == self.prog.id] or [h for h in held if self.prog.owns(h[1])] or held
        mode, pid = mine[0]
        return self._view(mode, pid, (prog_facts(pid) or {}).get("name"), state)

    def predict(self, state, action):
        if self._dispatch:
            d = state["dispatcher"]
            view = self._view(d["mode"] if d else None, None, self.prog.info["name"], state)
            self.status = view["multiprog"] = {"used": True, "dispatcher_id": None}  # libxdp builds a new dispatcher
            return dict(view, priority=self.priority, chain_call_actions=self.actions)
        if action == REPLACE:
            mode = self._target[0]
        else:
            mode = self.modes[0] if len(self.modes) == 1 else None  # negotiated when attaching
        return self._view(mode, self.prog.id, self.prog.info["name"], state)
