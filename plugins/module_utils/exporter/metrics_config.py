# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``metrics`` section of an ebpf_exporter-compatible config, checked and typed.

The caller loads the YAML with whatever loader it has and hands the resulting dict to
:func:`parse_metrics_config`. The accepted keys are ebpf_exporter's (see its README,
"Configuration concepts" and "Configuration file format")::

    metrics:
      counters:
        - name: <metric name, prefixed with "ebpf_exporter_" on output>
          help: <help text>
          labels: [<label>, ...]
          perf_event_array: <bool>   # events counted as they arrive (exporter.perf_events)
          flush_interval: <Go duration, default 1h: how often those counts start anew>
      histograms:
        - name: ...
          help: ...
          bucket_type: exp2 | exp2zero | linear | fixed
          bucket_min: <int>          # exp2, exp2zero, linear
          bucket_max: <int>          # exp2, exp2zero, linear
          bucket_keys: [<number>]    # fixed
          bucket_multiplier: <number, default 1>
          labels: [<label>, ..., <bucket label>]   # the last label is the bucket index

    label:
      name: <label name>
      size: <bytes of the map key this label reads>
      padding: <bytes skipped after it, default 0>
      decoders: [{name: <decoder>, static_map: {...}, allow_unknown: <bool>, regexps: [...]}]

Beyond ebpf_exporter, a metric's ``map`` and ``value`` keys read it from a field of a wider map
value (exporter.value_fields), a counter's ``slots`` adds an array's entries (exporter.slot_entries),
and ``{name: btf_enum, enum: skb_drop_reason, strip_prefix: SKB_DROP_REASON_, allow_unknown: <bool>}``
(after ``uint``) names a number after a kernel enum's constant (BTF).

ebpf_exporter's other top-level sections are not silently ignored: ``tracing`` (OpenTelemetry
spans) is not supported, so a config with only ``tracing`` is refused and one with metrics too
exports its metrics, with a note (MetricsConfig.notes) that the exporter logs; ``kaddrs`` and
``cgroup_id_map`` are refused: both are things ebpf_exporter does to the object as it loads and
runs it (kernel symbol addresses written into its ``kaddr_<symbol>`` variables before load; a
map of cgroup ids it keeps filled), and here ebpf_program loads the object and the exporter only
reads its maps, so the program would run without them. Other top-level keys are refused. Every
problem raises :class:`BpfError` naming the metric and the field, at load time.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import re

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import go_duration
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.value_fields import parse_value_field
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.slot_entries import parse_slots

BUCKET_TYPES = ("exp2", "exp2zero", "linear", "fixed")
# Decoders known to exporter.decoders; "ifindex" is this collection's alias of "ifname",
# "btf_enum" this collection's extension.
DECODER_NAMES = ("btf_enum", "cgroup", "dname", "errno", "hex", "ifindex", "ifname", "inet_ip", "ksym", "kstack",
                 "majorminor", "pci_class", "pci_device", "pci_subclass", "pci_vendor", "regexp", "static_map",
                 "string", "syscall", "uint")

_METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

_COUNTER_KEYS = frozenset(("name", "help", "labels", "perf_event_array", "flush_interval", "map", "value", "slots"))
_HISTOGRAM_KEYS = frozenset(("name", "help", "labels", "bucket_type", "bucket_min", "bucket_max",
                             "bucket_keys", "bucket_multiplier", "map", "value"))
_LABEL_KEYS = frozenset(("name", "size", "padding", "decoders"))
_DECODER_KEYS = frozenset(("name", "static_map", "allow_unknown", "regexps", "enum", "strip_prefix"))
_BTF_ENUM_KEYS = ("enum", "strip_prefix")
_C_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

DecoderConfig = collections.namedtuple("DecoderConfig", "name static_map allow_unknown regexps enum strip_prefix",
                                       defaults=(None, ""))
DecoderConfig.__doc__ = """One decoder of a label's chain.

static_map: dict of str to str, or None when the key is absent (ebpf_exporter then decodes
every value as "empty mapping"); regexps: tuple of compiled patterns (empty unless regexp);
enum and strip_prefix: the kernel enum's name and the prefix cut from its constants (btf_enum).
"""

LabelConfig = collections.namedtuple("LabelConfig", "name size padding decoders")
LabelConfig.__doc__ = "A label read from `size` bytes of the key, `padding` bytes skipped after it."

CounterConfig = collections.namedtuple(
    "CounterConfig", "name help labels perf_event_array flush_interval value_field slots", defaults=(False, 3600.0, None, None))
