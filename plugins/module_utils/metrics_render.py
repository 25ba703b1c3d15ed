# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""From BPF map entries to Prometheus metric families and the text exposition format.

The caller reads each metric's map (the map is named like the metric, as in
cloudflare/ebpf_exporter) and hands over a :class:`MapSnapshot`: the ``(key, value)`` byte
pairs, the map's value size and whether it is a per-CPU map. :class:`MetricsCollector` turns
snapshots into :class:`MetricFamily` objects the way ebpf_exporter does:

* the key is cut into labels (``size`` bytes each, ``padding`` skipped) and each label is
  decoded by its decoder chain (metrics_decoders); an entry a decoder drops is left out;
* values are u64 in host byte order; a per-CPU value holds one u64 per possible CPU at a
  stride of roundup(value_size, 8) bytes and the CPUs are summed, unless the last label is
  named ``cpu``: then each CPU becomes its own entry, the CPU number appended to the key as
  a u16 (and for a per-CPU map whose only label is ``cpu``, a zero u32 key is dropped first);
* a metric without labels reads the entry at key u32 0;
* entries that decode to the same label set are summed (a systemd cgroup restarted under
  the same path, two addresses in one function);
* a histogram's last label is its bucket index, parsed as an unsigned integer (Go syntax:
  ``0x``, ``0o``, ``0b`` prefixes). Buckets ``bucket_min..bucket_max`` (or ``bucket_keys`` for
  ``fixed``) become cumulative counts with upper bounds ``2^i * m`` (exp2), ``0`` then
  ``2^(i-1) * m`` (exp2zero), ``i * m`` (linear) or ``key * m`` (fixed), m being
  ``bucket_multiplier``; missing buckets count 0; ``+Inf`` and ``_count`` equal the last
  bucket; ``_sum`` is the value at key ``bucket_max + 1`` (fixed: last key + 1) times m, or 0;
  other keys are ignored. Metric names get the ``ebpf_exporter_`` prefix.

:func:`render_text` writes the families in the Prometheus text format (version 0.0.4) as
ebpf_exporter's Go client does: families sorted by name, label pairs sorted by name with
``le`` last, bucket bounds formatted like Go's ``strconv.FormatFloat(f, 'g', -1, 64)``
(``1.048576e+06``), and families without series left out. It is a small writer of its own
rather than prometheus_client's ``generate_latest``, which takes about 0.45 s for 100,000
series on the project's machines (the budget of a whole pass, map reads included), and
renames a counter whose name does not end in ``_total``. :func:`to_prometheus_client` gives the same families
as prometheus_client objects (prometheus-client 0.16 or newer) for a caller that serves them
from a registry; the samples are the same.

Decoded label values are cached per label value and per whole key (up to LABEL_CACHE_LIMIT
of each), so a steady map costs one dict lookup per entry and a pass.

Where this differs from ebpf_exporter:

* The exporter (exporter.read_metric_map) leaves out entries of array maps whose value is
  zero on every CPU: an array holds every index, and only the indexes written to are series,
  as in a hash map. ebpf_exporter exports the zero entries too.
* A label whose decoder fails (wrong size, text that is not a number, unreadable
  /proc/partitions) drops that entry and counts one error under (metric, decoder) in
  :class:`DecoderErrors`; ebpf_exporter drops the whole metric for that scrape and counts
  one error per config. Entries whose key length does not match the labels count under the
  decoder name ``key_size``, a value size other than 8 under ``value_size`` (the metric is
  skipped; ebpf_exporter refuses such a map at start-up), and an unparsable bucket index under
  ``bucket`` (the histogram is skipped, as in ebpf_exporter, which only logs it).
* Two bucket label values that parse to the same index (say ``3`` and ``0x3``) are summed;
  ebpf_exporter keeps one of them.
* Counter and bucket values are exact integers; ebpf_exporter goes through float64, which
  rounds above 2^53, and prints large values in exponent form (``1e+06``; same number).
* Label values that are not valid UTF-8 are written with U+FFFD replacement characters;
  ebpf_exporter's client library rejects them.
* ``regexp`` uses Python's ``re`` (``search``) where ebpf_exporter uses Go's RE2
  (``MatchString``): the same for ordinary patterns, but RE2-only or Python-only syntax differs.
* ``syscall`` names come from the kernel's syscall tables (metrics_syscalls): ``pread64``,
  ``lchown``, ``exit_group``, ``poll`` where ebpf_exporter's strace-derived tables print
  ``pread``, ``chown``, ``exit``, ``poll_time64`` for the same numbers.
