# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""From BPF map entries to Prometheus metric families and the text exposition format.

The caller reads each metric's map (the map is named like the metric, as in
cloudflare/ebpf_exporter) and hands over a :class:`MapSnapshot`: the ``(key, value)`` byte
pairs, the map's value size and whether it is a per-CPU map. :class:`MetricsCollector` turns
snapshots into :class:`MetricFamily` objects the way ebpf_exporter does:

* the key is cut into labels (``size`` bytes each, ``padding`` skipped) and each label is
  decoded by its decoder chain (decoders); an entry a decoder drops is left out;
* values are u64 in host byte order; a per-CPU value holds one u64 per possible CPU at a
  stride of roundup(value_size, 8) bytes and the CPUs are summed, unless the last label is
  named ``cpu``: then each CPU becomes its own entry, the CPU number appended to the key as
  a u16 (and for a per-CPU map whose only label is ``cpu``, a zero u32 key is dropped first);
* a metric without labels reads the entry at key u32 0;
* entries that decode to the same label set are summed (a systemd cgroup restarted under
  the same path, two addresses in one function);
* a metric with ``map`` or ``value`` keys (this collection's extension, value_fields) reads the
  u64 at an offset of a wider value, or a histogram's buckets and sum from the value;
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

A counter with labels is rendered from the map's columns (counter_columns: the keys and values
read as two buffers, each distinct label value decoded once, the series' lines filled from one
template), and a pass whose keys are the last pass's, byte for byte, only sums the values and
fills the template. Histograms, a per-CPU map split by its ``cpu`` label, metrics without
labels and maps whose entries share a label set take the general path, where decoded label
values are cached per label value and per whole key. Both keep up to LABEL_CACHE_LIMIT decoded
values per label.

Where this differs from ebpf_exporter:

* Options that ebpf_exporter does not have, off by default: ``skip_zero_array_entries`` leaves
  out the entries of an array map that are zero on every CPU (by default every index is a
  series, as in ebpf_exporter); ``max_series_per_metric`` leaves out a metric with more series.
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
  (``FindSubmatch``): the same for ordinary patterns, but RE2-only or Python-only syntax differs.
* ``syscall`` names are ebpf_exporter's (``pread``, ``exit``, ``poll_time64``); the exporter
  option ``syscall_names: kernel`` gives the kernel's (``pread64``, ``exit_group``, ``poll``,
  and calls newer than ebpf_exporter's table).
* ``ksym`` and ``kstack`` re-read kallsyms for an address below the first symbol at most once a
  minute instead of at every such miss, and fail (a decoder error) when kallsyms shows every
  address as 0 (kptr_restrict) instead of naming every address after one arbitrary symbol.
* Where no pci.ids database is installed the ``pci_*`` decoders give the hex id they would have
  looked up (``0x8086``) rather than ebpf_exporter's ``missing pci.ids db`` for every device.
* perf_event_array counters (exporter.perf_events) use 64 pages of perf buffer per CPU where
  ebpf_exporter uses 1024, and count an event whose labels fail to decode as a decoder error
  rather than under empty label values.
* A config that sets ``bucket_multiplier`` below 0, fixed ``bucket_keys`` out of order, or
  ``bucket_max <= bucket_min`` is refused; ebpf_exporter accepts the first two (and renders
  non-monotonic buckets) and fails the last one at every scrape. So is an exp2 or exp2zero
  ``bucket_max`` above 1023 (2^1024 overflows a float).
* The decoder error counter ``ebpf_exporter_decoder_errors_total`` counts entries under
  ``{config, metric, decoder}``, beside ebpf_exporter's ``{config}`` series at 0 (empty
  ``metric`` and ``decoder``, which Prometheus reads as absent): queries on ``config`` work as
  with ebpf_exporter, whose counter has that label only (families.decoder_errors_family).
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
import itertools
import operator
import sys

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.metrics_config import (
    HistogramConfig, key_size, metric_label_names,
)
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.decoders import (
    LABEL_CACHE_LIMIT, SKIP, Decoders,
)
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import (
    NAMESPACE, VALUE_SIZE, MapColumns, MetricFamily, DecoderErrors, bucket_layout, entry_values, full_name,
    parse_bucket_index, per_cpu_values,
)
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.counter_columns import CounterColumns
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.value_fields import (
    bucket_sums, check_value_size, counter_view, u64_count,
)


