# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Metric families in the Prometheus text exposition format (version 0.0.4), written as
ebpf_exporter's Go client does (see collector), and as prometheus_client objects."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import operator

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import escape_label, go_float


try:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
    PROMETHEUS_CLIENT_IMPORT_ERROR = None
except ImportError as exc:
    PROMETHEUS_CLIENT_IMPORT_ERROR = exc


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
            escapes[position] = dict((v, escape_label(v)) for v in special)
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
        """The text of the families (str)."""
        return "".join(part if part.__class__ is str else part.decode("utf-8") for part in self._parts(families))

    def render_bytes(self, families):
        """The text of the families as a list of UTF-8 chunks (bytes) to be written in order: the
        series rendered from map columns are bytes already, and are neither decoded nor copied."""
        return [part if part.__class__ is bytes else part.encode("utf-8") for part in self._parts(families)]

    def _parts(self, families):
        """The text in parts, each str or UTF-8 bytes (rendered columns)."""
        out = []
        cache = {}
        for family in sorted(families, key=operator.attrgetter("name")):
            if not family.series_count():
                continue
            name = family.name
            lines = ["# HELP %s %s\n# TYPE %s %s\n" % (name, _escape_help(family.help), name, family.type)]
            text = family.rendered()
            if text is not None:
                out.append("".join(lines))
                out.append(text)
                continue
            if family.type == "histogram":
                lines.extend(_histogram_lines(family))
                out.append("".join(lines))
                continue
            series = family.series
            keys, key_set, prefixes = self._cache.get(name) or ((), frozenset(), ())
            if series.keys() != key_set:
                keys, prefixes = _sorted_prefixes(family)
                key_set = frozenset(keys)
            cache[name] = (keys, key_set, prefixes)
            values = list(map(series.__getitem__, keys))
            if set(map(type, values)) == {int}:
                lines.extend(map("%s%d\n".__mod__, zip(prefixes, values)))
            else:
                lines.extend(map("%s%s\n".__mod__, zip(prefixes, map(_number, values))))
            out.append("".join(lines))
        self._cache = cache
        return out


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
