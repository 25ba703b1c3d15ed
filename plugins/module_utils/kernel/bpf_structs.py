# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ctypes layouts of the bpf(2) UAPI (include/uapi/linux/bpf.h): the info structures
BPF_OBJ_GET_INFO_BY_FD fills and the union bpf_attr variants of the few commands issued without
libbpf; and libbpf 1.1's option structs (bpf/bpf.h) with the signatures of its bpf_* wrappers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ctypes import (
    POINTER, Structure, Union, c_char, c_char_p, c_int, c_int32, c_size_t, c_uint32, c_uint64, c_uint8,
    c_void_p, sizeof,
)

BPF_OBJ_NAME_LEN = 16
BPF_TAG_SIZE = 8


# ---------------------------------------------------------------------------------------
# union bpf_attr variants of the calls libbpf 1.1 cannot make (bpf_progs issues them raw)
# ---------------------------------------------------------------------------------------

_OBJ_NAME = c_char * BPF_OBJ_NAME_LEN


class RawTracepointAttr(Structure):
    """BPF_RAW_TRACEPOINT_OPEN (libbpf 1.1's bpf_raw_tracepoint_open has no cookie)."""
    _fields_ = [
        ("name", c_uint64), ("prog_fd", c_uint32), ("_pad", c_uint32), ("cookie", c_uint64),
    ]


class MprogLinkCreateAttr(Structure):
    """BPF_LINK_CREATE for tcx and netkit (libbpf 1.1's bpf_link_create_opts has no
    relative_fd / relative_id / expected_revision)."""
    _fields_ = [
        ("prog_fd", c_uint32), ("target_ifindex", c_uint32), ("attach_type", c_uint32),
        ("flags", c_uint32), ("relative_fd", c_uint32), ("expected_revision", c_uint64),
    ]


class UprobeMultiLinkCreateAttr(Structure):
    """BPF_LINK_CREATE for uprobe_multi links (Linux 6.6; libbpf 1.1's bpf_link_create_opts has
    no uprobe_multi)."""
    _fields_ = [
        ("prog_fd", c_uint32), ("target_fd", c_uint32), ("attach_type", c_uint32), ("flags", c_uint32),
        ("path", c_uint64), ("offsets", c_uint64), ("ref_ctr_offsets", c_uint64), ("cookies", c_uint64),
        ("cnt", c_uint32), ("multi_flags", c_uint32), ("pid", c_uint32),
    ]


class ProgQueryAttr(Structure):
    """BPF_PROG_QUERY (link_ids, link_attach_flags and revision: Linux 6.6+; libbpf 1.1's
    bpf_prog_query_opts has none of them)."""
    _fields_ = [("target", c_uint32), ("attach_type", c_uint32), ("query_flags", c_uint32),
                ("attach_flags", c_uint32), ("prog_ids", c_uint64), ("count", c_uint32), ("_pad", c_uint32),
                ("prog_attach_flags", c_uint64), ("link_ids", c_uint64), ("link_attach_flags", c_uint64),
                ("revision", c_uint64)]


# ---------------------------------------------------------------------------------------
# libbpf 1.1's option structs (bpf/bpf.h) and the signatures of its bpf_* wrappers
# ---------------------------------------------------------------------------------------

class _Opts(Structure):
    """An option struct: `sz` (its size, which libbpf checks) set on creation."""

    def __init__(self, **fields):
        Structure.__init__(self, sz=sizeof(self), **fields)


class MapCreateOpts(_Opts):
    """struct bpf_map_create_opts."""
    _fields_ = [
        ("sz", c_size_t), ("btf_fd", c_uint32), ("btf_key_type_id", c_uint32),
        ("btf_value_type_id", c_uint32), ("btf_vmlinux_value_type_id", c_uint32),
        ("inner_map_fd", c_uint32), ("map_flags", c_uint32), ("map_extra", c_uint64),
        ("numa_node", c_uint32), ("map_ifindex", c_uint32),
    ]


