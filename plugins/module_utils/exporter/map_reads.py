# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The read of a pinned map that every exported metric starts from: opened read-only, read with
one batch lookup, and kept for the pass so that the metrics (and slot arrays and their tables)
that share a map read it once."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc


def read_pinned(path, reads=None):
    """(map info, count, keys, values) of the map pinned at path; ``reads`` ({path: read}) keeps a
    pass's reads for the metrics that share a map."""
    if reads is not None and path in reads:
        return reads[path]
    with sc.obj_get(path, sc.BPF_F_RDONLY) as fd:
        info = sc.map_info(fd)
        size = sc.percpu_value_size(info["value_size"]) if sc.is_percpu_map_type(info["type"]) else info["value_size"]
        count, keys, values = sc.map_lookup_batch_raw(fd, info["key_size"], size, info["max_entries"])
    if reads is not None:
        reads[path] = (info, count, keys, values)
    return info, count, keys, values
