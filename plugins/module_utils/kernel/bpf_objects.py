# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pins, ids and object info through libbpf's bpf_* wrappers: BPF_OBJ_PIN/GET, *_GET_FD_BY_ID,
*_GET_NEXT_ID, BPF_OBJ_GET_INFO_BY_FD, and telling program, map and link file descriptors apart."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
from ctypes import addressof, create_string_buffer, sizeof, c_uint32

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_consts import (
    BPF_LINK_TYPE_CGROUP, BPF_LINK_TYPE_ITER, BPF_LINK_TYPE_KPROBE_MULTI, BPF_LINK_TYPE_NETFILTER,
    BPF_LINK_TYPE_NETKIT, BPF_LINK_TYPE_NETNS, BPF_LINK_TYPE_PERF_EVENT,
    BPF_LINK_TYPE_RAW_TRACEPOINT, BPF_LINK_TYPE_SOCKMAP, BPF_LINK_TYPE_STRUCT_OPS,
    BPF_LINK_TYPE_TCX, BPF_LINK_TYPE_TRACING, BPF_LINK_TYPE_UPROBE_MULTI, BPF_LINK_TYPE_XDP,
    BPF_PERF_EVENT_EVENT, BPF_PERF_EVENT_KPROBE, BPF_PERF_EVENT_KRETPROBE,
    BPF_PERF_EVENT_TRACEPOINT, BPF_PERF_EVENT_UNSPEC, BPF_PERF_EVENT_UPROBE,
    BPF_PERF_EVENT_URETPROBE, PERF_EVENT_TYPE_NAMES, _type_name, attach_type_name,
    link_type_name, map_type_name, prog_type_name,
)
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import libbpf
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_call import BpfFd, fdnum, fail, cstr
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_structs import (
    FlagsOpts, BpfProgInfo, BpfMapInfo, BpfLinkInfo,
)
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import PermissionHint

# ---------------------------------------------------------------------------------------
# Pins and ids
# ---------------------------------------------------------------------------------------


def obj_get(path, flags=0):
    """Open the object pinned at `path` (flags: BPF_F_RDONLY / BPF_F_WRONLY)."""
    ret = libbpf.lib().bpf_obj_get_opts(os.fsencode(path), FlagsOpts(flags=flags) if flags else None)
    if ret < 0:
        raise fail("opening the BPF object pinned at %s" % path, ret, {
            errno.ENOENT: "nothing is pinned at %s" % path,
            errno.EINVAL: "%s is not on a bpffs mount, or the flags are invalid" % path,
            errno.EACCES: "%s is not a BPF pin (it is not on bpffs), or access is denied: "
                          "%s" % (path, PermissionHint.TEXT),
        })
    return BpfFd(ret)


def obj_pin(fd, path):
    """Pin the object behind `fd` at `path`, which must be on bpffs and not yet exist."""
    ret = libbpf.lib().bpf_obj_pin(fdnum(fd), os.fsencode(path))
    if ret < 0:
        raise fail("pinning BPF fd %d at %s" % (fdnum(fd), path), ret, {
            errno.EEXIST: "something is already pinned at %s; unpin it (rm) first" % path,
            errno.ENOENT: "the directory of %s does not exist; create it first" % path,
            errno.EPERM: "the directory of %s is not on bpffs (mount one with 'mount -t bpf "
                         "bpf /sys/fs/bpf'), or %s" % (path, PermissionHint.TEXT),
        })


def _fd_by_id(lib_kind, kind, obj_id, flags):
    get = getattr(libbpf.lib(), "bpf_%s_get_fd_by_id_opts" % lib_kind)
    ret = get(obj_id, FlagsOpts(flags=flags) if flags else None)
    if ret < 0:
        raise fail("opening BPF %s id %d" % (kind, obj_id), ret, {
            errno.ENOENT: "no %s with id %d is loaded (it may have just been freed)"
                          % (kind, obj_id),
        })
    return BpfFd(ret)


def prog_fd_by_id(prog_id):
    """Open the program with id `prog_id`."""
    return _fd_by_id("prog", "program", prog_id, 0)


def map_fd_by_id(map_id, flags=0):
    """Open the map with id `map_id` (flags: BPF_F_RDONLY / BPF_F_WRONLY)."""
    return _fd_by_id("map", "map", map_id, flags)


def link_fd_by_id(link_id):
    """Open the link with id `link_id`."""
    return _fd_by_id("link", "link", link_id, 0)


