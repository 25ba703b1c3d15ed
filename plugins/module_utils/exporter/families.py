# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Metric families as the exporter builds them, and the values they are made of: the decoder
error counter, Go-syntax bucket indexes and floats, per-CPU u64 value columns."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import functools
import math
import re
import struct
import sys

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

NAMESPACE = "ebpf_exporter"
VALUE_SIZE = 8
DECODER_ERRORS_NAME = "decoder_errors_total"
DECODER_ERRORS_HELP = "How many times has decoders encountered errors"

MapSnapshot = collections.namedtuple("MapSnapshot", "entries value_size percpu")
MapSnapshot.__doc__ = """What the caller read from one map.

entries: sequence of (key bytes, value bytes), as bpf_syscall.map_lookup_batch returns them;
value_size: the map's value_size as map_info reports it (8 for a u64 counter), not the size of
a per-CPU value buffer; percpu: whether the map type is per-CPU (each value then holds one
roundup(value_size, 8)-byte slot per possible CPU).
"""

_GO_UINT_RE = re.compile(r"^(?:0[xX](_?[0-9a-fA-F])+|0[bB](_?[01])+|0[oO](_?[0-7])+|0(_?[0-7])*|[1-9](_?[0-9])*)$")


class MetricFamily:
    """One metric and its series.

    type is "counter", "gauge" or "histogram". series maps a tuple of label values (in
    label_names order) to a number, or for a histogram to (cumulative bucket counts, sum)
    with one count per entry of ``buckets`` (the ``le`` texts, ``+Inf`` not included; the
    last count is also the +Inf bucket and ``_count``).

    A family the collector built from a map's columns (counter_columns) holds its series as
    lines already rendered; ``series`` builds the dict from them when first asked for, and from
    then on the dict is the family's content (so changes to it are rendered).
    """

    __slots__ = ("name", "help", "type", "label_names", "_series", "buckets", "_columns")

    def __init__(self, name, help_text, metric_type, label_names=(), buckets=()):
        if metric_type not in ("counter", "gauge", "histogram"):
            raise BpfError("metric %r: type must be counter, gauge or histogram, not %r" % (name, metric_type))
        self.name = name
        self.help = help_text
        self.type = metric_type
        self.label_names = tuple(label_names)
        self._series = {}
        self._columns = None
        self.buckets = tuple(buckets)

    @property
    def series(self):
        if self._columns is not None:
            self._series = self._columns.series()
            self._columns = None
        return self._series

    @series.setter
    def series(self, value):
        self._series = value
        self._columns = None

    def set_columns(self, columns):
        """Hold the series as rendered columns (an object with ``count``, ``text`` and ``series()``)."""
        self._series = None
        self._columns = columns

    def series_count(self):
        """How many series the family has (without building the dict of rendered columns)."""
        return self._columns.count if self._columns is not None else len(self._series)

    def rendered(self):
        """The series' lines as the text format writes them (UTF-8 bytes), when the family holds
        rendered columns; else None."""
        return self._columns.text if self._columns is not None else None

    def add(self, label_values, value):
        """Add value to the series with these label values (a counter or gauge)."""
        key = tuple(label_values)
        series = self.series
        series[key] = series.get(key, 0) + value

    def __repr__(self):
        return "MetricFamily(%r, %s, %d series)" % (self.name, self.type, self.series_count())