class ProgLoadOpts(_Opts):
    """struct bpf_prog_load_opts."""
    _fields_ = [
        ("sz", c_size_t), ("attempts", c_int), ("expected_attach_type", c_uint32),
        ("prog_btf_fd", c_uint32), ("prog_flags", c_uint32), ("prog_ifindex", c_uint32),
        ("kern_version", c_uint32), ("attach_btf_id", c_uint32), ("attach_prog_fd", c_uint32),
        ("attach_btf_obj_fd", c_uint32), ("fd_array", c_void_p), ("func_info", c_void_p),
        ("func_info_cnt", c_uint32), ("func_info_rec_size", c_uint32), ("line_info", c_void_p),
        ("line_info_cnt", c_uint32), ("line_info_rec_size", c_uint32), ("log_level", c_uint32),
        ("log_size", c_uint32), ("log_buf", c_void_p),
    ]


class MapBatchOpts(_Opts):
    """struct bpf_map_batch_opts."""
    _fields_ = [("sz", c_size_t), ("elem_flags", c_uint64), ("flags", c_uint64)]


class FlagsOpts(_Opts):
    """struct bpf_obj_get_opts (file_flags) and struct bpf_get_fd_by_id_opts (open_flags):
    one layout."""
    _fields_ = [("sz", c_size_t), ("flags", c_uint32)]


class TestRunOpts(_Opts):
    """struct bpf_test_run_opts."""
    _fields_ = [
        ("sz", c_size_t), ("data_in", c_void_p), ("data_out", c_void_p),
        ("data_size_in", c_uint32), ("data_size_out", c_uint32), ("ctx_in", c_void_p),
        ("ctx_out", c_void_p), ("ctx_size_in", c_uint32), ("ctx_size_out", c_uint32),
        ("retval", c_uint32), ("repeat", c_int), ("duration", c_uint32), ("flags", c_uint32),
        ("cpu", c_uint32), ("batch_size", c_uint32),
    ]


class LinkCreateOpts(_Opts):
    """struct bpf_link_create_opts (perf_event.bpf_cookie is the first word of its union)."""
    _fields_ = [
        ("sz", c_size_t), ("flags", c_uint32), ("iter_info", c_void_p),
        ("iter_info_len", c_uint32), ("target_btf_id", c_uint32), ("bpf_cookie", c_uint64),
        ("_union_rest", c_uint64 * 3),
    ]


class _KprobeMulti(Structure):
    _fields_ = [("flags", c_uint32), ("cnt", c_uint32), ("syms", c_void_p), ("addrs", c_void_p), ("cookies", c_void_p)]


class KprobeMultiLinkCreateOpts(_Opts):
    """struct bpf_link_create_opts with its union's kprobe_multi member."""
    _fields_ = [
        ("sz", c_size_t), ("flags", c_uint32), ("iter_info", c_void_p),
        ("iter_info_len", c_uint32), ("target_btf_id", c_uint32), ("kprobe_multi", _KprobeMulti),
    ]


class LinkUpdateOpts(_Opts):
    """struct bpf_link_update_opts."""
    _fields_ = [("sz", c_size_t), ("flags", c_uint32), ("old_prog_fd", c_uint32)]