def btf_fd_by_id(btf_id):
    """Open the BTF object with id `btf_id`."""
    return _fd_by_id("btf", "BTF object", btf_id, 0)


def _next_id(lib_kind, kind, start):
    """The id of the next `kind` object after id `start`, or None past the last."""
    next_id = c_uint32()
    ret = getattr(libbpf.lib(), "bpf_%s_get_next_id" % lib_kind)(start, next_id)
    if ret < 0:
        if ret == -errno.ENOENT:
            return None
        raise fail("listing BPF %s ids after id %d" % (kind, start), ret)
    return next_id.value


def _ids(lib_kind, kind):
    start = _next_id(lib_kind, kind, 0)
    while start is not None:
        yield start
        start = _next_id(lib_kind, kind, start)


def prog_ids():
    """Ids of all loaded programs, ascending."""
    return _ids("prog", "program")


def map_ids():
    """Ids of all maps, ascending."""
    return _ids("map", "map")


def link_ids():
    """Ids of all links, ascending."""
    return _ids("link", "link")


def btf_ids():
    """Ids of all BTF objects, ascending."""
    return _ids("btf", "BTF")


def link_id_listed(link_id):
    """The kernel still lists link ``link_id``: it has not begun to free it.

    Unlike opening it by id, this sees a link whose last reference has gone but whose release
    (the detach of its program) a kernel worker has not yet run."""
    return _next_id("link", "link", link_id - 1) == link_id


# ---------------------------------------------------------------------------------------
# Object info
# ---------------------------------------------------------------------------------------

_KIND_WORDS = {"prog": "program", "map": "map", "link": "link"}


def _not_open_hints(num):
    # bpf() answers EBADF or, for BPF_OBJ_GET_INFO_BY_FD, EBADFD for a closed fd.
    text = "nothing is open as fd %d" % num
    return {errno.EBADF: text, errno.EBADFD: text}


def _get_info(fd, info, kind, check_kind=True):
    """Fill `info` through BPF_OBJ_GET_INFO_BY_FD; return the length the kernel filled.

    The command accepts every kind of BPF object and fills that object's own struct, so
    with check_kind the fd is also checked to be of `kind` ("prog", "map", "link")."""
    num = fdnum(fd)
    word = _KIND_WORDS.get(kind, kind)
    info_len = c_uint32(sizeof(info))
    ret = libbpf.lib().bpf_obj_get_info_by_fd(num, addressof(info), info_len)
    if ret < 0:
        hints = _not_open_hints(num)
        hints[errno.EINVAL] = "the file behind fd %d is not a BPF object" % num
        raise fail("reading %s info of fd %d" % (word, num), ret, hints)
    if check_kind and not _is_kind(num, kind):
        raise fail("reading %s info of fd %d" % (word, num), errno.EINVAL,
                   {errno.EINVAL: "the BPF object behind fd %d is not a %s" % (num, word)})
    return info_len.value


def _filled(cls, field, filled_len):
    """Whether the kernel filled `field` (older kernels fill a shorter struct)."""
    desc = getattr(cls, field)
    return desc.offset + desc.size <= filled_len


_PROG_OPTIONAL = ("run_time_ns", "run_cnt", "recursion_misses", "verified_insns",
                  "attach_btf_obj_id", "attach_btf_id")


def prog_info(fd):
    """Facts about a program: id, type, type_name, name, tag, map_ids, sizes, stats."""
    info = BpfProgInfo()
    filled = _get_info(fd, info, "prog")
    map_id_list = []
    if info.nr_map_ids:
        ids = (c_uint32 * info.nr_map_ids)()
        again = BpfProgInfo(nr_map_ids=info.nr_map_ids, map_ids=addressof(ids))
        _get_info(fd, again, "prog", check_kind=False)
        map_id_list = list(ids[:min(again.nr_map_ids, info.nr_map_ids)])
    out = {
        "id": info.id,
        "type": info.type,
        "type_name": prog_type_name(info.type),
        "name": cstr(info.name),
        "tag": bytes(info.tag).hex(),
        "map_ids": map_id_list,
        "jited_len": info.jited_prog_len,
        "xlated_len": info.xlated_prog_len,
        "load_time": info.load_time,
        "created_by_uid": info.created_by_uid,
        "gpl_compatible": bool(info.gpl_compatible),
        "ifindex": info.ifindex,
        "btf_id": info.btf_id,
    }
    for field in _PROG_OPTIONAL:
        if _filled(BpfProgInfo, field, filled):
            out[field] = getattr(info, field)
    return out