* ``ksym`` names module symbols without the ``[module]`` suffix of /proc/kallsyms; a miss
  re-reads kallsyms at most once a minute instead of on every miss.
* ``kstack`` and the ``pci_*`` decoders, and perf_event_array counters, are not supported
  (the config is refused).
* A config that sets ``bucket_multiplier`` below 0, fixed ``bucket_keys`` out of order, or
  ``bucket_max <= bucket_min`` is refused; ebpf_exporter accepts the first two (and renders
  non-monotonic buckets) and fails the last one at every scrape. So is an exp2 or exp2zero
  ``bucket_max`` above 1023 (2^1024 overflows a float).
* The decoder error counter is ``ebpf_exporter_decoder_errors_total{metric, decoder}``;
  ebpf_exporter's has the single label ``config``.
* Series are sorted by their text, which is label-value order except for values holding a
  space, ``!`` or control characters; ebpf_exporter sorts by label values.
* ``static_map`` keys are compared as text. A YAML loader turns ``0x1: read`` into the number
  1 and so the key "1", where ebpf_exporter keeps the text "0x1"; quote such keys.
* Decoded label values stay cached up to LABEL_CACHE_LIMIT distinct values per label, and
  a failed decode is retried at the next pass; ebpf_exporter caches every decoded key for
  the life of the process and retries failures at every scrape.
* ``ifindex`` is accepted as another name for the ``ifname`` decoder.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import math
import operator
import re
import sys

from ansible_collections.ebpf.observability.plugins.module_utils.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.metrics_config import (
    HistogramConfig, key_size, metric_label_names)
from ansible_collections.ebpf.observability.plugins.module_utils.metrics_decoders import (
    LABEL_CACHE_LIMIT, SKIP, Decoders)

try:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
    PROMETHEUS_CLIENT_IMPORT_ERROR = None
