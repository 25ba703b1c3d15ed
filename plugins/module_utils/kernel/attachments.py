# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where programs are attached: XDP and TC in the current network namespace (and, on request,
in every other one of the host), and every bpf_link of the kernel.

An attachment is a dict with ``kind`` ("xdp", "tc" or "link") and ``prog_id``, plus
- xdp: ``mode`` (drv, skb, hw), ``ifindex``, ``interface``;
- tc: ``direction``, ``prio``, ``handle``, ``ifindex``, ``interface``;
- link: ``link_id``, ``link_type`` and, where the kernel reports them, ``ifindex`` (with
  ``interface`` when that index exists in the current namespace), ``attach_type``,
  ``attach_type_name``, ``tp_name``, and for perf_event links on Linux 6.6+
  ``perf_event_type_name`` with ``func_name`` (kprobes) or ``file_name`` (uprobes).
A program attached through an XDP bpf_link shows both as "xdp" (carrying that ``link_id``) and
as "link". A component of libxdp's XDP dispatcher is the "link" (of type tracing) that extends
the dispatcher, with ``dispatcher_id``, ``mode``, ``ifindex`` and ``interface``. Attachments in
another network namespace carry ``elsewhere`` and, for XDP and TC found there, ``netns`` (a path
of that namespace) and ``netns_inode``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import libxdp
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import netns
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink_codec import XDP_MODE_ATTRS

# Link types bound to an interface; their ifindex is 0 once detached.
HOOK_LINK_TYPES = ("xdp", "tcx", "netkit")
LINK_KEYS = ("ifindex", "attach_type", "attach_type_name", "tp_name", "perf_event_type_name", "func_name", "file_name")


def find_attachments(prog_ids, netlink=None, links=True, other_namespaces=False):
    """Every attachment of the programs whose ids are in ``prog_ids`` (list of dicts), in this
    network namespace.

    ``links=False`` leaves out bpf_links: listing them needs CAP_SYS_ADMIN, which a reader such
    as the exporter's unprivileged service does not have; XDP and TC attachments it still sees.
    ``other_namespaces=True`` adds what runs in the host's other network namespaces (named ones
    and those of running processes, kernel/netns): XDP and TC attached there over netlink (with
    the namespace) and the XDP and TCX links bound to their interfaces, all marked
    ``elsewhere``, for a caller that must know every place a program runs.
    """
    wanted = set(int(prog_id) for prog_id in prog_ids)
    if not wanted:
        return []
    if netlink is None:
        with Netlink() as own:
            return _find(wanted, own, links, other_namespaces)
    return _find(wanted, netlink, links, other_namespaces)


def _find(wanted, netlink, with_links, other_namespaces):
    found, names, xdp_here = _netlink_attachments(wanted, netlink)
    if other_namespaces:
        found.extend(_elsewhere(wanted))
    links = _links(wanted, names, xdp_here, other_namespaces) if with_links else []
    for entry in found:
        if entry["kind"] == "xdp":
            for link in links:
                if link["link_type"] == "xdp" and (link.get("ifindex"), link["prog_id"], bool(link.get("elsewhere"))) \
                        == (entry["ifindex"], entry["prog_id"], bool(entry.get("elsewhere"))):
                    entry["link_id"] = link["link_id"]  # only the link can detach it
    return found + links


def _elsewhere(wanted):
    """XDP and TC attachments of every other network namespace, with the namespace."""
    here = netns.current()
    found = []
    for path, inode in netns.namespaces():
        if inode == here:
            continue
        try:
            with netns.entered(path, inode), Netlink() as netlink:
                entries = _netlink_attachments(wanted, netlink)[0]
        except BpfError as e:
            if e.errno == errno.ENOENT:
                continue  # the namespace went away meanwhile
            raise
        for entry in entries:
            entry.update(elsewhere=True, netns=path, netns_inode=inode)
        found.extend(entries)
    return found