CounterConfig.__doc__ = """A counter: one series per distinct decoded label set, values summed; with
perf_event_array, of the events counted as they arrive, anew every flush_interval seconds;
value_field: a value_fields.ValueField, or None (the map of its name, u64 values); slots: a
slot_entries.Slots (an array counted beside the map), or None."""

HistogramConfig = collections.namedtuple(
    "HistogramConfig", "name help labels bucket_type bucket_min bucket_max bucket_keys bucket_multiplier value_field",
    defaults=(None,))
HistogramConfig.__doc__ = """A histogram; labels[-1] is the bucket index, the others are output labels
(with value_field.buckets, the buckets are in the value and every label is an output label).

bucket_keys is a tuple of floats for "fixed" (else empty); bucket_multiplier is 1.0 when the
config leaves it out or sets it to 0, as ebpf_exporter does.
"""

MetricsConfig = collections.namedtuple("MetricsConfig", "counters histograms notes", defaults=((),))
MetricsConfig.__doc__ = """The checked metrics section: tuples of CounterConfig and HistogramConfig,
and notes: texts about sections of the config that are not exported (to log)."""

TRACING_NOTE = "OpenTelemetry tracing (the 'tracing' section) is not supported; its metrics are exported"
_UNSUPPORTED_SECTIONS = {
    "kaddrs": "kernel symbol addresses are written into the object's kaddr_<symbol> variables when "
              "ebpf_exporter loads it; here ebpf_program loads the object, so they would stay 0",
    "cgroup_id_map": "ebpf_exporter fills that map with the ids of the matching cgroups as it runs the "
                     "object; this exporter only reads maps, so the program would match no cgroup",
}


def key_size(labels):
    """Bytes of map key the labels describe (sizes plus paddings)."""
    return sum(label.size + label.padding for label in labels)


def metric_label_names(metric):
    """The label names a metric carries on output (a histogram's bucket label is not one)."""
    labels = metric.labels[:-1] if buckets_in_key(metric) else metric.labels
    return tuple(label.name for label in labels)


def buckets_in_key(metric):
    """Whether a metric is a histogram whose last key label is the bucket index (ebpf_exporter's layout)."""
    return isinstance(metric, HistogramConfig) and not (metric.value_field and metric.value_field.buckets)


def parse_metrics_config(config, source="config"):
    """Check a loaded config dict and return a MetricsConfig.

    ``source`` names the config in error messages (for example the YAML file's path).
    """
    if not isinstance(config, dict):
        raise BpfError("%s: expected a mapping with a 'metrics' key, got %s" % (source, _kind(config)))
    for section, reason in sorted(_UNSUPPORTED_SECTIONS.items()):
        if section in config:
            raise BpfError("%s: the %r section is not supported: %s" % (source, section, reason))
    unknown = set(config) - {"metrics", "tracing"}
    if unknown:
        raise BpfError("%s: unknown top-level key(s) %s; expected metrics"
                       % (source, ", ".join(sorted(map(str, unknown)))))
    notes = (TRACING_NOTE,) if "tracing" in config else ()
    metrics = config.get("metrics")
    if metrics is None and notes:
        raise BpfError("%s: %s, and this config has no metrics" % (source, TRACING_NOTE))
    if not isinstance(metrics, dict):
        raise BpfError("%s: 'metrics' must be a mapping with 'counters' and/or 'histograms'" % source)
    unknown = set(metrics) - {"counters", "histograms"}
    if unknown:
        raise BpfError("%s: unknown key(s) %s under 'metrics'; expected counters, histograms"
                       % (source, ", ".join(sorted(map(str, unknown)))))
    counters = _metric_list(metrics, "counters", source)
    histograms = _metric_list(metrics, "histograms", source)
    if not counters and not histograms:
        raise BpfError("%s: metrics are not defined (no counters and no histograms)" % source)

    parsed_counters = tuple(_parse_counter(item, index, source) for index, item in enumerate(counters))
    parsed_histograms = tuple(_parse_histogram(item, index, source) for index, item in enumerate(histograms))
    seen = set()
    for metric in parsed_counters + parsed_histograms:
        if metric.name in seen:
            raise BpfError("%s: more than one metric is named %r; metric names must be unique (a metric "
                           "reads the map of its name unless it names one with 'map')" % (source, metric.name))
        seen.add(metric.name)
    return MetricsConfig(parsed_counters, parsed_histograms, notes)


def _metric_list(metrics, key, source):
    items = metrics.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise BpfError("%s: metrics.%s must be a list, got %s" % (source, key, _kind(items)))
    return items


