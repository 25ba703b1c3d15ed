# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Counters kept in an array beside a hash: this collection's superset of ebpf_exporter's format
for programs that count the common keys at an array index (inlined lookups, no helper call) and
the rest in the hash. A metric's ``slots`` key says how an index of the array becomes a key of
the metric's map; those entries are then read as the map's own (summed where they meet)::

    counters:
      - name: xdp_packets_total
        map: xdp_traffic                   # the hash, keys struct xdp_key {u32 ifindex; u16 ethertype; u16 l4proto}
        value: {offset: 0}
        slots:
          map: xdp_slot_traffic            # an array whose values are laid out as the hash's
          index:                           # the index's bit fields, lowest bits first
            - {bits: 3, key_offset: 6, key_size: 2, values: [0, 1, 6, 17, 58, 255]}
            - {bits: 2, key_offset: 4, key_size: 2, values: [0, 2048, 34525, 2054]}
            - {bits: 6, key_offset: 0, key_size: 4, table: {map: xdp_slots, offset: 4}}

A field writes ``key_size`` bytes (host byte order) at ``key_offset`` of the key: ``values[n]``
for field value n (``key_size`` 1, 2, 4 or 8), or the ``key_size`` bytes at ``offset`` of entry n
of the ``table`` map (an array, read at each pass; a per-CPU array names, on each CPU, what that
CPU counted in the slot: each CPU's count then becomes an entry of its own). An index whose table
bytes are all zero (a slot nobody holds), whose field value has no ``values`` entry, or whose
value is zero on every CPU gives no entry. Bytes no field writes are zero. A config without
``slots`` means what it means in ebpf_exporter.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import os
import sys

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import cpu_slots
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.map_reads import read_pinned
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.value_fields import checked_map_name

SlotField = collections.namedtuple("SlotField", "bits key_offset key_size values table_map table_offset")
Slots = collections.namedtuple("Slots", "map fields")
Slots.__doc__ = "An array counted beside a metric's map, and how its index becomes the map's key."


def _int(value, where, name, minimum=0):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise BpfError("%s: %s must be an integer >= %d, got %r" % (where, name, minimum, value))
    return value


def parse_slots(item, where):
    """The Slots of a metric's ``slots`` key, or None."""
    slots = item.get("slots")
    if slots is None:
        return None
    where = "%s: slots" % where
    if not isinstance(slots, dict) or set(slots) - {"map", "index"}:
        raise BpfError("%s must be a mapping with map and index" % where)
    index = slots.get("index")
    if not isinstance(index, list) or not index:
        raise BpfError("%s: index must be a non-empty list of bit fields" % where)
    fields = []
    for number, field in enumerate(index):
        here = "%s: index[%d]" % (where, number)
        if not isinstance(field, dict) or set(field) - {"bits", "key_offset", "key_size", "values", "table"}:
            raise BpfError("%s: expected a mapping of bits, key_offset, key_size and values or table" % here)
        bits = _int(field.get("bits"), here, "bits", 1)
        size = field.get("key_size")
        values, table = field.get("values"), field.get("table")
        if size not in (1, 2, 4, 8) and (values is not None or not isinstance(size, int) or size < 1):
            raise BpfError("%s: key_size must be 1, 2, 4 or 8 (any number of bytes from a table), got %r" % (here, size))
        offset = _int(field.get("key_offset"), here, "key_offset")
        if (values is None) == (table is None):
            raise BpfError("%s: give either values (a list of numbers) or table ({map, offset})" % here)
        if values is not None and (not isinstance(values, list)
                                   or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 8 * size
                                              for v in values)):
            raise BpfError("%s: values must be a list of numbers that fit %d bytes" % (here, size))
        if table is not None and (not isinstance(table, dict) or set(table) - {"map", "offset"}):
            raise BpfError("%s: table must be a mapping with map and offset" % here)
        fields.append(SlotField(bits, offset, size, tuple(values) if values is not None else None,
                                checked_map_name(table.get("map"), here) if table else None,
                                _int(table.get("offset", 0), here, "table offset") if table else 0))
    if sum(f.bits for f in fields) > 32:
        raise BpfError("%s: the index fields take more than 32 bits" % where)
    return Slots(checked_map_name(slots.get("map"), where), tuple(fields))


