# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ctypes layouts of the bpf(2) UAPI (include/uapi/linux/bpf.h): the union bpf_attr variant of
each command bpf_syscall issues, and the info structures BPF_OBJ_GET_INFO_BY_FD fills.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ctypes import Structure, Union, c_char, c_int32, c_uint32, c_uint64, c_uint8

BPF_OBJ_NAME_LEN = 16
BPF_TAG_SIZE = 8


# ---------------------------------------------------------------------------------------
# union bpf_attr variants
# ---------------------------------------------------------------------------------------

_OBJ_NAME = c_char * BPF_OBJ_NAME_LEN


class MapCreateAttr(Structure):
    """BPF_MAP_CREATE."""
    _fields_ = [
        ("map_type", c_uint32), ("key_size", c_uint32), ("value_size", c_uint32),
        ("max_entries", c_uint32), ("map_flags", c_uint32), ("inner_map_fd", c_uint32),
        ("numa_node", c_uint32), ("map_name", _OBJ_NAME), ("map_ifindex", c_uint32),
        ("btf_fd", c_uint32), ("btf_key_type_id", c_uint32), ("btf_value_type_id", c_uint32),
        ("btf_vmlinux_value_type_id", c_uint32), ("map_extra", c_uint64),
        ("value_type_btf_obj_fd", c_int32), ("map_token_fd", c_int32),
    ]


class MapElemAttr(Structure):
    """BPF_MAP_*_ELEM and BPF_MAP_GET_NEXT_KEY (value doubles as next_key)."""
    _fields_ = [
        ("map_fd", c_uint32), ("key", c_uint64), ("value", c_uint64), ("flags", c_uint64),
    ]


class MapBatchAttr(Structure):
    """BPF_MAP_*_BATCH."""
    _fields_ = [
        ("in_batch", c_uint64), ("out_batch", c_uint64), ("keys", c_uint64),
        ("values", c_uint64), ("count", c_uint32), ("map_fd", c_uint32),
        ("elem_flags", c_uint64), ("flags", c_uint64),
    ]


class ProgLoadAttr(Structure):
    """BPF_PROG_LOAD."""
    _fields_ = [
        ("prog_type", c_uint32), ("insn_cnt", c_uint32), ("insns", c_uint64),
        ("license", c_uint64), ("log_level", c_uint32), ("log_size", c_uint32),
        ("log_buf", c_uint64), ("kern_version", c_uint32), ("prog_flags", c_uint32),
        ("prog_name", _OBJ_NAME), ("prog_ifindex", c_uint32),
        ("expected_attach_type", c_uint32), ("prog_btf_fd", c_uint32),
        ("func_info_rec_size", c_uint32), ("func_info", c_uint64), ("func_info_cnt", c_uint32),
        ("line_info_rec_size", c_uint32), ("line_info", c_uint64), ("line_info_cnt", c_uint32),
        ("attach_btf_id", c_uint32), ("attach_prog_fd", c_uint32),  # or attach_btf_obj_fd
        ("core_relo_cnt", c_uint32), ("fd_array", c_uint64), ("core_relos", c_uint64),
        ("core_relo_rec_size", c_uint32), ("log_true_size", c_uint32),
        ("prog_token_fd", c_int32),
    ]


class ObjAttr(Structure):
    """BPF_OBJ_PIN and BPF_OBJ_GET."""
    _fields_ = [
        ("pathname", c_uint64), ("bpf_fd", c_uint32), ("file_flags", c_uint32),
        ("path_fd", c_int32),
    ]


class ProgTestRunAttr(Structure):
    """BPF_PROG_TEST_RUN ("test" in the union)."""
    _fields_ = [
        ("prog_fd", c_uint32), ("retval", c_uint32), ("data_size_in", c_uint32),
        ("data_size_out", c_uint32), ("data_in", c_uint64), ("data_out", c_uint64),
        ("repeat", c_uint32), ("duration", c_uint32), ("ctx_size_in", c_uint32),
        ("ctx_size_out", c_uint32), ("ctx_in", c_uint64), ("ctx_out", c_uint64),
        ("flags", c_uint32), ("cpu", c_uint32), ("batch_size", c_uint32),
    ]


class GetIdAttr(Structure):
    """BPF_*_GET_NEXT_ID and BPF_*_GET_FD_BY_ID (start_id is also prog/map/btf/link_id)."""
    _fields_ = [("start_id", c_uint32), ("next_id", c_uint32), ("open_flags", c_uint32)]


class InfoAttr(Structure):
    """BPF_OBJ_GET_INFO_BY_FD ("info" in the union)."""
    _fields_ = [("bpf_fd", c_uint32), ("info_len", c_uint32), ("info", c_uint64)]