def map_info(fd):
    """Facts about a map: id, type, type_name, name, sizes, flags, BTF ids."""
    info = BpfMapInfo()
    _get_info(fd, info, "map")
    return {
        "id": info.id,
        "type": info.type,
        "type_name": map_type_name(info.type),
        "name": cstr(info.name),
        "key_size": info.key_size,
        "value_size": info.value_size,
        "max_entries": info.max_entries,
        "map_flags": info.map_flags,
        "ifindex": info.ifindex,
        "btf_id": info.btf_id,
        "btf_key_type_id": info.btf_key_type_id,
        "btf_value_type_id": info.btf_value_type_id,
        "map_extra": info.map_extra,
    }


def _link_name_member(info, link_type, perf_type):
    """(member struct, pointer field, length field) of the string a link type reports, in
    `info`, or None. perf_type is the perf event type of a perf_event link."""
    u = info.u
    if link_type == BPF_LINK_TYPE_RAW_TRACEPOINT:
        return u.raw_tracepoint, "tp_name", "tp_name_len"
    if link_type == BPF_LINK_TYPE_ITER:
        return u.iter, "target_name", "target_name_len"
    if link_type == BPF_LINK_TYPE_UPROBE_MULTI:
        return u.uprobe_multi, "path", "path_size"
    if link_type == BPF_LINK_TYPE_PERF_EVENT:
        if perf_type in (BPF_PERF_EVENT_UPROBE, BPF_PERF_EVENT_URETPROBE):
            return u.perf_event.u.uprobe, "file_name", "name_len"
        if perf_type in (BPF_PERF_EVENT_KPROBE, BPF_PERF_EVENT_KRETPROBE):
            return u.perf_event.u.kprobe, "func_name", "name_len"
        if perf_type == BPF_PERF_EVENT_TRACEPOINT:
            return u.perf_event.u.tracepoint, "tp_name", "name_len"
    return None


def _link_fields(info, name):
    """The per-type part of link_info()."""
    t, u = info.type, info.u
    out = {}
    if t == BPF_LINK_TYPE_RAW_TRACEPOINT:
        out["tp_name"] = name
    elif t == BPF_LINK_TYPE_TRACING:
        out.update(attach_type=u.tracing.attach_type, target_obj_id=u.tracing.target_obj_id,
                   target_btf_id=u.tracing.target_btf_id)
    elif t == BPF_LINK_TYPE_CGROUP:
        out.update(cgroup_id=u.cgroup.cgroup_id, attach_type=u.cgroup.attach_type)
    elif t == BPF_LINK_TYPE_ITER:
        out.update(target_name=name, map_id=u.iter.map_id)
    elif t == BPF_LINK_TYPE_NETNS:
        out.update(netns_ino=u.netns.target, attach_type=u.netns.attach_type)
    elif t == BPF_LINK_TYPE_XDP:
        out["ifindex"] = u.xdp.ifindex
    elif t == BPF_LINK_TYPE_STRUCT_OPS:
        out["map_id"] = u.struct_ops.map_id
    elif t == BPF_LINK_TYPE_NETFILTER:
        nf = u.netfilter
        out.update(pf=nf.pf, hooknum=nf.hooknum, priority=nf.priority, flags=nf.flags)
    elif t == BPF_LINK_TYPE_KPROBE_MULTI:
        km = u.kprobe_multi
        out.update(count=km.count, flags=km.flags, missed=km.missed)
    elif t == BPF_LINK_TYPE_UPROBE_MULTI:
        um = u.uprobe_multi
        out.update(path=name, count=um.count, flags=um.flags, pid=um.pid)
    elif t in (BPF_LINK_TYPE_TCX, BPF_LINK_TYPE_NETKIT):
        out.update(ifindex=u.tcx.target, attach_type=u.tcx.attach_type)
    elif t == BPF_LINK_TYPE_SOCKMAP:
        out.update(map_id=u.sockmap.target, attach_type=u.sockmap.attach_type)
    elif t == BPF_LINK_TYPE_PERF_EVENT and u.perf_event.type != BPF_PERF_EVENT_UNSPEC:
        # before Linux 6.6 the kernel fills nothing here (the type stays UNSPEC)
        out.update(_perf_event_fields(u.perf_event, name))
    if "attach_type" in out:
        out["attach_type_name"] = attach_type_name(out["attach_type"])
    return out


