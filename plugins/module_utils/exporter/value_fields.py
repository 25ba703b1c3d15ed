# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Metrics read from a field of a wider map value: this collection's superset of ebpf_exporter's
format, for programs that keep several counters in one map entry. In ebpf_exporter every metric
reads the map of its name, whose values are one u64: a program counting packets and bytes per
key then pays one map update per metric, where one lookup could find both. Two optional keys of
a metric say where its numbers are::

    counters:
      - name: xdp_packets_total
        map: xdp_traffic         # the map read (default: the metric's own name)
        value: {offset: 0}       # the u64 at byte 0 of each value (of each CPU's slot)
      - name: xdp_bytes_total
        map: xdp_traffic
        value: {offset: 8}
    histograms:
      - name: syscall_latency_seconds
        map: syscall_stats
        bucket_type: exp2
        bucket_min: 8
        bucket_max: 34
        value: {offset: 8, buckets: true}
        labels: [...]            # output labels only: the buckets are in the value

With ``buckets: true`` a histogram's value holds, from ``offset``, one u64 count per bucket in
bucket order (bucket_min..bucket_max, or bucket_keys for fixed) and then the sum, so one entry
per label set carries the whole histogram; its key has no bucket label. An entry whose counts
and sum are all zero (an array slot never written) is no series, as an absent key of a hash.

A config without ``map`` and ``value`` means what it means in ebpf_exporter. The view turns
such a map into what the collector reads from ebpf_exporter-style maps: MapColumns of u64
values (counters), or per-entry bucket sums (histograms in the value).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import re

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import (
    VALUE_SIZE, MapColumns, cpu_slots, split_records, u64_sums,
)

_MAP_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.]{0,254}$")  # no "." or ".." (outside the maps directory)

ValueField = collections.namedtuple("ValueField", "map offset buckets")
ValueField.__doc__ = """Where a metric's numbers are: the map's pin name, the byte offset in each
value (each CPU's slot), and whether a histogram's buckets are there (else in the key)."""


def checked_map_name(value, where):
    """``value`` when it can name a map the program pinned (a file in its maps directory)."""
    if not isinstance(value, str) or not _MAP_NAME_RE.match(value):
        raise BpfError("%s: map must be the name of a map pinned by the program (letters, digits, '_', '.'), got %r"
                       % (where, value))
    return value


def parse_value_field(item, name, where, histogram):
    """The ValueField of a metric's ``map`` and ``value`` keys, or None when it has neither."""
    if "map" not in item and "value" not in item:
        return None
    map_name = checked_map_name(item.get("map", name), where)
    value = item.get("value", {})
    if not isinstance(value, dict):
        raise BpfError("%s: value must be a mapping such as {offset: 8}, got %r" % (where, value))
    allowed = ("buckets", "offset") if histogram else ("offset",)
    unknown = set(value) - set(allowed)
    if unknown:
        raise BpfError("%s: unknown key(s) %s under value; expected %s"
                       % (where, ", ".join(sorted(map(str, unknown))), ", ".join(allowed)))
    offset = value.get("offset", 0)
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0 or offset % VALUE_SIZE:
        raise BpfError("%s: value.offset must be a byte offset that is a multiple of 8, got %r" % (where, offset))
    buckets = value.get("buckets", False)
    if not isinstance(buckets, bool):
        raise BpfError("%s: value.buckets must be true or false, got %r" % (where, buckets))
    return ValueField(map_name, offset, buckets)


def map_name(metric):
    """The map a metric reads: its ``map``, or (as in ebpf_exporter) its own name."""
    field = getattr(metric, "value_field", None)
    return field.map if field is not None else metric.name


def u64_count(metric, bucket_count):
    """How many u64 a metric reads from each value: one, or its buckets and the sum."""
    field = metric.value_field
    return bucket_count + 1 if field is not None and field.buckets else 1


def check_value_size(name, field, value_size, words):
    """Raise BpfError unless values of ``value_size`` bytes hold ``words`` u64 at the field's offset."""
    offset = field.offset if field is not None else 0
    if field is None and value_size != VALUE_SIZE:
        raise BpfError("metric %r: map values are %d bytes; ebpf_exporter-style metrics need u64 (8-byte) values "
                       "(or a 'value: {offset: N}' that says which u64 of the value this metric reads)"
                       % (name, value_size))
    if offset + words * VALUE_SIZE > value_size:
        raise BpfError("metric %r: map values are %d bytes, too short for %d u64 at offset %d"
                       % (name, value_size, words, offset))


def _words(columns):
    """(u64 view of the values, u64 per CPU slot, CPU slots per entry)."""
    per_entry = len(columns.values) // columns.count
    slots = cpu_slots(per_entry, columns.value_size) if columns.percpu else 1
    stride = per_entry // slots
    if stride % VALUE_SIZE or per_entry * columns.count != len(columns.values):
        raise BpfError("map values of %d bytes are not a whole number of u64" % stride)
    return memoryview(columns.values).cast("B").cast("Q"), stride // VALUE_SIZE, slots


def _as_columns(snapshot):
    columns = snapshot if isinstance(snapshot, MapColumns) else MapColumns.of(snapshot)
    if columns is None:
        raise BpfError("map values differ in size")
    return columns


def counter_view(snapshot, offset):
    """The snapshot as MapColumns of the u64 at ``offset`` of each value (of each CPU's slot)."""
    columns = _as_columns(snapshot)
    if not columns.count:
        return columns._replace(value_size=VALUE_SIZE)
    words, stride, _slots = _words(columns)
    field = words[offset // VALUE_SIZE::stride]
    return MapColumns(columns.count, columns.keys, field.tobytes(), columns.key_size, VALUE_SIZE, columns.percpu)


def bucket_sums(snapshot, offset, words_per_entry):
    """(keys, rows): each entry's key and its ``words_per_entry`` u64 from ``offset``, the CPUs
    summed, as a tuple; entries whose numbers are all zero are left out."""
    columns = _as_columns(snapshot)
    if not columns.count:
        return [], []
    words, stride, slots = _words(columns)
    first = offset // VALUE_SIZE
    sums = [u64_sums(words[first + j::stride].tobytes(), columns.count, slots) for j in range(words_per_entry)]
    keys, rows = [], []
    for key, row in zip(split_records(columns.keys, columns.key_size, columns.count), zip(*sums)):
        if any(row):
            keys.append(key)
            rows.append(row)
    return keys, rows