except ImportError as exc:
    PROMETHEUS_CLIENT_IMPORT_ERROR = exc

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
    """

    __slots__ = ("name", "help", "type", "label_names", "series", "buckets")

    def __init__(self, name, help_text, metric_type, label_names=(), buckets=()):
        if metric_type not in ("counter", "gauge", "histogram"):
            raise BpfError("metric %r: type must be counter, gauge or histogram, not %r" % (name, metric_type))
        self.name = name
        self.help = help_text
        self.type = metric_type
        self.label_names = tuple(label_names)
        self.series = {}
        self.buckets = tuple(buckets)

    def add(self, label_values, value):
        """Add value to the series with these label values (a counter or gauge)."""
        key = tuple(label_values)
        self.series[key] = self.series.get(key, 0) + value

    def __repr__(self):
        return "MetricFamily(%r, %s, %d series)" % (self.name, self.type, len(self.series))


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
        """The counts as ``ebpf_exporter_decoder_errors_total{metric, decoder}``."""
        family = MetricFamily(_full_name(namespace, DECODER_ERRORS_NAME), DECODER_ERRORS_HELP, "counter",
                              ("metric", "decoder"))
        family.series.update(self.counts)
        return family


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
    columns = per_cpu_values(values, value_size) if percpu else [_u64s(values, 1)]
    total = columns[0]
    for column in columns[1:]:
        total = list(map(operator.add, total, column))
    return total


def per_cpu_values(values, value_size):
    """For per-CPU values: one list of u64 per CPU, each with one item per entry."""
    stride = (value_size + 7) // 8 * 8
    slots = len(values[0]) // stride
    if slots == 0 or len(values[0]) != slots * stride:
        raise BpfError("per-CPU value of %d bytes is not a whole number of %d-byte CPU slots"
                       % (len(values[0]), stride))
    flat = _u64s(values, slots)
    return [flat[cpu::slots] for cpu in range(slots)]


def _u64s(values, slots):
    data = b"".join(values)
    if len(data) != len(values) * slots * VALUE_SIZE:
        raise BpfError("map values differ in size; expected %d bytes each" % (slots * VALUE_SIZE))
    return memoryview(data).cast("Q").tolist()


def _full_name(namespace, name):
    return "%s_%s" % (namespace, name) if namespace else name


class _MetricPlan:
    """What a metric needs at every pass: label slices, label decoders, bucket bounds."""

    def __init__(self, metric, decoders, namespace):
        self.metric = metric
        self.name = _full_name(namespace, metric.name)
        self.key_size = key_size(metric.labels)
        self.slices = []
        offset = 0
        for label in metric.labels:
            self.slices.append((offset, offset + label.size, decoders.label_decoder(label)))
            offset += label.size + label.padding
        self.split_cpu = bool(metric.labels) and metric.labels[-1].name == "cpu"
        self.whole_key = len(self.slices) == 1 and self.key_size == metric.labels[0].size
        # Outcome per whole key: a tuple of label values, SKIP, or a DecodeFailure.
        self.key_cache = {}
        self.dropped = set()  # keys whose outcome is not a tuple
        self.failed = set()  # keys whose outcome is a DecodeFailure (decoded again next time)
        self.histogram = isinstance(metric, HistogramConfig)
        if self.histogram:
            self.bucket_keys, self.buckets, self.sum_key = _bucket_layout(metric)

    def key_outcomes(self, keys):
        """Decode the distinct keys not seen before; return (outcomes by key, any_dropped).

        Keys decode label by label through the label decoders (each distinct label value
        once); the outcome of a whole key is kept too, up to LABEL_CACHE_LIMIT keys, so
        that a steady map costs one dict lookup per entry.
        """
        cache = self.key_cache
        if self.failed:
            for key in self.failed:
                cache.pop(key, None)
            self.dropped.difference_update(self.failed)
            self.failed.clear()
        distinct = set(keys)
        missing = distinct.difference(cache)
        if missing:
            if len(cache) + len(missing) > LABEL_CACHE_LIMIT:
                cache.clear()
                self.dropped.clear()
                missing = distinct
            missing = list(missing)
            columns = []
            label_dropped = False
            for start, end, label_decoder in self.slices:
                raws = missing if self.whole_key else [key[start:end] for key in missing]
                outcomes, any_dropped = label_decoder.lookup(raws)
                columns.append(map(outcomes.__getitem__, raws))
                label_dropped = label_dropped or any_dropped
            if not label_dropped:
                cache.update(zip(missing, zip(*columns)))
            else:
                for key, row in zip(missing, zip(*columns)):
                    for outcome in row:
                        if outcome.__class__ is not str:
                            row = outcome
                            self.dropped.add(key)
                            if outcome is not SKIP:
                                self.failed.add(key)
                            break
                    cache[key] = row
        return cache, bool(self.dropped) and not self.dropped.isdisjoint(distinct)

    def new_family(self):
        if self.histogram:
            return MetricFamily(self.name, self.metric.help, "histogram", metric_label_names(self.metric),
                                self.buckets)
        return MetricFamily(self.name, self.metric.help, "counter", metric_label_names(self.metric))


def _bucket_layout(metric):
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


class MetricsCollector:
    """Turns map snapshots into metric families for one metrics config.

    Keep one per exporter process: the label decoders' caches live here, so each distinct
    label value decodes once. ``errors`` collects decoder errors (a DecoderErrors).
    """

    def __init__(self, config, decoders=None, errors=None, namespace=NAMESPACE):
        self.config = config
        self.decoders = decoders if decoders is not None else Decoders()
        self.errors = errors if errors is not None else DecoderErrors()
        self.namespace = namespace
        self.plans = collections.OrderedDict(
            (metric.name, _MetricPlan(metric, self.decoders, namespace))
            for metric in tuple(config.counters) + tuple(config.histograms))

    def check_map(self, name, key_size_, value_size, percpu):
        """Raise BpfError unless a map's key and value sizes fit metric `name`'s config.

        Meant for the caller when it opens the map; collect() copes with a misfit (it
        counts the entries under ``key_size`` / ``value_size``) but cannot fix it.
        """
        plan = self.plans[name]
        if value_size != VALUE_SIZE:
            raise BpfError("metric %r: map values are %d bytes; ebpf_exporter-style metrics need u64 (8-byte) "
                           "values" % (name, value_size))
        expected = plan.key_size
        if not plan.slices:
            expected = 4  # the single entry at key u32 0
        elif percpu and plan.split_cpu:
            # The CPU number is appended to the key as a u16; a lone cpu label reads key u32 0.
            if plan.metric.labels[-1].size + plan.metric.labels[-1].padding != 2:
                raise BpfError("metric %r: the cpu label of a per-CPU map takes the CPU number as a u16; "
                               "set its size to 2" % name)
            expected = 4 if len(plan.slices) == 1 else expected - 2
        if key_size_ != expected:
            raise BpfError("metric %r: the map key is %d bytes but the labels describe %d (sizes plus paddings); "
                           "fix the label sizes in the config" % (name, key_size_, expected))

    def collect(self, snapshots):
        """Families for the metrics whose snapshot is given ({metric name: MapSnapshot}).

        Metrics without a snapshot are skipped; so are metrics with no series left.
        """
        families = []
        for name, plan in self.plans.items():
            snapshot = snapshots.get(name)
            if snapshot is None:
                continue
            family = self.collect_metric(name, snapshot)
            if family is not None and family.series:
                families.append(family)
        return families

    def collect_metric(self, name, snapshot):
        """The MetricFamily of one metric from its map snapshot, or None when skipped."""
        plan = self.plans[name]
        entries = snapshot.entries
        family = plan.new_family()
        if not entries:
            return family
        if snapshot.value_size != VALUE_SIZE:
            self.errors.add(name, "value_size")
            return None
        keys, values = zip(*entries)
        try:
            keys, values = self._expand(plan, keys, values, snapshot)
        except BpfError:
            self.errors.add(name, "value_size")
            return None
        rows, values = self._decode(plan, keys, values)
        totals = _sum_by_key(rows, values)
        if plan.histogram:
            return self._histogram(plan, family, totals)
        family.series = totals
        return family

    def _expand(self, plan, keys, values, snapshot):
        """Keys and u64 values, per-CPU maps summed or split into one entry per CPU."""
        if not (snapshot.percpu and plan.split_cpu):
            return keys, entry_values(values, snapshot.value_size, snapshot.percpu)
        columns = per_cpu_values(values, snapshot.value_size)
        cpu_keys = [cpu.to_bytes(2, sys.byteorder) for cpu in range(len(columns))]
        strip = len(plan.slices) == 1
        zero = b"\0\0\0\0"
        out_keys, out_values = [], []
        for index, key in enumerate(keys):
            if strip and key[:4] == zero:
                key = key[4:]
            for cpu, column in enumerate(columns):
                out_keys.append(key + cpu_keys[cpu])
                out_values.append(column[index])
        return out_keys, out_values

    def _decode(self, plan, keys, values):
        """Decode the keys' labels; return (label tuples, values) of the entries kept."""
        name = plan.metric.name
        expected = plan.key_size
        if not plan.slices:
            kept = [value for key, value in zip(keys, values) if key == b"\0\0\0\0"]
            if len(kept) != len(values):
                self.errors.add(name, "key_size", len(values) - len(kept))
            return [()] * len(kept), kept
        if set(map(len, keys)) != {expected}:
            good = [index for index, key in enumerate(keys) if len(key) == expected]
            self.errors.add(name, "key_size", len(keys) - len(good))
            keys = [keys[index] for index in good]
            values = [values[index] for index in good]
        outcomes, any_dropped = plan.key_outcomes(keys)
        rows = list(map(outcomes.__getitem__, keys))
        if not any_dropped:
            return rows, values
        kept_rows, kept_values = [], []
        for row, value in zip(rows, values):
            if row.__class__ is tuple:
                kept_rows.append(row)
                kept_values.append(value)
            elif row is not SKIP:
                self.errors.add(name, row.decoder)
        return kept_rows, kept_values

    def _histogram(self, plan, family, totals):
        name = plan.metric.name
        groups = {}
        indexes = {}
        for row, value in totals.items():
            text = row[-1]
            index = indexes.get(text)
            if index is None:
                index = indexes[text] = parse_bucket_index(text)
                if index is None:
                    self.errors.add(name, "bucket")
                    return None
            buckets = groups.get(row[:-1])
            if buckets is None:
                buckets = groups[row[:-1]] = {}
            buckets[index] = buckets.get(index, 0) + value
        multiplier = plan.metric.bucket_multiplier
        for labels, buckets in groups.items():
            count = 0
            cumulative = []
            for key in plan.bucket_keys:
                count += buckets.get(key, 0)
                cumulative.append(count)
            family.series[labels] = (tuple(cumulative), buckets.get(plan.sum_key, 0) * multiplier)
        return family