def _perf_event_fields(pe, name):
    out = {"perf_event_type": pe.type,
           "perf_event_type_name": _type_name(PERF_EVENT_TYPE_NAMES, pe.type)}
    if pe.type in (BPF_PERF_EVENT_UPROBE, BPF_PERF_EVENT_URETPROBE):
        out.update(file_name=name, offset=pe.u.uprobe.offset, cookie=pe.u.uprobe.cookie)
    elif pe.type in (BPF_PERF_EVENT_KPROBE, BPF_PERF_EVENT_KRETPROBE):
        k = pe.u.kprobe
        out.update(func_name=name, offset=k.offset, addr=k.addr, missed=k.missed,
                   cookie=k.cookie)
    elif pe.type == BPF_PERF_EVENT_TRACEPOINT:
        out.update(tp_name=name, cookie=pe.u.tracepoint.cookie)
    elif pe.type == BPF_PERF_EVENT_EVENT:
        e = pe.u.event
        out.update(config=e.config, event_type=e.type, cookie=e.cookie)
    return out


def link_info(fd):
    """Facts about a link: id, type, type_name, prog_id and what the link type reports
    (tp_name, ifindex, attach_type, netns_ino, perf_event_type and probe names, ...)."""
    info = BpfLinkInfo()
    _get_info(fd, info, "link")
    link_type = info.type
    perf_type = info.u.perf_event.type if link_type == BPF_LINK_TYPE_PERF_EVENT else None
    name = None
    first = _link_name_member(info, link_type, perf_type)
    if first is not None and getattr(first[0], first[2]):
        # The first call left the buffer out and got the string's length (with its NUL);
        # the second passes a buffer of that size and nothing else.
        size = getattr(first[0], first[2])
        buf = create_string_buffer(size)
        info = BpfLinkInfo()
        member, ptr_field, len_field = _link_name_member(info, link_type, perf_type)
        setattr(member, ptr_field, addressof(buf))
        setattr(member, len_field, size)
        _get_info(fd, info, "link", check_kind=False)
        name = cstr(buf.raw)
    out = {"id": info.id, "type": info.type, "type_name": link_type_name(info.type),
           "prog_id": info.prog_id}
    out.update(_link_fields(info, name))
    return out


# The kernel's BPF_OBJ_GET_INFO_BY_FD accepts any BPF object, so kinds are told apart with
# commands that refuse (EINVAL) an fd that is not of their kind before anything else, and
# are given an invalid second argument so that nothing changes when the fd is of their
# kind: a map batch lookup of 0 entries (0, or ENOTSUPP for maps without batch support;
# EPERM for a write-only map fd), binding map fd -1 to a program (EBADF), replacing the
# program of a link with fd -1 (EBADF).
_KIND_PROBES = (
    ("map", lambda lb, num: lb.bpf_map_lookup_batch(num, None, None, None, None, c_uint32(0), None)),
    ("prog", lambda lb, num: lb.bpf_prog_bind_map(num, -1, None)),
    ("link", lambda lb, num: lb.bpf_link_update(num, -1, None)),
)


def _is_kind(num, kind):
    """Whether open BPF object fd `num` is a `kind`; the caller has checked that the fd is
    an open BPF object and that bpf() is permitted (an info call succeeded)."""
    for name, probe in _KIND_PROBES:
        if name == kind:
            ret = probe(libbpf.lib(), num)
            if ret == -errno.EINVAL:
                return False
            if kind == "map" or ret == -errno.EBADF:
                return True
            raise fail("checking whether fd %d is a BPF %s" % (num, _KIND_WORDS[kind]), ret)
    raise ValueError("unknown BPF object kind %r" % kind)


def fd_kind(fd):
    """What a file descriptor refers to: "prog", "map", "link", or None for anything else
    (a BTF object, a file that is no BPF object). A closed fd raises BpfError."""
    num = fdnum(fd)
    info = BpfProgInfo()  # large enough for any kind's info
    ret = libbpf.lib().bpf_obj_get_info_by_fd(num, addressof(info), c_uint32(sizeof(info)))
    if ret == -errno.EINVAL:
        return None
    if ret < 0:
        raise fail("checking the kind of fd %d" % num, ret, _not_open_hints(num))
    for kind, _probe in _KIND_PROBES:
        if _is_kind(num, kind):
            return kind
    return None
