# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Netlink side of the kernel layer, through pyroute2: interfaces, XDP and TC.

A ``Netlink`` object owns one rtnetlink socket, opened in the network namespace the calling
thread is in when the object is created (entering a namespace is the caller's business).

XDP goes through IFLA_XDP: attaching never replaces a program it was not told about
(XDP_FLAGS_UPDATE_IF_NOEXIST), and replacing or detaching one's own program names it by fd
(XDP_FLAGS_REPLACE + IFLA_XDP_EXPECTED_FD), so the swap is atomic and a foreign program is
never touched. TC uses a clsact qdisc with direct-action ``bpf`` filters; replacing a filter at
the same prio/handle is one RTM_NEWTFILTER with NLM_F_REPLACE.

Works with pyroute2 0.7 (Debian 12) to 0.9. On first use two gaps in those versions are closed:
the cls_bpf option map gains TCA_BPF_FLAGS_GEN, TCA_BPF_TAG and TCA_BPF_ID (so filter dumps
carry the program id and tag), and IFLA_XDP_FLAGS is encoded as the u32 the kernel expects
(0.7 sends a big-endian u16, which the kernel rejects with ERANGE).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import netlink_codec as codec
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink_codec import (
    ETH_P_ALL, TC_H_CLSACT, TC_PARENTS, TC_PRIO_MAX, XDP_MODE_ATTRS, IFF_UP,
)


class Netlink:
    """One rtnetlink socket and the interface, XDP and TC operations of the kernel layer."""

    def __init__(self):
        codec.load_pyroute2()
        self.ipr = codec.IPRoute(ext_ack=True)

    def close(self):
        if self.ipr is not None:
            self.ipr.close()
            self.ipr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---------------------------------------------------------------- interfaces

    def _link(self, ifindex):
        try:
            return self.ipr.link("get", index=ifindex)[0]
        except codec.NetlinkError as e:
            if codec.nl_code(e) == errno.ENODEV:
                raise BpfError("interface index %d does not exist" % ifindex, errno=errno.ENODEV,
                               hint="it may have been removed; check `ip link` in the right "
                                    "network namespace")
            raise codec.nl_error("cannot read interface index %d" % ifindex, e)

    def _label(self, ifindex):
        """The interface name for messages, or ``ifindex N`` when it cannot be read."""
        try:
            return self.ifname(ifindex)
        except BpfError:
            return "ifindex %d" % ifindex

    def ifindex(self, name):
        """Index of the interface called ``name``; BpfError when there is none."""
        try:
            return self.ipr.link("get", ifname=name)[0]["index"]
        except codec.NetlinkError as e:
            if codec.nl_code(e) == errno.ENODEV:
                raise BpfError("interface %s does not exist" % name, errno=errno.ENODEV,
                               hint="check the name with `ip link` in the network namespace "
                                    "the task runs in")
            raise codec.nl_error("cannot look up interface %s" % name, e)

    def ifname(self, ifindex):
        """Name of the interface with index ``ifindex``."""
        return self._link(ifindex).get_attr("IFLA_IFNAME")

    def link_is_up(self, ifindex):
        """True when the interface is administratively up (IFF_UP)."""
        return bool(self._link(ifindex)["flags"] & IFF_UP)

    def interfaces(self):
        """[(ifindex, name)] of every interface of the current network namespace."""
        return [(msg["index"], msg.get_attr("IFLA_IFNAME")) for msg in self.ipr.get_links()]

    # ---------------------------------------------------------------- XDP

    def xdp_query(self, ifindex):
        """dict(mode: drv|skb|hw|multi|None, prog_id, drv_prog_id, skb_prog_id, hw_prog_id).

        ``prog_id`` is set when exactly one mode holds a program."""
        return codec.xdp_state(self._link(ifindex))

    def xdp_query_all(self):
        """xdp_query() of every interface from one dump, each with ``ifindex`` and ``interface``."""
        states = []
        for msg in self.ipr.get_links():
            state = codec.xdp_state(msg)
            state.update(ifindex=msg["index"], interface=msg.get_attr("IFLA_IFNAME"))
            states.append(state)
        return states

    def _xdp_try(self, ifindex, prog_fd, mode, expected_fd=None, replace=False, state=None):
        """Send one IFLA_XDP change; the NetlinkError on failure, else None.

        An attach that only adds (UPDATE_IF_NOEXIST) onto a mode already holding a program is
        refused before it is sent: pyroute2 0.7 re-sends a request answered with EBUSY for
        9 s. The kernel still has the last word when the program appears meanwhile."""
        attrs = codec.xdp_attach_attrs(prog_fd, mode, expected_fd, replace)
        if expected_fd is None and not replace:
            if state is None:
                state = self.xdp_query(ifindex)
            if state[mode + "_prog_id"]:
                return codec.NetlinkError(errno.EBUSY, "XDP program already attached")
        try:
            self.ipr.link("set", index=ifindex, xdp={"attrs": attrs})
        except codec.NetlinkError as e:
            if codec.nl_code(e) == errno.ENODEV:
                self._link(ifindex)  # raises the clear "does not exist" error
            return e
        return None

    def _xdp_error(self, ifindex, err, what):
        code = codec.nl_code(err)
        hint = None
        if code == errno.EBUSY:
            hint = ("attached there now: XDP program %s; detach it first if it is not needed "
                    "(a program attached through a bpf_link goes away with the link)"
                    % self._describe_xdp(self.xdp_query(ifindex)))
        elif code in (errno.EINVAL, errno.EOPNOTSUPP):
            hint = "the driver may not support this XDP mode; skb (generic) mode works everywhere"
        return codec.nl_error(what, err, hint=hint)

    @staticmethod
    def _describe_xdp(state):
        held = ["id %d (%s)" % (state[mode + "_prog_id"], mode)
                for mode, _attr in XDP_MODE_ATTRS if state[mode + "_prog_id"]]
        return ", ".join(held) or "none"

    def xdp_set(self, ifindex, prog_fd, mode, expected_fd=None, replace=False):
        """Attach ``prog_fd`` as the XDP program of ``ifindex`` in ``mode`` (hw, drv or skb).

        With ``expected_fd`` the program attached in that mode must be that one and is swapped
        atomically (XDP_FLAGS_REPLACE). Without it the kernel refuses when the mode already
        holds any program (XDP_FLAGS_UPDATE_IF_NOEXIST, EBUSY), unless ``replace`` is true,
        which overwrites whatever is attached: use it only after checking what that is."""
        err = self._xdp_try(ifindex, prog_fd, mode, expected_fd, replace)
        if err is not None:
            raise self._xdp_error(ifindex, err, "cannot attach XDP program to %s in %s mode"
                                  % (self._label(ifindex), mode))

    def xdp_attach_negotiated(self, ifindex, prog_fd, modes=("hw", "drv", "skb"), expected_fd=None):
        """Attach in the first of ``modes`` the interface accepts and return that mode.

        A mode the driver rejects (EINVAL, EOPNOTSUPP) or that conflicts with the other of
        native/generic (EEXIST) is skipped; with ``expected_fd`` a mode not holding that program
        (EEXIST) is skipped too, so a replacement stays in the mode of the program it replaces.
        EBUSY (a foreign program, or one attached through a bpf_link) stops at once."""
        if not modes:
            raise BpfError("no XDP mode to try", hint="give at least one of hw, drv, skb")
        failures = []
        state = self.xdp_query(ifindex)  # failed attempts change nothing
        for mode in modes:
            err = self._xdp_try(ifindex, prog_fd, mode, expected_fd, state=state)
            if err is None:
                return mode
            if codec.nl_code(err) not in (errno.EINVAL, errno.EOPNOTSUPP, errno.EEXIST):
                raise self._xdp_error(ifindex, err, "cannot attach XDP program to %s in %s mode"
                                      % (self._label(ifindex), mode))
            failures.append("%s: %s" % (mode, codec.nl_text(err)))
        hint = None
        if expected_fd is not None:
            hint = ("the program to replace is not attached in any of these modes; attached "
                    "now: %s" % self._describe_xdp(state))
        raise BpfError("cannot attach XDP program to %s in any of the modes %s (%s)"
                       % (self._label(ifindex), ", ".join(modes), "; ".join(failures)),
                       errno=codec.nl_code(err), hint=hint)

    def xdp_clear(self, ifindex, mode, expected_fd):
        """Detach the XDP program ``expected_fd`` from ``ifindex`` and nothing else.

        ``mode`` None means the mode that holds a program now. A different program attached
        there is left alone and BpfError (EEXIST) is raised."""
        if mode is None:
            state = self.xdp_query(ifindex)
            mode = state["mode"]
            if mode is None:
                raise BpfError("no XDP program is attached to %s" % self._label(ifindex),
                               errno=errno.ENOENT)
            if mode == "multi":
                raise BpfError("%s holds XDP programs in several modes (%s)"
                               % (self._label(ifindex), self._describe_xdp(state)),
                               hint="say which mode to detach")
        err = self._xdp_try(ifindex, -1, mode, expected_fd)
        if err is not None:
            raise self._xdp_error(ifindex, err, "cannot detach XDP program from %s in %s mode"
                                  % (self._label(ifindex), mode))

    # ---------------------------------------------------------------- TC

    def hook_qdiscs(self):
        """{ifindex: "clsact" | "ingress"} for every interface with one, from one qdisc dump."""
        found = {}
        for msg in self.ipr.get_qdiscs():
            kind = msg.get_attr("TCA_KIND")
            if msg["parent"] == TC_H_CLSACT and kind in ("clsact", "ingress"):
                found[msg["index"]] = kind
        return found

    def _hook_qdisc(self, ifindex):
        for msg in self.ipr.get_qdiscs(index=ifindex):
            if msg["index"] == ifindex and msg["parent"] == TC_H_CLSACT:
                return msg.get_attr("TCA_KIND")
        return None

    def has_hook(self, ifindex, direction):
        """False when the qdisc of ``ifindex`` has no ``direction`` hook: an ``ingress`` qdisc has
        no egress hook, and the kernel files egress filter requests made of it (dump, add,
        delete) under ingress."""
        return not (direction == "egress" and self._hook_qdisc(ifindex) == "ingress")

    def ensure_clsact(self, ifindex, direction=None):
        """Add a clsact qdisc to ``ifindex``; True if added, False if one was there already.

        An ``ingress`` qdisc already in place is accepted only for ``direction="ingress"``:
        it has no egress hook (an egress filter on it would land on ingress)."""
        try:
            self.ipr.tc("add", "clsact", ifindex)
            return True
        except codec.NetlinkError as e:
            if codec.nl_code(e) == errno.ENODEV:
                self._link(ifindex)
            if codec.nl_code(e) != errno.EEXIST:
                raise codec.nl_error("cannot add a clsact qdisc to %s" % self._label(ifindex), e)
        kind = self._hook_qdisc(ifindex)
        if kind == "clsact" or (kind == "ingress" and direction == "ingress"):
            return False
        raise BpfError("%s has an %r qdisc where a clsact qdisc is needed"
                       % (self._label(ifindex), kind or "unknown"), errno=errno.EEXIST,
                       hint="an ingress qdisc has no egress hook; replace it with clsact "
                            "(`tc qdisc del dev %s ingress` removes its filters too)"
                       % self._label(ifindex))

    def _filter_msgs(self, ifindex, direction):
        if not self.has_hook(ifindex, direction):
            return []
        return list(self.ipr.get_filters(index=ifindex, parent=codec.check_direction(direction)))

    def tc_filters(self, ifindex, direction):
        """Filters on the ``direction`` hook of ``ifindex``: list of dict(kind, prio, handle,
        protocol, prog_id, tag, name, direct_action); non-bpf filters have prog_id None."""
        msgs = self._filter_msgs(ifindex, direction)
        if not msgs:
            self._link(ifindex)  # an empty dump is also what a missing interface gives
        return [entry for entry in map(codec.filter_entry, msgs) if entry is not None]

    @staticmethod
    def _check_slot(prio, handle):
        if not 0 < prio <= TC_PRIO_MAX:
            raise BpfError("TC priority %r is out of range" % (prio,), hint="use 1 to 65535")
        if not 0 < handle <= 0xFFFFFFFF:
            raise BpfError("TC handle %r is out of range" % (handle,),
                           hint="use 1 to 0xffffffff (handle 0 would mean every filter of "
                                "the priority)")

    def tc_attach(self, ifindex, direction, prog_fd, prio, handle, name, replace=False,
                  protocol=ETH_P_ALL):
        """Add a direct-action bpf filter running ``prog_fd`` at ``prio``/``handle``.

        With ``replace`` an existing filter at that prio/handle is swapped in one request
        (no window without a filter) and a missing one is created; without it an existing
        filter makes the kernel refuse (EEXIST). Check who owns a filter before replacing it."""
        parent = codec.check_direction(direction)
        self._check_slot(prio, handle)
        command = "replace-filter" if replace else "add-filter"
        try:
            self.ipr.tc(command, "bpf", ifindex, handle=handle, fd=int(prog_fd), name=name,
                        parent=parent, prio=prio, protocol=protocol, direct_action=True)
        except codec.NetlinkError as e:
            code = codec.nl_code(e)
            if code == errno.ENODEV:
                self._link(ifindex)
            hint = None
            if code == errno.EEXIST:
                hint = "a filter already holds this prio/handle; pick another or replace it"
            elif code == errno.EINVAL and self._hook_qdisc(ifindex) is None:
                hint = "the interface has no clsact qdisc; add one first"
            raise codec.nl_error("cannot attach TC %s filter to %s prio %d handle %#x"
                                 % (direction, self._label(ifindex), prio, handle), e, hint=hint)

    def tc_detach(self, ifindex, direction, prio, handle, expected_prog_id=None):
        """Delete the bpf filter at ``prio``/``handle``; True if deleted, False if none was there.

        With ``expected_prog_id`` a filter running another program is left alone (BpfError)."""
        parent = codec.check_direction(direction)
        self._check_slot(prio, handle)
        if not self.has_hook(ifindex, direction):
            return False
        if expected_prog_id is not None:
            for entry in self.tc_filters(ifindex, direction):
                if entry["prio"] == prio and entry["handle"] == handle:
                    if entry["prog_id"] != expected_prog_id:
                        running = ("program %d" % entry["prog_id"] if entry["prog_id"]
                                   else "a %s filter" % entry["kind"])
                        raise BpfError("TC %s filter on %s prio %d handle %#x runs %s, not "
                                       "program %d; not detaching it"
                                       % (direction, self._label(ifindex), prio, handle, running,
                                          expected_prog_id), errno=errno.EEXIST)
                    break
            else:
                return False
        try:
            self.ipr.tc("del-filter", "bpf", ifindex, handle=handle, parent=parent, prio=prio,
                        protocol=0)
        except codec.NetlinkError as e:
            code = codec.nl_code(e)
            if code == errno.ENODEV:
                self._link(ifindex)
            if code == errno.ENOENT or (code == errno.EINVAL and self._hook_qdisc(ifindex) is None):
                return False
            raise codec.nl_error("cannot detach TC %s filter from %s prio %d handle %#x"
                                 % (direction, self._label(ifindex), prio, handle), e)
        return True

    def clsact_remove_if_empty(self, ifindex):
        """Delete the clsact qdisc of ``ifindex`` when neither hook holds any filter.

        True if deleted; False when there is none, it is not clsact, or a filter is left."""
        if self._hook_qdisc(ifindex) != "clsact":
            return False
        for direction in TC_PARENTS:
            if self._filter_msgs(ifindex, direction):
                return False
        try:
            self.ipr.tc("del", "clsact", ifindex)
        except codec.NetlinkError as e:
            if codec.nl_code(e) in (errno.ENOENT, errno.EINVAL, errno.ENODEV):
                return False
            raise codec.nl_error("cannot remove the clsact qdisc of %s" % self._label(ifindex), e)
        return True
