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
import os
import socket

from ansible_collections.ebpf.observability.plugins.module_utils.errors import BpfError, errno_error

# pyroute2 is imported when the first Netlink object is made (_load_pyroute2), not with this
# file: importing it costs ~0.1 s on a real host and ~1 s in an emulated VM, and most module runs
# (ebpf_program state=present, tracing hooks) never open a netlink socket.
IPRoute = None
NetlinkError = OSError
PYROUTE2_IMPORT_ERROR = None

XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_HW_MODE = 1 << 3
XDP_FLAGS_REPLACE = 1 << 4
XDP_MODE_FLAGS = {"skb": XDP_FLAGS_SKB_MODE, "drv": XDP_FLAGS_DRV_MODE, "hw": XDP_FLAGS_HW_MODE}
# IFLA_XDP attribute holding the program id of each mode.
XDP_MODE_ATTRS = (("drv", "IFLA_XDP_DRV_PROG_ID"), ("skb", "IFLA_XDP_SKB_PROG_ID"),
                  ("hw", "IFLA_XDP_HW_PROG_ID"))

TC_H_CLSACT = 0xFFFFFFF1  # parent of the clsact (and ingress) qdisc
TC_PARENTS = {"ingress": 0xFFFFFFF2, "egress": 0xFFFFFFF3}
TC_PRIO_MAX = 0xFFFF
TCA_BPF_FLAG_ACT_DIRECT = 1
ETH_P_ALL = 0x0003
IFF_UP = 0x1

# cls_bpf options in kernel order (include/uapi/linux/pkt_cls.h).
_TCA_BPF_ORDER = ("TCA_BPF_UNSPEC", "TCA_BPF_ACT", "TCA_BPF_POLICE", "TCA_BPF_CLASSID",
                  "TCA_BPF_OPS_LEN", "TCA_BPF_OPS", "TCA_BPF_FD", "TCA_BPF_NAME", "TCA_BPF_FLAGS",
                  "TCA_BPF_FLAGS_GEN", "TCA_BPF_TAG", "TCA_BPF_ID")
_TCA_BPF_NEW = {"TCA_BPF_FLAGS_GEN": "uint32", "TCA_BPF_TAG": "cdata", "TCA_BPF_ID": "uint32"}


def _load_pyroute2():
    """Import pyroute2 once and close its gaps; a clear BpfError when it is missing."""
    global IPRoute, NetlinkError, PYROUTE2_IMPORT_ERROR  # pylint: disable=global-statement
    if IPRoute is not None:
        return
    try:
        from pyroute2 import IPRoute as ipr_class  # pylint: disable=import-outside-toplevel
        from pyroute2.netlink.exceptions import NetlinkError as error_class  # pylint: disable=import-outside-toplevel
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg  # pylint: disable=import-outside-toplevel
        from pyroute2.netlink.rtnl.tcmsg import sched_bpf  # pylint: disable=import-outside-toplevel
    except ImportError as e:
        PYROUTE2_IMPORT_ERROR = e
        raise BpfError("pyroute2 is needed for XDP and TC but cannot be imported: %s" % e,
                       hint="install it on the target (Debian/Ubuntu: python3-pyroute2)")
    _extend_pyroute2(ifinfmsg, sched_bpf)
    NetlinkError = error_class
    IPRoute = ipr_class


def _extend_pyroute2(_ifinfmsg, _sched_bpf):
    """Close the two pyroute2 gaps described in the module docstring (idempotent)."""
    options = _sched_bpf.options
    names = tuple(item[0] for item in options.nla_map)
    known = len(names)
    # Extend only the layout known here: a prefix of the kernel order that ends at or after
    # TCA_BPF_FLAGS and lacks some of the newer attributes.
    if names == _TCA_BPF_ORDER[:known] and _TCA_BPF_ORDER.index("TCA_BPF_FLAGS") < known \
            < len(_TCA_BPF_ORDER):
        options.nla_map = tuple(options.nla_map) + tuple(
            (name, _TCA_BPF_NEW[name]) for name in _TCA_BPF_ORDER[known:])
        # pyroute2 compiles nla_map into lookup tables on first use; make it compile again.
        options._nlmsg_base__compiled_nla = False
    xdp_flags = _ifinfmsg.xdp.xdp_flags
    if [tuple(field) for field in xdp_flags.fields] != [("value", "I")]:
        xdp_flags.fields = [("value", "I")]


def _nl_code(err):
    return getattr(err, "code", None) or getattr(err, "errno", None) or errno.EIO


def _nl_extack(err):
    """The kernel's extack message carried by a pyroute2 NetlinkError, or None."""
    text = err.args[1] if len(err.args) > 1 else None
    if text and text != os.strerror(_nl_code(err)):
        return text
    return None


def _nl_text(err):
    return _nl_extack(err) or os.strerror(_nl_code(err))


def _nl_error(what, err, hint=None):
    """BpfError from a pyroute2 NetlinkError, with the kernel's extack message when it sent one."""
    text = _nl_extack(err)
    if text:
        what = "%s: %s" % (what, text)
    return errno_error(what, _nl_code(err), hint=hint)


