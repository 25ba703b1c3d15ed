# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which XDP modes each interface's driver supports, from the kernel's ``netdev`` generic
netlink family (Linux 6.3+: NETDEV_CMD_DEV_GET, attribute NETDEV_A_DEV_XDP_FEATURES).

Generic XDP (skb mode) works on every interface; native (drv) mode needs the driver's
NETDEV_XDP_ACT_BASIC, offload (hw) its NETDEV_XDP_ACT_HW_OFFLOAD. Older kernels have no such
family: the answer is then None (unknown), and mode negotiation finds out by trying.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

NETDEV_CMD_DEV_GET = 1
NETDEV_XDP_ACT_BASIC = 1 << 0
NETDEV_XDP_ACT_HW_OFFLOAD = 1 << 4
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
_MAX_REPLIES = 10000
# A netdev family device message (include/uapi/linux/netdev.h, NETDEV_A_DEV_*).
_DEV_ATTRS = (
    ("NETDEV_A_DEV_UNSPEC", "none"),
    ("NETDEV_A_DEV_IFINDEX", "uint32"),
    ("NETDEV_A_DEV_PAD", "none"),
    ("NETDEV_A_DEV_XDP_FEATURES", "uint64"),
)


def modes(features):
    """XDP modes an interface with these NETDEV_XDP_ACT_* feature bits supports."""
    found = ["skb"]
    if features & NETDEV_XDP_ACT_BASIC:
        found.append("drv")
    if features & NETDEV_XDP_ACT_HW_OFFLOAD:
        found.append("hw")
    return found


def xdp_modes():
    """{ifindex: [modes]} for the interfaces of the current network namespace, or None when the
    kernel (before 6.3) or pyroute2 cannot tell."""
    try:  # imported here, not with this file: only ebpf_info asks
        from pyroute2.netlink import genlmsg  # pylint: disable=import-outside-toplevel
        from pyroute2.netlink.generic import GenericNetlinkSocket  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    dev_msg = type("netdev_dev_msg", (genlmsg,), {"prefix": "NETDEV_A_DEV_", "nla_map": _DEV_ATTRS})
    sock = GenericNetlinkSocket()
    try:
        try:
            sock.bind("netdev", dev_msg)
        except Exception:  # pylint: disable=broad-except
            return None  # no netdev family: a kernel before 6.3
        msg = dev_msg()
        msg["cmd"] = NETDEV_CMD_DEV_GET
        msg["version"] = 1
        # One request and a plain read loop: pyroute2 0.7's nlm_request returns only the first
        # part of this dump.
        sock.put(msg, msg_type=sock.prid, msg_flags=NLM_F_REQUEST | NLM_F_DUMP)
        found = {}
        for _read in range(_MAX_REPLIES):
            replies = sock.get()
            for reply in replies:
                kind = reply["header"]["type"]
                if kind == NLMSG_ERROR:
                    return None
                if kind == NLMSG_DONE:
                    return found
                ifindex = reply.get_attr("NETDEV_A_DEV_IFINDEX")
                if ifindex:
                    found[ifindex] = modes(reply.get_attr("NETDEV_A_DEV_XDP_FEATURES") or 0)
        return found
    finally:
        sock.close()