def _netlink_attachments(wanted, netlink):
    """(XDP and TC attachments, {ifindex: name}, {(ifindex, XDP prog id)}) of the namespace
    ``netlink`` talks to."""
    found = []
    names = {}
    xdp_here = {}  # {(ifindex, prog id): mode} of the XDP programs of this network namespace
    for state in netlink.xdp_query_all():  # one RTM_GETLINK dump
        names[state["ifindex"]] = state["interface"]
        for mode, _attr in XDP_MODE_ATTRS:
            if state[mode + "_prog_id"]:
                xdp_here[(state["ifindex"], state[mode + "_prog_id"])] = mode
            if state[mode + "_prog_id"] in wanted:
                found.append({"kind": "xdp", "prog_id": state[mode + "_prog_id"], "mode": mode,
                              "ifindex": state["ifindex"], "interface": state["interface"]})
    for ifindex, qdisc in sorted(netlink.hook_qdiscs().items()):  # one RTM_GETQDISC dump
        # An ingress qdisc has only the ingress hook (asking it for egress lists ingress again).
        for direction in ("ingress", "egress") if qdisc == "clsact" else ("ingress",):
            try:
                filters = netlink.tc_filters(ifindex, direction)
            except BpfError as e:
                if e.errno == errno.ENODEV:
                    break  # removed meanwhile
                raise
            for entry in filters:
                if entry["prog_id"] in wanted:
                    found.append({"kind": "tc", "prog_id": entry["prog_id"], "direction": direction,
                                  "prio": entry["prio"], "handle": entry["handle"],
                                  "ifindex": ifindex, "interface": names.get(ifindex)})
    return found, names, xdp_here


def _in_this_netns(info, xdp_here, tcx_cache):
    """Whether a link bound to an interface is bound to one of this network namespace: link
    info gives an ifindex but no namespace, and ifindexes repeat across namespaces."""
    if info.get("type_name") == "xdp":
        return (info.get("ifindex"), info.get("prog_id")) in xdp_here
    if info.get("type_name") == "tcx":
        key = (info["ifindex"], info["attach_type"])
        if key not in tcx_cache:
            try:
                tcx_cache[key] = bpf_syscall.prog_query(*key)["link_ids"]  # in run order
            except BpfError as e:
                if e.errno not in (errno.ENODEV, errno.ENXIO, errno.EINVAL):
                    raise
                tcx_cache[key] = []  # no such interface here
        return info["id"] in tcx_cache[key]
    return True


def _links(wanted, names, xdp_here, other_namespaces):
    found = []
    tcx_cache = {}
    for link_id in bpf_syscall.link_ids():
        try:
            with bpf_syscall.link_fd_by_id(link_id) as fd:
                info = bpf_syscall.link_info(fd.fd)
        except BpfError as e:
            if e.errno == errno.ENOENT:
                continue  # released meanwhile
            raise
        if info.get("prog_id") not in wanted:
            continue
        if info.get("type_name") in HOOK_LINK_TYPES and not info.get("ifindex"):
            continue  # detached from its interface: the link holds the program but runs it nowhere
        elsewhere = info.get("type_name") in HOOK_LINK_TYPES and not _in_this_netns(info, xdp_here, tcx_cache)
        if elsewhere and not other_namespaces:
            continue  # bound to an interface of another network namespace
        entry = {"kind": "link", "prog_id": info["prog_id"], "link_id": info["id"],
                 "link_type": info.get("type_name") or str(info.get("type"))}
        entry.update((key, info[key]) for key in LINK_KEYS if info.get(key) is not None)
        if elsewhere:
            entry["elsewhere"] = True
        elif info.get("type_name") == "tracing" and info.get("target_obj_id"):
            _dispatcher_component(entry, info["target_obj_id"], xdp_here)
        if not elsewhere and entry.get("ifindex") in names:
            entry["interface"] = names[entry["ifindex"]]
        if not elsewhere and info.get("type_name") == "tcx":  # where it runs among the hook's programs
            entry["tcx_position"] = tcx_cache[(info["ifindex"], info["attach_type"])].index(info["id"])
        found.append(entry)
    return found


def extensions_of(programs):
    """{extension program id: program id} of the extension (freplace) programs that use a map of
    one of ``programs`` ({prog_id: prog_info}): our components of libxdp's XDP dispatcher, which
    run in place of the pinned program. Needs CAP_SYS_ADMIN (BpfError EPERM without it)."""
    owner_of_map = dict((map_id, prog_id) for prog_id, info in programs.items() for map_id in info.get("map_ids") or [])
    found = {}
    for prog_id in bpf_syscall.prog_ids():
        try:
            with bpf_syscall.prog_fd_by_id(prog_id) as fd:
                info = bpf_syscall.prog_info(fd)
        except BpfError as e:
            if e.errno == errno.ENOENT:
                continue  # unloaded meanwhile
            raise
        owners = [owner_of_map[m] for m in info.get("map_ids") or [] if m in owner_of_map]
        if info.get("type_name") == "ext" and owners:
            found[prog_id] = owners[0]
    return found