_I, _U32, _P = c_int, c_uint32, c_void_p
_U32P = POINTER(c_uint32)
BPF_WRAPPER_SIGNATURES = {
    # name: (restype, argtypes); every one returns a result >= 0 or -errno
    "bpf_obj_get_opts": (_I, [c_char_p, POINTER(FlagsOpts)]),
    "bpf_obj_pin": (_I, [_I, c_char_p]),
    "bpf_prog_get_fd_by_id_opts": (_I, [_U32, POINTER(FlagsOpts)]),
    "bpf_map_get_fd_by_id_opts": (_I, [_U32, POINTER(FlagsOpts)]),
    "bpf_link_get_fd_by_id_opts": (_I, [_U32, POINTER(FlagsOpts)]),
    "bpf_btf_get_fd_by_id_opts": (_I, [_U32, POINTER(FlagsOpts)]),
    "bpf_prog_get_next_id": (_I, [_U32, _U32P]),
    "bpf_map_get_next_id": (_I, [_U32, _U32P]),
    "bpf_link_get_next_id": (_I, [_U32, _U32P]),
    "bpf_btf_get_next_id": (_I, [_U32, _U32P]),
    "bpf_obj_get_info_by_fd": (_I, [_I, _P, _U32P]),
    "bpf_prog_bind_map": (_I, [_I, _I, _P]),
    "bpf_map_create": (_I, [_I, c_char_p, _U32, _U32, _U32, POINTER(MapCreateOpts)]),
    "bpf_map_lookup_elem": (_I, [_I, _P, _P]),
    "bpf_map_update_elem": (_I, [_I, _P, _P, c_uint64]),
    "bpf_map_delete_elem": (_I, [_I, _P]),
    "bpf_map_get_next_key": (_I, [_I, _P, _P]),
    "bpf_map_lookup_batch": (_I, [_I, _P, _P, _P, _P, _U32P, POINTER(MapBatchOpts)]),
    "bpf_map_update_batch": (_I, [_I, _P, _P, _U32P, POINTER(MapBatchOpts)]),
    "bpf_prog_load": (_I, [_I, c_char_p, c_char_p, _P, c_size_t, POINTER(ProgLoadOpts)]),
    "bpf_prog_test_run_opts": (_I, [_I, POINTER(TestRunOpts)]),
    "bpf_enable_stats": (_I, [_I]),
    "bpf_link_create": (_I, [_I, _I, _I, POINTER(LinkCreateOpts)]),
    "bpf_link_update": (_I, [_I, _I, POINTER(LinkUpdateOpts)]),
    "bpf_link_detach": (_I, [_I]),
}


# ---------------------------------------------------------------------------------------
# Info structures
# ---------------------------------------------------------------------------------------

class BpfProgInfo(Structure):
    """struct bpf_prog_info."""
    _fields_ = [
        ("type", c_uint32), ("id", c_uint32), ("tag", c_uint8 * BPF_TAG_SIZE),
        ("jited_prog_len", c_uint32), ("xlated_prog_len", c_uint32),
        ("jited_prog_insns", c_uint64), ("xlated_prog_insns", c_uint64),
        ("load_time", c_uint64), ("created_by_uid", c_uint32), ("nr_map_ids", c_uint32),
        ("map_ids", c_uint64), ("name", _OBJ_NAME), ("ifindex", c_uint32),
        ("gpl_compatible", c_uint32, 1), ("_bits", c_uint32, 31),
        ("netns_dev", c_uint64), ("netns_ino", c_uint64),
        ("nr_jited_ksyms", c_uint32), ("nr_jited_func_lens", c_uint32),
        ("jited_ksyms", c_uint64), ("jited_func_lens", c_uint64),
        ("btf_id", c_uint32), ("func_info_rec_size", c_uint32), ("func_info", c_uint64),
        ("nr_func_info", c_uint32), ("nr_line_info", c_uint32), ("line_info", c_uint64),
        ("jited_line_info", c_uint64), ("nr_jited_line_info", c_uint32),
        ("line_info_rec_size", c_uint32), ("jited_line_info_rec_size", c_uint32),
        ("nr_prog_tags", c_uint32), ("prog_tags", c_uint64),
        ("run_time_ns", c_uint64), ("run_cnt", c_uint64), ("recursion_misses", c_uint64),
        ("verified_insns", c_uint32), ("attach_btf_obj_id", c_uint32),
        ("attach_btf_id", c_uint32),
    ]


class BpfMapInfo(Structure):
    """struct bpf_map_info."""
    _fields_ = [
        ("type", c_uint32), ("id", c_uint32), ("key_size", c_uint32), ("value_size", c_uint32),
        ("max_entries", c_uint32), ("map_flags", c_uint32), ("name", _OBJ_NAME),
        ("ifindex", c_uint32), ("btf_vmlinux_value_type_id", c_uint32),
        ("netns_dev", c_uint64), ("netns_ino", c_uint64), ("btf_id", c_uint32),
        ("btf_key_type_id", c_uint32), ("btf_value_type_id", c_uint32),
        ("btf_vmlinux_id", c_uint32), ("map_extra", c_uint64),
    ]