class RawTracepointAttr(Structure):
    """BPF_RAW_TRACEPOINT_OPEN."""
    _fields_ = [
        ("name", c_uint64), ("prog_fd", c_uint32), ("_pad", c_uint32), ("cookie", c_uint64),
    ]


class _LinkCreateIter(Structure):
    _fields_ = [("iter_info", c_uint64), ("iter_info_len", c_uint32)]


class _LinkCreatePerfEvent(Structure):
    _fields_ = [("bpf_cookie", c_uint64)]


class _LinkCreateKprobeMulti(Structure):
    _fields_ = [
        ("flags", c_uint32), ("cnt", c_uint32), ("syms", c_uint64), ("addrs", c_uint64),
        ("cookies", c_uint64),
    ]


class _LinkCreateTracing(Structure):
    _fields_ = [("target_btf_id", c_uint32), ("cookie", c_uint64)]


class _LinkCreateNetfilter(Structure):
    _fields_ = [
        ("pf", c_uint32), ("hooknum", c_uint32), ("priority", c_int32), ("flags", c_uint32),
    ]


class _LinkCreateMprog(Structure):
    """The tcx and netkit members: where to insert among the attached programs."""
    _fields_ = [("relative_fd", c_uint32), ("expected_revision", c_uint64)]  # or relative_id


class _LinkCreateUprobeMulti(Structure):
    _fields_ = [
        ("path", c_uint64), ("offsets", c_uint64), ("ref_ctr_offsets", c_uint64),
        ("cookies", c_uint64), ("cnt", c_uint32), ("flags", c_uint32), ("pid", c_uint32),
    ]


class _LinkCreateTarget(Union):
    _fields_ = [
        ("target_btf_id", c_uint32), ("iter", _LinkCreateIter),
        ("perf_event", _LinkCreatePerfEvent), ("kprobe_multi", _LinkCreateKprobeMulti),
        ("tracing", _LinkCreateTracing), ("netfilter", _LinkCreateNetfilter),
        ("tcx", _LinkCreateMprog), ("uprobe_multi", _LinkCreateUprobeMulti),
        ("netkit", _LinkCreateMprog),
    ]


class LinkCreateAttr(Structure):
    """BPF_LINK_CREATE (prog_fd is also map_fd, target_fd is also target_ifindex)."""
    _fields_ = [
        ("prog_fd", c_uint32), ("target_fd", c_uint32), ("attach_type", c_uint32),
        ("flags", c_uint32), ("u", _LinkCreateTarget),
    ]


class LinkUpdateAttr(Structure):
    """BPF_LINK_UPDATE."""
    _fields_ = [
        ("link_fd", c_uint32), ("new_prog_fd", c_uint32), ("flags", c_uint32),
        ("old_prog_fd", c_uint32),
    ]


class LinkDetachAttr(Structure):
    """BPF_LINK_DETACH."""
    _fields_ = [("link_fd", c_uint32)]


class ProgQueryAttr(Structure):
    """BPF_PROG_QUERY (link_ids, link_attach_flags and revision: Linux 6.6+)."""
    _fields_ = [("target", c_uint32), ("attach_type", c_uint32), ("query_flags", c_uint32),
                ("attach_flags", c_uint32), ("prog_ids", c_uint64), ("count", c_uint32), ("_pad", c_uint32),
                ("prog_attach_flags", c_uint64), ("link_ids", c_uint64), ("link_attach_flags", c_uint64),
                ("revision", c_uint64)]


class EnableStatsAttr(Structure):
    """BPF_ENABLE_STATS."""
    _fields_ = [("type", c_uint32)]


class ProgBindMapAttr(Structure):
    """BPF_PROG_BIND_MAP."""
    _fields_ = [("prog_fd", c_uint32), ("map_fd", c_uint32), ("flags", c_uint32)]


class BpfAttr(Union):
    """union bpf_attr, for code that wants the whole union."""
    _fields_ = [
        ("map_create", MapCreateAttr), ("elem", MapElemAttr), ("batch", MapBatchAttr),
        ("prog_load", ProgLoadAttr), ("obj", ObjAttr), ("test", ProgTestRunAttr),
        ("get_id", GetIdAttr), ("info", InfoAttr), ("raw_tracepoint", RawTracepointAttr),
        ("link_create", LinkCreateAttr), ("link_update", LinkUpdateAttr),
        ("link_detach", LinkDetachAttr), ("enable_stats", EnableStatsAttr),
        ("prog_bind_map", ProgBindMapAttr), ("query", ProgQueryAttr),
    ]


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