class MapColumns(collections.namedtuple("MapColumns", "count keys values key_size value_size percpu")):
    """One map read as two buffers (what bpf_syscall.map_lookup_batch_raw returns): ``count``
    keys of ``key_size`` bytes back to back, and their values, each ``len(values) // count``
    bytes (a per-CPU value: one roundup(value_size, 8)-byte slot per possible CPU).
    value_size and percpu are as in MapSnapshot; ``entries`` gives the (key, value) pairs."""

    __slots__ = ()

    @property
    def entries(self):
        count = self.count
        if not count:
            return []
        return list(zip(split_records(self.keys, self.key_size, count),
                        split_records(self.values, len(self.values) // count, count)))

    @classmethod
    def of(cls, snapshot):
        """A MapSnapshot as columns; None when its keys or its values differ in size."""
        entries = snapshot.entries
        if not entries:
            return cls(0, b"", b"", 0, snapshot.value_size, snapshot.percpu)
        keys, values = zip(*entries)
        if len(set(map(len, keys))) != 1 or len(set(map(len, values))) != 1:
            return None
        return cls(len(keys), b"".join(keys), b"".join(values), len(keys[0]), snapshot.value_size,
                   snapshot.percpu)


def split_records(data, size, count):
    """``count`` records of ``size`` bytes at the start of ``data``, as bytes objects."""
    return _splitter(size, count).unpack_from(data)


@functools.lru_cache(maxsize=16)
def _splitter(size, count):
    return struct.Struct(("%ds" % size) * count)


class DecoderErrors:
    """Decoder errors counted per (metric, decoder) since the collector started.

    The decoder is a decoder name, or ``key_size``, ``value_size`` or ``bucket`` for entries
    that do not fit the metric's layout (see the module docstring).
    """

    def __init__(self):
        self.counts = {}

    def add(self, metric, decoder, count=1):
        key = (metric, decoder)
        self.counts[key] = self.counts.get(key, 0) + count

    def total(self):
        return sum(self.counts.values())

    def family(self, namespace=NAMESPACE):
        """The counts as ``ebpf_exporter_decoder_errors_total{metric, decoder}`` (a collector used
        alone; the exporter labels them with their config too: decoder_errors_family)."""
        family = MetricFamily(full_name(namespace, DECODER_ERRORS_NAME), DECODER_ERRORS_HELP, "counter",
                              ("metric", "decoder"))
        family.series.update(self.counts)
        return family


def decoder_errors_family(errors_by_config, namespace=NAMESPACE):
    """``ebpf_exporter_decoder_errors_total{config, metric, decoder}`` of several configs'
    DecoderErrors ({config name: DecoderErrors}).

    Every config has a series with empty ``metric`` and ``decoder`` at 0, which Prometheus reads
    as ``{config="<name>"} 0``: ebpf_exporter's series, one per config from the start, so its
    queries and alerts on ``{config}`` work here; the errors are counted beside it, per metric
    and decoder, which says what to fix (ebpf_exporter counts one per failed scrape of a config).
    """
    family = MetricFamily(full_name(namespace, DECODER_ERRORS_NAME), DECODER_ERRORS_HELP, "counter",
                          ("config", "metric", "decoder"))
    for config, errors in errors_by_config.items():
        family.series[(config, "", "")] = 0
        for (metric, decoder), count in errors.counts.items():
            family.series[(config, metric, decoder)] = count
    return family


def escape_label(value):
    """A label value as the text format writes it between quotes."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def go_float(value):
    """Format a float as Go's strconv.FormatFloat(value, 'g', -1, 64) does."""
    value = float(value)
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _e, exponent = text.partition("e")
    integer, _dot, fraction = mantissa.partition(".")
    digits = (integer + fraction).lstrip("0")
    point = len(integer) + int(exponent or 0) - (len(integer + fraction) - len(digits))
    digits = digits.rstrip("0")
    exp = point - 1
    if exp < -4 or exp >= 6:  # Go's %e/%f switch for the shortest representation
        tail = ("." + digits[1:]) if len(digits) > 1 else ""
        return "%s%s%se%s%02d" % (sign, digits[0], tail, "-" if exp < 0 else "+", abs(exp))
    if point <= 0:
        return "%s0.%s%s" % (sign, "0" * -point, digits)
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return "%s%s.%s" % (sign, digits[:point], digits[point:])


def go_duration(text):
    """Seconds of a Go duration (time.ParseDuration: "1h", "90s", "1m30s", "500ms"); ValueError
    for other text."""
    units = (("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
    rest, total = str(text).strip(), 0.0
    if not rest or not isinstance(text, str):
        raise ValueError("invalid duration %r" % (text,))
    while rest:
        number = len(rest) - len(rest.lstrip("0123456789."))
        if number == 0:
            raise ValueError("invalid duration %r" % text)
        for unit, factor in units:
            if rest[number:].startswith(unit) and not rest[number + len(unit):number + len(unit) + 1].isalpha():
                total += float(rest[:number]) * factor
                rest = rest[number + len(unit):]
                break
        else:
            raise ValueError("invalid duration %r: a number needs a unit (ns, us, ms, s, m, h)" % text)
    return total


def parse_bucket_index(text):
    """Parse a bucket label as Go's strconv.ParseUint(text, 0, 64); None when it is not one."""
    if not _GO_UINT_RE.match(text):
        return None
    clean = text.replace("_", "")
    if len(clean) > 1 and clean[0] == "0" and clean[1] in "0123456789_":
        value = int(clean, 8)
    else:
        value = int(clean, 0)
    return value if value < (1 << 64) else None


def entry_values(values, value_size, percpu):
    """The u64 value of each entry, per-CPU slots summed. values: sequence of value bytes."""
    if value_size != VALUE_SIZE:
        raise BpfError("value size is %d bytes; metrics maps must hold u64 values (8 bytes)" % value_size)
    if not values:
        return []
    slots = cpu_slots(len(values[0]), value_size) if percpu else 1
    data = b"".join(values)
    if len(data) != len(values) * slots * VALUE_SIZE:
        raise BpfError("map values differ in size; expected %d bytes each" % (slots * VALUE_SIZE))
    return u64_sums(data, len(values), slots)


def cpu_slots(size, value_size):
    """How many CPU slots a per-CPU value of ``size`` bytes holds."""
    stride = (value_size + 7) // 8 * 8
    slots = size // stride
    if slots == 0 or size != slots * stride:
        raise BpfError("per-CPU value of %d bytes is not a whole number of %d-byte CPU slots" % (size, stride))
    return slots


def u64_sums(data, count, slots):
    """The sums of each of ``count`` runs of ``slots`` host-order u64 in ``data``, as a list of ints."""
    sums = u64_sum_column(data, count, slots)
    return sums if sums.__class__ is list else sums.tolist()


def u64_sum_column(data, count, slots):
    """The same sums as a sequence: a memoryview of u64, or a list where a sum exceeds 2^64 - 1.

    The CPUs' columns are added as whole numbers (each u64 widened to 128 bits, so that no sum
    carries into its neighbour): a few big-integer additions rather than one per entry and CPU.
    A caller that takes the sums in another order indexes the view (an int is made only for what
    it takes, in its order, and the buffer is read rather than scattered objects).
    """
    words = memoryview(data).cast("B")[:count * slots * VALUE_SIZE].cast("Q")
    if slots == 1:
        return words
    wide = bytearray(count * 2 * VALUE_SIZE)
    halves = memoryview(wide).cast("Q")
    low = 0 if sys.byteorder == "little" else 1
    total = 0
    for cpu in range(slots):
        halves[low::2] = words[cpu::slots]
        total += int.from_bytes(wide, sys.byteorder)
    halves = memoryview(total.to_bytes(len(wide), sys.byteorder)).cast("Q")
    high = halves[1 - low::2]
    if high.tobytes() != bytes(count * VALUE_SIZE):  # a sum beyond 2^64 - 1
        return [value + (carry << 64) for value, carry in zip(halves[low::2].tolist(), high.tolist())]
    return memoryview(halves[low::2].tobytes()).cast("Q")  # contiguous: a quarter cheaper to index at random


def per_cpu_values(values, value_size):
    """For per-CPU values: one list of u64 per CPU, each with one item per entry."""
    slots = cpu_slots(len(values[0]), value_size)
    data = b"".join(values)
    if len(data) != len(values) * slots * VALUE_SIZE:
        raise BpfError("map values differ in size; expected %d bytes each" % (slots * VALUE_SIZE))
    flat = memoryview(data).cast("Q").tolist()
    return [flat[cpu::slots] for cpu in range(slots)]


def bucket_layout(metric):
    """(bucket indexes in order, their le texts, the index holding the sum) for a histogram."""
    multiplier = metric.bucket_multiplier
    if metric.bucket_type == "fixed":
        keys = metric.bucket_keys
        bounds = [key * multiplier for key in keys]
        sum_key = keys[-1] + 1
    else:
        keys = tuple(range(metric.bucket_min, metric.bucket_max + 1))
        if metric.bucket_type == "exp2":
            bounds = [math.ldexp(1.0, i) * multiplier for i in keys]
        elif metric.bucket_type == "exp2zero":
            bounds = [0.0 if i == 0 else math.ldexp(1.0, i - 1) * multiplier for i in keys]
        else:
            bounds = [float(i) * multiplier for i in keys]
        sum_key = metric.bucket_max + 1
    return keys, tuple(go_float(bound) for bound in bounds), sum_key


def full_name(namespace, name):
    return "%s_%s" % (namespace, name) if namespace else name