def _parse_counter(item, index, source):
    where = "%s: counter #%d" % (source, index)
    name, help_text, where = _name_and_help(item, where, _COUNTER_KEYS)
    perf = item.get("perf_event_array", False)
    if not isinstance(perf, bool):
        raise BpfError("%s: perf_event_array must be true or false, got %r" % (where, perf))
    if "flush_interval" in item and not perf:
        raise BpfError("%s: flush_interval applies to perf_event_array counters only" % where)
    try:
        flush = go_duration(item.get("flush_interval", "1h"))
    except ValueError as exc:
        raise BpfError("%s: flush_interval must be a duration such as \"10m\": %s" % (where, exc))
    labels = _parse_labels(item.get("labels"), where, required=False)
    field = parse_value_field(item, name, where, histogram=False)
    slots = parse_slots(item, where)
    if (field is not None or slots is not None) and perf:
        raise BpfError("%s: map, value and slots do not apply to perf_event_array counters" % where)
    return CounterConfig(name, help_text, labels, perf, flush, field, slots)


def _parse_histogram(item, index, source):
    where = "%s: histogram #%d" % (source, index)
    name, help_text, where = _name_and_help(item, where, _HISTOGRAM_KEYS)
    bucket_type = item.get("bucket_type")
    if bucket_type not in BUCKET_TYPES:
        raise BpfError("%s: bucket_type must be one of %s, got %r" % (where, ", ".join(BUCKET_TYPES), bucket_type))

    multiplier = item.get("bucket_multiplier", 1)
    if not _is_number(multiplier) or multiplier < 0:
        raise BpfError("%s: bucket_multiplier must be a number >= 0 (0 means 1), got %r" % (where, multiplier))
    multiplier = float(multiplier) or 1.0

    bucket_keys = ()
    bucket_min = bucket_max = 0
    if bucket_type == "fixed":
        keys = item.get("bucket_keys")
        if not isinstance(keys, list) or not keys or not all(_is_number(key) for key in keys):
            raise BpfError("%s: bucket_keys must be a non-empty list of numbers for bucket_type fixed, got %r"
                           % (where, keys))
        bucket_keys = tuple(float(key) for key in keys)
        if any(a >= b for a, b in zip(bucket_keys, bucket_keys[1:])):
            raise BpfError("%s: bucket_keys must be in strictly increasing order, got %r" % (where, keys))
    else:
        bucket_min = _int_field(item, "bucket_min", where)
        bucket_max = _int_field(item, "bucket_max", where)
        if bucket_max <= bucket_min:
            raise BpfError("%s: bucket_max (%d) must be greater than bucket_min (%d)" % (where, bucket_max, bucket_min))
        if bucket_type != "linear" and bucket_max > 1023:
            raise BpfError("%s: bucket_max %d is out of range for %s buckets (2^%d overflows)"
                           % (where, bucket_max, bucket_type, bucket_max))

    field = parse_value_field(item, name, where, histogram=True)
    in_key = not (field and field.buckets)
    labels = _parse_labels(item.get("labels"), where, required=in_key)
    if "le" in [label.name for label in (labels[:-1] if in_key else labels)]:
        raise BpfError("%s: label name 'le' is reserved for histogram buckets" % where)
    return HistogramConfig(name, help_text, labels, bucket_type, bucket_min, bucket_max, bucket_keys, multiplier,
                           field)


def _name_and_help(item, where, allowed):
    if not isinstance(item, dict):
        raise BpfError("%s: expected a mapping, got %s" % (where, _kind(item)))
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise BpfError("%s: name is missing or not a string" % where)
    where = "%s %r" % (where.rsplit(" #", 1)[0], name)
    if not _METRIC_NAME_RE.match(name):
        raise BpfError("%s: name is not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)" % where)
    unknown = set(item) - allowed
    if unknown:
        raise BpfError("%s: unknown key(s) %s; expected %s"
                       % (where, ", ".join(sorted(map(str, unknown))), ", ".join(sorted(allowed))))
    help_text = item.get("help")
    if not isinstance(help_text, str) or not help_text:
        raise BpfError("%s: help is missing or empty" % where)
    return name, help_text, where


