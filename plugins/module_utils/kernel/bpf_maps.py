# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Map creation and element access through libbpf's bpf_* wrappers, single and batched, per-CPU
values."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import functools
import struct
from ctypes import c_uint32, create_string_buffer

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_consts import (
    BPF_ANY, BPF_MAP_TYPE_LRU_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY,
    BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE, BPF_MAP_TYPE_PERCPU_HASH, map_type_name,
)
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import libbpf
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_call import (
    ENOTSUPP, BpfFd, fdnum, fail, obj_name, buffer_of,
)
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_structs import MapCreateOpts, MapBatchOpts
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError, PermissionHint

# ---------------------------------------------------------------------------------------
# Maps
# ---------------------------------------------------------------------------------------

_POSSIBLE_CPUS = None

PERCPU_MAP_TYPES = frozenset((
    BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH,
    BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE,
))


def parse_cpu_list(text):
    """CPU numbers in a kernel cpu list such as "0-3,8,10-11"."""
    cpus = []
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        first, sep, last = part.partition("-")
        try:
            lo = int(first)
            hi = int(last) if sep else lo
        except ValueError:
            raise BpfError("malformed CPU list %r" % text)
        if hi < lo:
            raise BpfError("malformed CPU list %r" % text)
        cpus.extend(range(lo, hi + 1))
    return cpus


def possible_cpus(path="/sys/devices/system/cpu/possible"):
    """Number of possible CPUs (what per-CPU map values are sized by); cached."""
    global _POSSIBLE_CPUS
    if _POSSIBLE_CPUS is None or path != "/sys/devices/system/cpu/possible":
        try:
            with open(path) as f:
                count = len(parse_cpu_list(f.read()))
        except OSError as e:
            raise BpfError("reading the possible CPUs from %s failed: %s" % (path, e))
        if not count:
            raise BpfError("%s lists no CPUs" % path)
        if path != "/sys/devices/system/cpu/possible":
            return count
        _POSSIBLE_CPUS = count
    return _POSSIBLE_CPUS


def is_percpu_map_type(map_type):
    """Whether values of this map type hold one slot per possible CPU."""
    return map_type in PERCPU_MAP_TYPES