def _check_mode(mode):
    if mode not in XDP_MODE_FLAGS:
        raise BpfError("unknown XDP mode %r" % (mode,), hint="use one of hw, drv, skb")
    return XDP_MODE_FLAGS[mode]


def _check_direction(direction):
    if direction not in TC_PARENTS:
        raise BpfError("unknown TC direction %r" % (direction,), hint="use ingress or egress")
    return TC_PARENTS[direction]


def _xdp_attach_attrs(prog_fd, mode, expected_fd, replace):
    """IFLA_XDP attributes: see Netlink.xdp_set (prog_fd -1 detaches). Fds are ints or
    anything int() takes (bpf_syscall.BpfFd)."""
    flags = _check_mode(mode)
    attrs = [("IFLA_XDP_FD", int(prog_fd))]
    if expected_fd is not None:
        flags |= XDP_FLAGS_REPLACE
        attrs.append(("IFLA_XDP_EXPECTED_FD", int(expected_fd)))
    elif not replace:
        flags |= XDP_FLAGS_UPDATE_IF_NOEXIST
    attrs.append(("IFLA_XDP_FLAGS", flags))
    return attrs


def _xdp_state(msg):
    """dict(mode, prog_id, drv_prog_id, skb_prog_id, hw_prog_id) from an RTM_NEWLINK message."""
    xdp = msg.get_attr("IFLA_XDP")
    state = {"mode": None, "prog_id": None}
    attached = []
    for mode, attr in XDP_MODE_ATTRS:
        prog_id = (xdp.get_attr(attr) if xdp else None) or None
        state[mode + "_prog_id"] = prog_id
        if prog_id:
            attached.append((mode, prog_id))
    if len(attached) == 1:
        state["mode"], state["prog_id"] = attached[0]
    elif attached:
        state["mode"] = "multi"
    return state


def _filter_entry(msg):
    """dict describing one RTM_NEWTFILTER message, or None for a priority's header entry."""
    options = msg.get_attr("TCA_OPTIONS")
    if not options or not msg["handle"]:
        return None
    kind = msg.get_attr("TCA_KIND")
    entry = {"kind": kind, "prio": msg["info"] >> 16, "handle": msg["handle"],
             "protocol": socket.ntohs(msg["info"] & 0xFFFF), "prog_id": None, "tag": None,
             "name": None, "direct_action": False}
    if kind == "bpf":
        tag = options.get_attr("TCA_BPF_TAG")
        entry.update(prog_id=options.get_attr("TCA_BPF_ID"), name=options.get_attr("TCA_BPF_NAME"),
                     tag=tag.hex() if isinstance(tag, (bytes, bytearray)) else tag,
                     direct_action=bool((options.get_attr("TCA_BPF_FLAGS") or 0)
                                        & TCA_BPF_FLAG_ACT_DIRECT))
    return entry