def _read(path, key_size, value_size, reads):
    info, count, keys, values = read_pinned(path, reads)
    if info["key_size"] != key_size or (value_size is not None and info["value_size"] != value_size):
        raise BpfError("%s: key %d and value %d bytes, expected key %d%s" % (
            path, info["key_size"], info["value_size"], key_size,
            "" if value_size is None else " and value %d" % value_size))
    return info, count, keys, values


def slot_entries(slots, maps_dir, key_size, value_size, reads=None):
    """The (key, value) entries the slots array adds to a map of ``key_size``-byte keys whose
    values are ``value_size`` bytes (per CPU when per-CPU). Where a table is a per-CPU array, each
    CPU's entry names what that CPU counted in the slot: each CPU's count becomes an entry of its
    own (the other CPUs' slots zero), the collector summing entries of one label set."""
    info, count, keys, values = _read(os.path.join(maps_dir, slots.map), 4, value_size, reads)
    if not count:
        return []
    stride = len(values) // count
    cpu_stride = stride // _cpus(info, stride)
    tables, per_cpu = {}, False
    for field in slots.fields:
        if field.table_map and field.table_map not in tables:
            tables[field.table_map], table_per_cpu = _table(os.path.join(maps_dir, field.table_map), reads)
            per_cpu = per_cpu or table_per_cpu
    zero = bytes(stride)
    entries = []
    for position in range(count):
        value = values[position * stride:(position + 1) * stride]
        if value == zero:
            continue
        index = int.from_bytes(keys[position * 4:position * 4 + 4], sys.byteorder)
        if not per_cpu:
            key = _slot_key(slots.fields, index, key_size, tables, 0)
            if key is not None:
                entries.append((key, value))
            continue
        for cpu in range(stride // cpu_stride):
            part = value[cpu * cpu_stride:(cpu + 1) * cpu_stride]
            key = _slot_key(slots.fields, index, key_size, tables, cpu) if any(part) else None
            if key is not None:
                entries.append((key, bytes(cpu * cpu_stride) + part + bytes(stride - (cpu + 1) * cpu_stride)))
    return entries


def _cpus(info, stride):
    """How many CPU slots a value of ``stride`` bytes of this map holds (1 unless per-CPU)."""
    return cpu_slots(stride, info["value_size"]) if sc.is_percpu_map_type(info["type"]) else 1


def _table(path, reads):
    """({index: [the entry's value bytes, one item per CPU for a per-CPU array]}, whether the
    table is per-CPU) of a table map."""
    info, count, keys, values = _read(path, 4, None, reads)
    if not count:
        return {}, False
    stride = len(values) // count
    cpus = _cpus(info, stride)
    cpu_stride = stride // cpus
    table = {}
    for i in range(count):
        value = values[i * stride:(i + 1) * stride]
        table[int.from_bytes(keys[i * 4:i * 4 + 4], sys.byteorder)] = [
            value[c * cpu_stride:(c + 1) * cpu_stride] for c in range(cpus)]
    return table, sc.is_percpu_map_type(info["type"])


def _slot_key(fields, index, key_size, tables, cpu):
    key = bytearray(key_size)
    for field in fields:
        number = index & ((1 << field.bits) - 1)
        index >>= field.bits
        if field.values is not None:
            if number >= len(field.values):
                return None
            raw = field.values[number].to_bytes(field.key_size, sys.byteorder)
        else:
            per_cpu = tables[field.table_map].get(number, [b""])
            raw = per_cpu[cpu if len(per_cpu) > 1 else 0][field.table_offset:field.table_offset + field.key_size]
            if len(raw) != field.key_size or not any(raw):
                return None
        if field.key_offset + field.key_size > key_size:
            raise BpfError("a slots field writes key bytes %d..%d of a %d-byte key"
                           % (field.key_offset, field.key_offset + field.key_size, key_size))
        key[field.key_offset:field.key_offset + field.key_size] = raw
    return bytes(key)