def _parse_labels(labels, where, required):
    if labels is None:
        labels = []
    if not isinstance(labels, list):
        raise BpfError("%s: labels must be a list, got %s" % (where, _kind(labels)))
    if required and not labels:
        raise BpfError("%s: a histogram needs at least one label, the last one being the bucket index" % where)
    parsed = []
    names = set()
    for index, label in enumerate(labels):
        label_where = "%s: labels[%d]" % (where, index)
        if not isinstance(label, dict):
            raise BpfError("%s: expected a mapping, got %s" % (label_where, _kind(label)))
        unknown = set(label) - _LABEL_KEYS
        if unknown:
            raise BpfError("%s: unknown key(s) %s; expected decoders, name, padding, size"
                           % (label_where, ", ".join(sorted(map(str, unknown)))))
        name = label.get("name")
        if not isinstance(name, str) or not _LABEL_NAME_RE.match(name) or name.startswith("__"):
            raise BpfError("%s: name %r is not a valid Prometheus label name" % (label_where, name))
        label_where = "%s (%s)" % (label_where, name)
        if name in names:
            raise BpfError("%s: label name %r is used twice" % (label_where, name))
        names.add(name)
        size = label.get("size")
        if not _is_int(size) or size <= 0:
            raise BpfError("%s: size must be a positive number of bytes, got %r" % (label_where, size))
        padding = label.get("padding", 0)
        if not _is_int(padding) or padding < 0:
            raise BpfError("%s: padding must be a number of bytes >= 0, got %r" % (label_where, padding))
        decoders = label.get("decoders")
        if not isinstance(decoders, list) or not decoders:
            raise BpfError("%s: decoders must be a non-empty list" % label_where)
        parsed.append(LabelConfig(name, size, padding,
                                  tuple(_parse_decoder(d, "%s: decoders[%d]" % (label_where, i))
                                        for i, d in enumerate(decoders))))
    return tuple(parsed)


def _parse_decoder(decoder, where):
    if not isinstance(decoder, dict):
        raise BpfError("%s: expected a mapping, got %s" % (where, _kind(decoder)))
    unknown = set(decoder) - _DECODER_KEYS
    if unknown:
        raise BpfError("%s: unknown key(s) %s; expected allow_unknown, enum, name, regexps, static_map, strip_prefix"
                       % (where, ", ".join(sorted(map(str, unknown)))))
    name = decoder.get("name")
    if name not in DECODER_NAMES:
        raise BpfError("%s: unknown decoder %r; expected one of %s" % (where, name, ", ".join(DECODER_NAMES)))

    static_map = decoder.get("static_map")
    if static_map is not None:
        if not isinstance(static_map, dict):
            raise BpfError("%s: static_map must be a mapping, got %s" % (where, _kind(static_map)))
        static_map = dict((scalar_text(k), scalar_text(v)) for k, v in static_map.items())

    allow_unknown = decoder.get("allow_unknown", False)
    if not isinstance(allow_unknown, bool):
        raise BpfError("%s: allow_unknown must be true or false, got %r" % (where, allow_unknown))

    regexps = decoder.get("regexps")
    compiled = ()
    if name == "regexp" or regexps is not None:
        if not isinstance(regexps, list) or not regexps or not all(isinstance(r, str) for r in regexps):
            raise BpfError("%s: regexps must be a non-empty list of strings" % where)
        patterns = []
        for expression in regexps:
            try:
                patterns.append(re.compile(expression))
            except re.error as exc:
                raise BpfError("%s: regexp %r does not compile: %s" % (where, expression, exc))
        compiled = tuple(patterns)
    enum, strip_prefix = _btf_enum_fields(decoder, name, where)
    return DecoderConfig(name, static_map, allow_unknown, compiled, enum, strip_prefix)


def _btf_enum_fields(decoder, name, where):
    """(enum, strip_prefix) of a btf_enum decoder; (None, "") for the others."""
    if name != "btf_enum":
        given = [key for key in _BTF_ENUM_KEYS if key in decoder]
        if given:
            raise BpfError("%s: %s only apply to the btf_enum decoder" % (where, ", ".join(given)))
        return None, ""
    enum = decoder.get("enum")
    if not isinstance(enum, str) or not _C_NAME_RE.match(enum):
        raise BpfError("%s: btf_enum needs enum, the name of a kernel enum (for example skb_drop_reason), got %r"
                       % (where, enum))
    strip_prefix = decoder.get("strip_prefix", "")
    if strip_prefix is None:
        strip_prefix = ""
    if not isinstance(strip_prefix, str):
        raise BpfError("%s: strip_prefix must be a string, got %s" % (where, _kind(strip_prefix)))
    return enum, strip_prefix


def scalar_text(value):
    """A static_map key or value as the text ebpf_exporter compares against."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _int_field(item, key, where):
    if not _is_int(item.get(key)):
        raise BpfError("%s: %s must be an integer, got %r" % (where, key, item.get(key)))
    return item[key]


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(value):
    return type(value).__name__
