# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pyroute2 for the kernel layer's Netlink: imported on first use with two gaps of pyroute2
0.7-0.9 closed (see netlink), netlink errors turned into BpfError with the kernel's extack
message, and the XDP and TC attributes encoded and decoded.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import errno
import os
import socket

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bundled_runtime
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError, errno_error

# pyroute2 is imported when the first Netlink object is made (load_pyroute2), not with this
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


def _refuse_release(version):
    raise BpfError("pyroute2 %s is too old for XDP and TC: 0.7 or later is needed" % version,
                   hint="install pyroute2 0.7+ on the host (Debian 12, Ubuntu 24.04: python3-pyroute2; or pip), or "
                        "let the ebpf_programs role ship its copy (ebpf_programs_runtime_dir)")


def _import_pyroute2(module, name=None):
    """A pyroute2 module, or one of its names; a clear BpfError when it cannot be imported."""
    global PYROUTE2_IMPORT_ERROR  # pylint: disable=global-statement
    try:
        imported = importlib.import_module(module)
        return getattr(imported, name) if name else imported
    except (ImportError, AttributeError) as e:
        PYROUTE2_IMPORT_ERROR = e
        raise BpfError("pyroute2 is needed for XDP and TC but cannot be imported: %s" % e,
                       hint="install it on the target (Debian/Ubuntu: python3-pyroute2)")


def load_pyroute2():
    """Import pyroute2 once and close its gaps; a clear BpfError when it is missing."""
    global IPRoute, NetlinkError  # pylint: disable=global-statement
    if IPRoute is not None:
        return
    # The release imported (the collection's copy once activated) is asked before its modules
    # are, from the package itself (its metadata could name another copy on sys.path). A release
    # without its version file ("unknown") is judged by its XDP support.
    pyroute2 = _import_pyroute2("pyroute2")
    version = getattr(pyroute2, "__version__", "unknown")
    known = version[:1].isdigit()
    if known and bundled_runtime.pyroute2_too_old(version):
        _refuse_release(version)
    ipr_class = _import_pyroute2("pyroute2", "IPRoute")
    error_class = _import_pyroute2("pyroute2.netlink.exceptions", "NetlinkError")
    ifinfmsg = _import_pyroute2("pyroute2.netlink.rtnl.ifinfmsg", "ifinfmsg")
    sched_bpf = _import_pyroute2("pyroute2.netlink.rtnl.tcmsg.sched_bpf")
    if not hasattr(ifinfmsg, "xdp"):
        _refuse_release(version if known else "(release unknown)")
    extend_pyroute2(ifinfmsg, sched_bpf)
    NetlinkError = error_class
    IPRoute = ipr_class


def extend_pyroute2(_ifinfmsg, _sched_bpf):
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


def nl_code(err):
    return getattr(err, "code", None) or getattr(err, "errno", None) or errno.EIO


def nl_extack(err):
    """The kernel's extack message carried by a pyroute2 NetlinkError, or None."""
    text = err.args[1] if len(err.args) > 1 else None
    if text and text != os.strerror(nl_code(err)):
        return text
    return None


def nl_text(err):
    return nl_extack(err) or os.strerror(nl_code(err))


def nl_error(what, err, hint=None):
    """BpfError from a pyroute2 NetlinkError, with the kernel's extack message when it sent one."""
    text = nl_extack(err)
    if text:
        what = "%s: %s" % (what, text)
    return errno_error(what, nl_code(err), hint=hint)


def check_mode(mode):
    if mode not in XDP_MODE_FLAGS:
        raise BpfError("unknown XDP mode %r" % (mode,), hint="use one of hw, drv, skb")
    return XDP_MODE_FLAGS[mode]


def check_direction(direction):
    if direction not in TC_PARENTS:
        raise BpfError("unknown TC direction %r" % (direction,), hint="use ingress or egress")
    return TC_PARENTS[direction]


def xdp_attach_attrs(prog_fd, mode, expected_fd, replace):
    """IFLA_XDP attributes: see Netlink.xdp_set (prog_fd -1 detaches). Fds are ints or
    anything int() takes (bpf_syscall.BpfFd)."""
    flags = check_mode(mode)
    attrs = [("IFLA_XDP_FD", int(prog_fd))]
    if expected_fd is not None:
        flags |= XDP_FLAGS_REPLACE
        attrs.append(("IFLA_XDP_EXPECTED_FD", int(expected_fd)))
    elif not replace:
        flags |= XDP_FLAGS_UPDATE_IF_NOEXIST
    attrs.append(("IFLA_XDP_FLAGS", flags))
    return attrs


def xdp_state(msg):
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


def filter_entry(msg):
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