class Netlink:
    """One rtnetlink socket and the interface, XDP and TC operations of the kernel layer."""

    def __init__(self):
        _load_pyroute2()
        self.ipr = IPRoute(ext_ack=True)

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
        except NetlinkError as e:
            if _nl_code(e) == errno.ENODEV:
                raise BpfError("interface index %d does not exist" % ifindex, errno=errno.ENODEV,
                               hint="it may have been removed; check `ip link` in the right "
                                    "network namespace")
            raise _nl_error("cannot read interface index %d" % ifindex, e)

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
        except NetlinkError as e:
            if _nl_code(e) == errno.ENODEV:
                raise BpfError("interface %s does not exist" % name, errno=errno.ENODEV,
                               hint="check the name with `ip link` in the network namespace "
                                    "the task runs in")
            raise _nl_error("cannot look up interface %s" % name, e)

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
        return _xdp_state(self._link(ifindex))

    def xdp_query_all(self):
        """xdp_query() of every interface from one dump, each with ``ifindex`` and ``interface``."""
        states = []
        for msg in self.ipr.get_links():
            state = _xdp_state(msg)
            state.update(ifindex=msg["index"], interface=msg.get_attr("IFLA_IFNAME"))
            states.append(state)
        return states

    def _xdp_try(self, ifindex, prog_fd, mode, expected_fd=None, replace=False, state=None):
        """Send one IFLA_XDP change; the NetlinkError on failure, else None.

        An attach that only adds (UPDATE_IF_NOEXIST) onto a mode already holding a program is
        refused before it is sent: pyroute2 0.7 re-sends a request answered with EBUSY for
        9 s. The kernel still has the last word when the program appears meanwhile."""
        attrs = _xdp_attach_attrs(prog_fd, mode, expected_fd, replace)
        if expected_fd is None and not replace:
            if state is None:
                state = self.xdp_query(ifindex)
            if state[mode + "_prog_id"]:
                return NetlinkError(errno.EBUSY, "XDP program already attached")
        try:
            self.ipr.link("set", index=ifindex, xdp={"attrs": attrs})
        except NetlinkError as e:
            if _nl_code(e) == errno.ENODEV:
                self._link(ifindex)  # raises the clear "does not exist" error
            return e
        return None

    def _xdp_error(self, ifindex, err, what):
        code = _nl_code(err)
        hint = None
        if code == errno.EBUSY:
            hint = ("attached there now: XDP program %s; detach it first if it is not needed "
                    "(a program attached through a bpf_link goes away with the link)"
                    % self._describe_xdp(self.xdp_query(ifindex)))
        elif code in (errno.EINVAL, errno.EOPNOTSUPP):
            hint = "the driver may not support this XDP mode; skb (generic) mode works everywhere"
        return _nl_error(what, err, hint=hint)

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
            if _nl_code(err) not in (errno.EINVAL, errno.EOPNOTSUPP, errno.EEXIST):
                raise self._xdp_error(ifindex, err, "cannot attach XDP program to %s in %s mode"
                                      % (self._label(ifindex), mode))
            failures.append("%s: %s" % (mode, _nl_text(err)))
        hint = None
        if expected_fd is not None:
            hint = ("the program to replace is not attached in any of these modes; attached "
                    "now: %s" % self._describe_xdp(state))
        raise BpfError("cannot attach XDP program to %s in any of the modes %s (%s)"
                       % (self._label(ifindex), ", ".join(modes), "; ".join(failures)),
                       errno=_nl_code(err), hint=hint)

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

    def ensure_clsact(self, ifindex, direction=None):
        """Add a clsact qdisc to ``ifindex``; True if added, False if one was there already.

        An ``ingress`` qdisc already in place is accepted only for ``direction="ingress"``:
        it has no egress hook (an egress filter on it would land on ingress)."""
        try:
            self.ipr.tc("add", "clsact", ifindex)
            return True
        except NetlinkError as e:
            if _nl_code(e) == errno.ENODEV:
                self._link(ifindex)
            if _nl_code(e) != errno.EEXIST:
                raise _nl_error("cannot add a clsact qdisc to %s" % self._label(ifindex), e)
        kind = self._hook_qdisc(ifindex)
        if kind == "clsact" or (kind == "ingress" and direction == "ingress"):
            return False
        raise BpfError("%s has an %r qdisc where a clsact qdisc is needed"
                       % (self._label(ifindex), kind or "unknown"), errno=errno.EEXIST,
                       hint="an ingress qdisc has no egress hook; replace it with clsact "
                            "(`tc qdisc del dev %s ingress` removes its filters too)"
                       % self._label(ifindex))

    def _filter_msgs(self, ifindex, direction):
        return list(self.ipr.get_filters(index=ifindex, parent=_check_direction(direction)))

    def tc_filters(self, ifindex, direction):
        """Filters on the ``direction`` hook of ``ifindex``: list of dict(kind, prio, handle,
        protocol, prog_id, tag, name, direct_action); non-bpf filters have prog_id None."""
        msgs = self._filter_msgs(ifindex, direction)
        if not msgs:
            self._link(ifindex)  # an empty dump is also what a missing interface gives
        return [entry for entry in map(_filter_entry, msgs) if entry is not None]

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
        parent = _check_direction(direction)
        self._check_slot(prio, handle)
        command = "replace-filter" if replace else "add-filter"
        try:
            self.ipr.tc(command, "bpf", ifindex, handle=handle, fd=int(prog_fd), name=name,
                        parent=parent, prio=prio, protocol=protocol, direct_action=True)
        except NetlinkError as e:
            code = _nl_code(e)
            if code == errno.ENODEV:
                self._link(ifindex)
            hint = None
            if code == errno.EEXIST:
                hint = "a filter already holds this prio/handle; pick another or replace it"
            elif code == errno.EINVAL and self._hook_qdisc(ifindex) is None:
                hint = "the interface has no clsact qdisc; add one first"
            raise _nl_error("cannot attach TC %s filter to %s prio %d handle %#x"
                            % (direction, self._label(ifindex), prio, handle), e, hint=hint)

    def tc_detach(self, ifindex, direction, prio, handle, expected_prog_id=None):
        """Delete the bpf filter at ``prio``/``handle``; True if deleted, False if none was there.

        With ``expected_prog_id`` a filter running another program is left alone (BpfError)."""
        parent = _check_direction(direction)
        self._check_slot(prio, handle)
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
        except NetlinkError as e:
            code = _nl_code(e)
            if code == errno.ENODEV:
                self._link(ifindex)
            if code == errno.ENOENT or (code == errno.EINVAL and self._hook_qdisc(ifindex) is None):
                return False
            raise _nl_error("cannot detach TC %s filter from %s prio %d handle %#x"
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
        except NetlinkError as e:
            if _nl_code(e) in (errno.ENOENT, errno.EINVAL, errno.ENODEV):
                return False
            raise _nl_error("cannot remove the clsact qdisc of %s" % self._label(ifindex), e)
        return True