def _sum_by_key(rows, values):
    totals = dict(zip(rows, values))
    if len(totals) != len(rows):
        totals = {}
        get = totals.get
        for row, value in zip(rows, values):
            totals[row] = get(row, 0) + value
    return totals


def _escape_label(value):
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value):
    return "%d" % value if value.__class__ is int else go_float(value)


def _output_rows(family):
    """Label names sorted, and the series as (label values in that order, escaped), value)."""
    names = family.label_names
    order = sorted(range(len(names)), key=names.__getitem__)
    series = family.series
    rows = series.keys()
    if len(order) > 1 and order != sorted(order):
        rows = list(map(operator.itemgetter(*order), rows))
    escapes = {}
    for position in range(len(order)):
        column = set(map(operator.itemgetter(position), rows))
        special = [v for v in column if "\\" in v or "\n" in v or '"' in v]
        if special:
            escapes[position] = dict((v, _escape_label(v)) for v in special)
    if escapes:
        rows = [tuple(escapes[i].get(v, v) if i in escapes else v for i, v in enumerate(row)) for row in rows]
    return tuple(names[i] for i in order), list(zip(rows, series.values()))


class TextRenderer:
    """Renders families in the Prometheus text exposition format 0.0.4; keep one per process.

    Series come sorted by their text, which orders them by label values (label names sorted,
    ``le`` last within a histogram series). For counters and gauges the text before each value
    (name and labels) and the sorted order are kept from one pass to the next while a family's
    set of series stays the same, so a steady map costs one string join per series and a pass.
    """

    def __init__(self):
        self._cache = {}  # family name -> (series keys in output order, their set, their line prefixes)

    def render(self, families):
        out = []
        cache = {}
        for family in sorted(families, key=operator.attrgetter("name")):
            if not family.series:
                continue
            name = family.name
            out.append("# HELP %s %s\n# TYPE %s %s\n" % (name, _escape_help(family.help), name, family.type))
            if family.type == "histogram":
                out.extend(_histogram_lines(family))
                continue
            series = family.series
            keys, key_set, prefixes = self._cache.get(name) or ((), frozenset(), ())
            if series.keys() != key_set:
                keys, prefixes = _sorted_prefixes(family)
                key_set = frozenset(keys)
            cache[name] = (keys, key_set, prefixes)
            values = list(map(series.__getitem__, keys))
            if set(map(type, values)) == {int}:
                out.extend(map("%s%d\n".__mod__, zip(prefixes, values)))
            else:
                out.extend(map("%s%s\n".__mod__, zip(prefixes, map(_number, values))))
        self._cache = cache
        return "".join(out)