class _LinkRawTracepoint(Structure):
    _fields_ = [("tp_name", c_uint64), ("tp_name_len", c_uint32)]


class _LinkTracing(Structure):
    _fields_ = [("attach_type", c_uint32), ("target_obj_id", c_uint32),
                ("target_btf_id", c_uint32)]


class _LinkCgroup(Structure):
    _fields_ = [("cgroup_id", c_uint64), ("attach_type", c_uint32)]


class _LinkIterTarget(Union):
    _fields_ = [("cgroup_id_order", c_uint64 * 2), ("task_tid_pid", c_uint32 * 2)]


class _LinkIter(Structure):
    _fields_ = [
        ("target_name", c_uint64), ("target_name_len", c_uint32), ("map_id", c_uint32),
        ("target", _LinkIterTarget),
    ]


class _LinkAttachPoint(Structure):
    """netns (netns_ino), tcx and netkit (ifindex), sockmap (map_id), plus attach_type."""
    _fields_ = [("target", c_uint32), ("attach_type", c_uint32)]


class _LinkXdp(Structure):
    _fields_ = [("ifindex", c_uint32)]


class _LinkStructOps(Structure):
    _fields_ = [("map_id", c_uint32)]


class _LinkNetfilter(Structure):
    _fields_ = [("pf", c_uint32), ("hooknum", c_uint32), ("priority", c_int32),
                ("flags", c_uint32)]


class _LinkKprobeMulti(Structure):
    _fields_ = [("addrs", c_uint64), ("count", c_uint32), ("flags", c_uint32),
                ("missed", c_uint64), ("cookies", c_uint64)]


class _LinkUprobeMulti(Structure):
    _fields_ = [
        ("path", c_uint64), ("offsets", c_uint64), ("ref_ctr_offsets", c_uint64),
        ("cookies", c_uint64), ("path_size", c_uint32), ("count", c_uint32),
        ("flags", c_uint32), ("pid", c_uint32),
    ]


class _PerfUprobe(Structure):
    _fields_ = [("file_name", c_uint64), ("name_len", c_uint32), ("offset", c_uint32),
                ("cookie", c_uint64), ("ref_ctr_offset", c_uint64)]


class _PerfKprobe(Structure):
    _fields_ = [("func_name", c_uint64), ("name_len", c_uint32), ("offset", c_uint32),
                ("addr", c_uint64), ("missed", c_uint64), ("cookie", c_uint64)]


class _PerfTracepoint(Structure):
    _fields_ = [("tp_name", c_uint64), ("name_len", c_uint32), ("_pad", c_uint32),
                ("cookie", c_uint64)]


class _PerfEvent(Structure):
    _fields_ = [("config", c_uint64), ("type", c_uint32), ("_pad", c_uint32),
                ("cookie", c_uint64)]


class _PerfEventTarget(Union):
    _fields_ = [("uprobe", _PerfUprobe), ("kprobe", _PerfKprobe),
                ("tracepoint", _PerfTracepoint), ("event", _PerfEvent)]


class _LinkPerfEvent(Structure):
    _fields_ = [("type", c_uint32), ("_pad", c_uint32), ("u", _PerfEventTarget)]


class _LinkInfoUnion(Union):
    _fields_ = [
        ("raw_tracepoint", _LinkRawTracepoint), ("tracing", _LinkTracing),
        ("cgroup", _LinkCgroup), ("iter", _LinkIter), ("netns", _LinkAttachPoint),
        ("xdp", _LinkXdp), ("struct_ops", _LinkStructOps), ("netfilter", _LinkNetfilter),
        ("kprobe_multi", _LinkKprobeMulti), ("uprobe_multi", _LinkUprobeMulti),
        ("perf_event", _LinkPerfEvent), ("tcx", _LinkAttachPoint),
        ("netkit", _LinkAttachPoint), ("sockmap", _LinkAttachPoint),
    ]


class BpfLinkInfo(Structure):
    """struct bpf_link_info."""
    _fields_ = [("type", c_uint32), ("id", c_uint32), ("prog_id", c_uint32),
                ("u", _LinkInfoUnion)]