class _MetricPlan:
    """What a metric needs at every pass: label slices, label decoders, bucket bounds."""

    def __init__(self, metric, decoders, namespace):
        self.metric = metric
        self.name = full_name(namespace, metric.name)
        self.key_size = key_size(metric.labels)
        self.slices = []
        offset = 0
        for label in metric.labels:
            self.slices.append((offset, offset + label.size, decoders.label_decoder(label)))
            offset += label.size + label.padding
        self.histogram = isinstance(metric, HistogramConfig)
        self.columns = None  # counters with labels: rendered from the map's columns (counter_columns)
        if self.slices and not self.histogram:
            self.columns = CounterColumns(self.name, metric.labels, [s[2] for s in self.slices],
                                          metric_label_names(metric))
        self.split_cpu = bool(metric.labels) and metric.labels[-1].name == "cpu"
        self.whole_key = len(self.slices) == 1 and self.key_size == metric.labels[0].size
        # Outcome per whole key: a tuple of label values, SKIP, or a DecodeFailure.
        self.key_cache = {}
        self.dropped = set()  # keys whose outcome is not a tuple
        self.failed = set()  # keys whose outcome is a DecodeFailure (decoded again next time)
        if self.histogram:
            self.bucket_keys, self.buckets, self.sum_key = bucket_layout(metric)

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
        check_value_size(name, plan.metric.value_field, value_size,
                         u64_count(plan.metric, len(plan.bucket_keys) if plan.histogram else 0))
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
            if family is not None and family.series_count():
                families.append(family)
        return families

    def collect_metric(self, name, snapshot):
        """The MetricFamily of one metric from its map snapshot (a MapSnapshot or MapColumns),
        or None when skipped."""
        plan = self.plans[name]
        family = plan.new_family()
        field = plan.metric.value_field
        if field is not None:
            try:
                if plan.histogram and field.buckets:
                    return self._value_histogram(plan, family, snapshot)
                snapshot = counter_view(snapshot, field.offset)
            except BpfError:
                self.errors.add(name, "value_size")
                return None
        columns = snapshot if isinstance(snapshot, MapColumns) else None
        if (columns.count if columns is not None else len(snapshot.entries)) == 0:
            return family
        if snapshot.value_size != VALUE_SIZE:
            self.errors.add(name, "value_size")
            return None
        if plan.columns is not None and not (snapshot.percpu and plan.split_cpu):
            columns = columns or MapColumns.of(snapshot)
            if columns is not None and columns.key_size == plan.key_size:
                try:
                    rendered = plan.columns.collect(columns, self.errors, name)
                except BpfError:
                    self.errors.add(name, "value_size")
                    return None
                if rendered is not None:
                    family.set_columns(rendered)
                    return family
        keys, values = zip(*snapshot.entries)
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

    def _value_histogram(self, plan, family, snapshot):
        """A histogram whose buckets and sum are in the value (value_fields)."""
        keys, rows = bucket_sums(snapshot, plan.metric.value_field.offset, len(plan.bucket_keys) + 1)
        label_sets, rows = self._decode(plan, keys, rows)
        totals = {}
        for label_set, row in zip(label_sets, rows):
            earlier = totals.get(label_set)
            totals[label_set] = row if earlier is None else tuple(map(operator.add, earlier, row))
        multiplier = plan.metric.bucket_multiplier
        for label_set, row in totals.items():
            family.series[label_set] = (tuple(itertools.accumulate(row[:-1])), row[-1] * multiplier)
        return family


def _sum_by_key(rows, values):
    totals = dict(zip(rows, values))
    if len(totals) != len(rows):
        totals = {}
        get = totals.get
        for row, value in zip(rows, values):
            totals[row] = get(row, 0) + value
    return totals