def _sorted_prefixes(family):
    """(series keys, the text before their values), sorted by that text."""
    names, items = _output_rows(family)  # in family.series order
    if names:
        line = "%s{%s} " % (family.name, ",".join('%s="%%s"' % label for label in names))
        prefixes = [line % row for row, _value in items]
    else:
        prefixes = [family.name + " "] * len(items)
    ordered = sorted(zip(prefixes, family.series))
    return tuple(key for _prefix, key in ordered), tuple(prefix for prefix, _key in ordered)


def _histogram_lines(family):
    name = family.name
    names, items = _output_rows(family)
    pairs = ",".join('%s="%%s"' % label for label in names)
    bucket_line = "%s_bucket{%sle=\"%%s\"} %%s\n" % (name, pairs + "," if names else "")
    tail = "%s_%%s{%s} %%s\n" % (name, pairs) if names else name + "_%s %s\n"
    out = []
    for row, (cumulative, total) in sorted(items, key=operator.itemgetter(0)):
        for le_text, count in zip(family.buckets, cumulative):
            out.append(bucket_line % (row + (le_text, _number(count))))
        count = cumulative[-1] if cumulative else 0
        out.append(bucket_line % (row + ("+Inf", _number(count))))
        out.append(tail % (("sum",) + row + (_number(total),)))
        out.append(tail % (("count",) + row + (_number(count),)))
    return out


def render_text(families):
    """The families in the Prometheus text exposition format 0.0.4, as one str (see
    TextRenderer; a long-running caller keeps a TextRenderer instead)."""
    return TextRenderer().render(families)


def to_prometheus_client(families):
    """The families as prometheus_client metric families (for a custom collector).

    Needs prometheus-client (0.16 or newer). Note that prometheus_client names a counter's
    samples ``<name>_total`` even when the configured name does not end in ``_total``.
    """
    if PROMETHEUS_CLIENT_IMPORT_ERROR is not None:
        raise BpfError("prometheus-client is not installed (%s); install python3-prometheus-client "
                       "or render with render_text()" % PROMETHEUS_CLIENT_IMPORT_ERROR)
    result = []
    for family in families:
        labels = list(family.label_names)
        if family.type == "counter":
            metric = CounterMetricFamily(family.name, family.help, labels=labels)
            for row, value in family.series.items():
                metric.add_metric(list(row), value)
        elif family.type == "gauge":
            metric = GaugeMetricFamily(family.name, family.help, labels=labels)
            for row, value in family.series.items():
                metric.add_metric(list(row), value)
        else:
            metric = HistogramMetricFamily(family.name, family.help, labels=labels)
            for row, (cumulative, total) in family.series.items():
                count = cumulative[-1] if cumulative else 0
                buckets = list(zip(family.buckets, cumulative)) + [("+Inf", count)]
                metric.add_metric(list(row), buckets, total)
        result.append(metric)
    return result