def _dispatcher_component(entry, target_id, xdp_here):
    """Mark a tracing link that extends an XDP program running here (libxdp's dispatcher)."""
    for (ifindex, prog_id), mode in xdp_here.items():
        if prog_id == target_id:
            entry.pop("attach_type_name", None)  # an extension program has no attach type of its own
            entry.update(dispatcher_id=target_id, ifindex=ifindex, mode=mode)


def detach(attachment, netlink=None):
    """Detach one attachment from find_attachments(); False if it was gone already.

    Only the program found there is detached: a program attached meanwhile in its place is
    left alone (BpfError)."""
    if attachment.get("dispatcher_id") is not None:  # libxdp swaps in a dispatcher without it
        return libxdp.detach(attachment["ifindex"], attachment["mode"], attachment["prog_id"])
    if attachment.get("link_id") is not None:
        return _detach_link(attachment["link_id"])
    if attachment.get("netns_inode"):
        path = netns.path_of(attachment["netns_inode"], attachment.get("netns"))
        if path is None:
            return False  # the namespace is gone, and its interfaces with it
        with netns.entered(path, attachment["netns_inode"]), Netlink() as own:
            return _detach(attachment, own)
    if netlink is None:
        with Netlink() as own:
            return _detach(attachment, own)
    return _detach(attachment, netlink)


def _detach(attachment, netlink):
    ifindex = attachment["ifindex"]
    try:
        if attachment["kind"] == "tc":
            return netlink.tc_detach(ifindex, attachment["direction"], attachment["prio"],
                                     attachment["handle"], expected_prog_id=attachment["prog_id"])
        if netlink.xdp_query(ifindex)[attachment["mode"] + "_prog_id"] != attachment["prog_id"]:
            return False
        with bpf_syscall.prog_fd_by_id(attachment["prog_id"]) as prog:
            netlink.xdp_clear(ifindex, attachment["mode"], prog.fd)
    except BpfError as e:
        if e.errno in (errno.ENODEV, errno.ENOENT):
            return False  # the interface or the program is gone, and the attachment with it
        raise
    return True


def _detach_link(link_id):
    try:
        with bpf_syscall.link_fd_by_id(link_id) as link:
            bpf_syscall.link_detach(link.fd)
    except BpfError as e:
        if e.errno == errno.ENOENT:
            return False
        raise
    return True


def _where(attachment):
    if attachment.get("netns"):
        return "%s in network namespace %s" % (attachment.get("interface") or "ifindex %s" % attachment.get("ifindex"),
                                               attachment["netns"])
    if attachment.get("interface"):
        return attachment["interface"]
    if attachment.get("elsewhere"):
        return "ifindex %s of another network namespace" % attachment.get("ifindex")
    return "ifindex %s" % attachment.get("ifindex")


def describe(attachment):
    """One line for messages: ``xdp (drv) on eth0``, ``tc ingress on veth1 prio 1 handle 0x1``,
    ``link 42 (raw_tracepoint sys_enter)``."""
    kind = attachment["kind"]
    if kind == "xdp":
        return "xdp (%s) on %s" % (attachment["mode"], _where(attachment))
    if kind == "tc":
        return "tc %s on %s prio %d handle %#x" % (
            attachment["direction"], _where(attachment), attachment["prio"], attachment["handle"])
    link_type = attachment.get("link_type") or "unknown type"
    details = [link_type]
    details.append(attachment.get("perf_event_type_name"))
    details.append(attachment.get("tp_name") or attachment.get("func_name") or attachment.get("file_name"))
    hook = attachment.get("attach_type_name") or ""
    if hook and link_type in ("tcx", "netkit"):
        details.append(hook[len(link_type) + 1:] if hook.startswith(link_type + "_") else hook)
    if attachment.get("dispatcher_id"):
        details.append("component of the XDP dispatcher id %d" % attachment["dispatcher_id"])
    if attachment.get("ifindex"):
        details.append("on " + _where(attachment))
    return "link %d (%s)" % (attachment["link_id"], " ".join(d for d in details if d))