def percpu_value_size(value_size, ncpus=None):
    """Bytes of a per-CPU value as user space reads it: roundup(value_size, 8) x CPUs."""
    return ((value_size + 7) // 8 * 8) * (ncpus or possible_cpus())


def map_create(map_type, key_size, value_size, max_entries, name="", flags=0,
               inner_map_fd=None, map_extra=0):
    """Create a map; returns its fd."""
    opts = MapCreateOpts(map_flags=flags, map_extra=map_extra)
    if inner_map_fd is not None:
        opts.inner_map_fd = fdnum(inner_map_fd)
    ret = libbpf.lib().bpf_map_create(map_type, obj_name(name), key_size, value_size, max_entries, opts)
    if ret < 0:
        raise fail("creating %s map %r (key %d, value %d, %d entries)"
                   % (map_type_name(map_type), name, key_size, value_size, max_entries), ret, {
                       errno.EINVAL: "this kernel does not support that map type with "
                                     "these sizes and flags",
                       errno.ENOMEM: "not enough locked memory for the map",
                   })
    return BpfFd(ret)


_READ_ONLY_HINT = ("the map fd is read-only (opened with BPF_F_RDONLY, or the map is frozen "
                   "or read-only for user space), or " + PermissionHint.TEXT)


def map_lookup(fd, key, value_size):
    """The value stored under `key` (bytes), or None when the key is absent.

    For per-CPU maps pass percpu_value_size(value_size)."""
    val = create_string_buffer(value_size)
    kbuf, kaddr = buffer_of(key)
    ret = libbpf.lib().bpf_map_lookup_elem(fdnum(fd), kaddr, val)
    if ret < 0:
        if ret == -errno.ENOENT:
            return None
        raise fail("looking up key %s in map fd %d" % (bytes(key).hex(), fdnum(fd)), ret,
                   {errno.EPERM: "the map fd is write-only, or " + PermissionHint.TEXT})
    return val.raw


def map_update(fd, key, value, flags=BPF_ANY):
    """Store `value` under `key` (flags: BPF_ANY, BPF_NOEXIST, BPF_EXIST)."""
    kbuf, kaddr = buffer_of(key)
    vbuf, vaddr = buffer_of(value)
    ret = libbpf.lib().bpf_map_update_elem(fdnum(fd), kaddr, vaddr, flags)
    if ret < 0:
        raise fail("updating key %s in map fd %d" % (bytes(key).hex(), fdnum(fd)), ret, {
            errno.EPERM: _READ_ONLY_HINT,
            errno.EEXIST: "the key exists and BPF_NOEXIST was given",
            errno.ENOENT: "the key does not exist and BPF_EXIST was given",
            errno.E2BIG: "the map is full",
        })


def map_delete(fd, key, missing_ok=False):
    """Delete `key`; a missing key raises BpfError (errno ENOENT) unless missing_ok."""
    kbuf, kaddr = buffer_of(key)
    ret = libbpf.lib().bpf_map_delete_elem(fdnum(fd), kaddr)
    if ret < 0:
        if ret == -errno.ENOENT and missing_ok:
            return
        raise fail("deleting key %s from map fd %d" % (bytes(key).hex(), fdnum(fd)), ret, {
            errno.EPERM: _READ_ONLY_HINT,
            errno.ENOENT: "the key is not in the map",
            errno.EINVAL: "entries of this map type cannot be deleted",
        })


def map_next_key(fd, key, key_size):
    """The key after `key` (None: the first key), or None after the last one."""
    nxt = create_string_buffer(key_size)
    if key is None:
        kbuf, kaddr = None, 0
    else:
        kbuf, kaddr = buffer_of(key)
    ret = libbpf.lib().bpf_map_get_next_key(fdnum(fd), kaddr, nxt)
    if ret < 0:
        if ret == -errno.ENOENT:
            return None
        raise fail("iterating the keys of map fd %d" % fdnum(fd), ret)
    return nxt.raw


def map_dump_per_key(fd, key_size, value_size):
    """All (key, value) pairs, read one key at a time (BPF_MAP_GET_NEXT_KEY + LOOKUP).

    Works on every kernel and every iterable map type; map_lookup_batch is faster."""
    num = fdnum(fd)
    lb = libbpf.lib()
    next_key, lookup = lb.bpf_map_get_next_key, lb.bpf_map_lookup_elem
    cur = create_string_buffer(key_size)
    nxt = create_string_buffer(key_size)
    val = create_string_buffer(value_size)
    key = None  # the first call asks for the first key
    out = []
    while True:
        ret = next_key(num, key, nxt)
        if ret < 0:
            if ret == -errno.ENOENT:
                return out
            raise fail("iterating the keys of map fd %d" % num, ret)
        ret = lookup(num, nxt, val)
        if ret == 0:
            out.append((nxt.raw, val.raw))
        elif ret != -errno.ENOENT:  # deleted between the two calls: skip it
            raise fail("looking up a key in map fd %d" % num, ret)
        ctypes.memmove(cur, nxt, key_size)
        key = cur


@functools.lru_cache(maxsize=32)
def _splitter(size, count):
    """A struct that cuts `count` consecutive `size`-byte records into bytes objects
    (several times faster than slicing in a Python loop)."""
    return struct.Struct(("%ds" % size) * count)


_BATCH_UNSUPPORTED = (-errno.EINVAL, -ENOTSUPP, -errno.EOPNOTSUPP)
_BATCH_BYTES_MAX = 64 << 20


def map_lookup_batch(fd, key_size, value_size, max_entries, batch=None):
    """All (key, value) pairs through BPF_MAP_LOOKUP_BATCH (libbpf's bpf_map_lookup_batch).

    `batch` is how many entries one call asks for (default: the whole map, bounded to
    64 MiB of buffers). Falls back to map_dump_per_key where the kernel or the map type
    has no batch lookup. For per-CPU maps pass percpu_value_size(value_size)."""
    count, keys, values = map_lookup_batch_raw(fd, key_size, value_size, max_entries, batch)
    if not count:
        return []
    return list(zip(_splitter(key_size, count).unpack_from(keys), _splitter(value_size, count).unpack_from(values)))


def map_lookup_batch_raw(fd, key_size, value_size, max_entries, batch=None):
    """What map_lookup_batch reads, as (count, keys, values): the keys back to back in one
    bytes object, the values in another (no object per entry)."""
    num = fdnum(fd)
    entry = key_size + value_size
    if batch is None:
        batch = max_entries + 1  # one call reads everything and ends with ENOENT
    batch = max(1, min(batch, max(1, _BATCH_BYTES_MAX // max(entry, 1))))
    token = max(key_size, 8)  # arrays use a key as the position, hash maps a u32 bucket
    tokens = (create_string_buffer(token), create_string_buffer(token))
    keys = create_string_buffer(batch * key_size)
    vals = create_string_buffer(batch * value_size)
    lookup_batch = libbpf.lib().bpf_map_lookup_batch
    in_batch, out_batch, count = None, tokens[1], c_uint32()
    key_parts, value_parts, total = [], [], 0
    flip = 1
    while True:
        count.value = batch
        ret = lookup_batch(num, in_batch, out_batch, keys, vals, count, None)
        if ret < 0 and ret != -errno.ENOENT:
            if ret == -errno.ENOSPC and count.value == 0:
                # A hash bucket holds more entries than one batch: grow and ask again.
                batch *= 2
                keys = create_string_buffer(batch * key_size)
                vals = create_string_buffer(batch * value_size)
                continue
            if ret in _BATCH_UNSUPPORTED and in_batch is None and not total:
                pairs = map_dump_per_key(fd, key_size, value_size)
                return len(pairs), b"".join(pair[0] for pair in pairs), b"".join(pair[1] for pair in pairs)
            raise fail("batch lookup in map fd %d" % num, ret)
        n = count.value
        if n:
            key_parts.append(ctypes.string_at(keys, n * key_size))
            value_parts.append(ctypes.string_at(vals, n * value_size))
            total += n
        if ret == -errno.ENOENT or (ret == 0 and n == 0) or total >= max_entries:
            if len(key_parts) == 1:
                return total, key_parts[0], value_parts[0]
            return total, b"".join(key_parts), b"".join(value_parts)
        # The position the kernel returned is where the next call starts.
        in_batch = tokens[flip]
        flip ^= 1
        out_batch = tokens[flip]


def array_lookup_range(fd, value_size, start, count):
    """The values of keys ``start`` to ``start + count - 1`` of an array map, joined (bytes):
    one BPF_MAP_LOOKUP_BATCH call that starts after the key before ``start`` (the kernel's
    position token of an array is the last key read), key by key where the kernel has none."""
    num = fdnum(fd)
    in_batch = create_string_buffer(struct.pack("=Q", start - 1), 8) if start else None
    keys, vals, got = create_string_buffer(count * 4), create_string_buffer(count * value_size), c_uint32(count)
    ret = libbpf.lib().bpf_map_lookup_batch(num, in_batch, create_string_buffer(8), keys, vals, got, None)
    if ret in _BATCH_UNSUPPORTED:
        values = [map_lookup(fd, struct.pack("=I", key), value_size) for key in range(start, start + count)]
        return b"".join(value for value in values if value is not None)
    if ret < 0 and ret != -errno.ENOENT:
        raise fail("batch lookup in map fd %d" % num, ret)
    return vals.raw[:got.value * value_size]


def map_update_batch(fd, items, elem_flags=BPF_ANY):
    """Store many (key, value) pairs in one call (BPF_MAP_UPDATE_BATCH); all keys must have
    one length and all values another. Returns how many were stored."""
    items = list(items)
    if not items:
        return 0
    key_size, value_size = len(items[0][0]), len(items[0][1])
    if any(len(k) != key_size or len(v) != value_size for k, v in items):
        raise BpfError("map_update_batch: all keys and all values must have one size each")
    kbuf, kaddr = buffer_of(b"".join(item[0] for item in items))
    vbuf, vaddr = buffer_of(b"".join(item[1] for item in items))
    count = c_uint32(len(items))
    ret = libbpf.lib().bpf_map_update_batch(fdnum(fd), kaddr, vaddr, count, MapBatchOpts(elem_flags=elem_flags))
    if ret < 0:
        raise fail("batch update of %d entries in map fd %d (%d stored)"
                   % (len(items), fdnum(fd), count.value), ret, {
                       errno.EPERM: _READ_ONLY_HINT,
                       errno.E2BIG: "the map is full",
                       ENOTSUPP: "this map type has no batch update on this kernel",
                   })
    return count.value
