"""metrics_config: ebpf_exporter-style metrics configs checked into typed objects."""
import re

import pytest
import yaml

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.config import with_static_maps
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import go_duration
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.metrics_config import (
    CounterConfig, HistogramConfig, key_size, metric_label_names, parse_metrics_config,
)

# Modelled on ebpf_exporter's examples/biolatency.yaml and examples/cachestat.yaml.
BIOLATENCY = """
metrics:
  histograms:
    - name: bio_latency_seconds
      help: Block IO latency histogram
      bucket_type: exp2
      bucket_min: 0
      bucket_max: 26
      bucket_multiplier: 0.000001 # microseconds to seconds
      labels:
        - name: device
          size: 4
          decoders:
            - name: majorminor
        - name: operation
          size: 1
          padding: 3
          decoders:
            - name: uint
            - name: static_map
              static_map:
                1: read
                2: write
        - name: bucket
          size: 8
          decoders:
            - name: uint
"""

CACHESTAT = """
metrics:
  counters:
    - name: page_cache_ops_total
      help: Page cache operation counters by type
      labels:
        - name: op
          size: 8
          decoders:
            - name: ksym
        - name: command
          size: 16
          decoders:
            - name: string
            - name: regexp
              regexps:
                - ^systemd-journal$
                - ^syslog-ng$
"""


def counter(**overrides):
    item = {"name": "things_total", "help": "Things", "labels": [
        {"name": "kind", "size": 4, "decoders": [{"name": "uint"}]}]}
    item.update(overrides)
    return {"metrics": {"counters": [item]}}


def histogram(**overrides):
    item = {"name": "latency_seconds", "help": "Latency", "bucket_type": "exp2", "bucket_min": 0,
            "bucket_max": 10, "labels": [{"name": "bucket", "size": 8, "decoders": [{"name": "uint"}]}]}
    item.update(overrides)
    return {"metrics": {"histograms": [item]}}


def label(**overrides):
    item = {"name": "kind", "size": 4, "decoders": [{"name": "uint"}]}
    item.update(overrides)
    return item


def test_histogram_from_yaml():
    config = parse_metrics_config(yaml.safe_load(BIOLATENCY), "biolatency.yaml")
    assert config.counters == ()
    (hist,) = config.histograms
    assert isinstance(hist, HistogramConfig)
    assert (hist.name, hist.help, hist.bucket_type) == ("bio_latency_seconds", "Block IO latency histogram", "exp2")
    assert (hist.bucket_min, hist.bucket_max, hist.bucket_multiplier) == (0, 26, 0.000001)
    assert [(lab.name, lab.size, lab.padding) for lab in hist.labels] == [
        ("device", 4, 0), ("operation", 1, 3), ("bucket", 8, 0)]
    assert [d.name for d in hist.labels[1].decoders] == ["uint", "static_map"]
    # YAML loads the keys 1 and 2 as ints; ebpf_exporter compares decoded text, so they become text.
    assert hist.labels[1].decoders[1].static_map == {"1": "read", "2": "write"}
    assert key_size(hist.labels) == 16
    assert metric_label_names(hist) == ("device", "operation")


def test_counter_from_yaml():
    config = parse_metrics_config(yaml.safe_load(CACHESTAT))
    (ctr,) = config.counters
    assert isinstance(ctr, CounterConfig)
    assert metric_label_names(ctr) == ("op", "command")
    regexp = ctr.labels[1].decoders[1]
    assert [p.pattern for p in regexp.regexps] == ["^systemd-journal$", "^syslog-ng$"]
    assert regexp.static_map is None and regexp.allow_unknown is False
    assert key_size(ctr.labels) == 24


def test_defaults_follow_ebpf_exporter():
    hist = parse_metrics_config(histogram(bucket_multiplier=0)).histograms[0]
    assert hist.bucket_multiplier == 1.0  # 0 means 1, as in ebpf_exporter
    assert parse_metrics_config(histogram()).histograms[0].bucket_multiplier == 1.0
    ctr = parse_metrics_config(counter(labels=None)).counters[0]
    assert ctr.labels == ()


def test_fixed_histogram_keys():
    hist = parse_metrics_config(histogram(bucket_type="fixed", bucket_keys=[1, 5, 10.5], bucket_min=None,
                                          bucket_max=None)).histograms[0]
    assert hist.bucket_keys == (1.0, 5.0, 10.5)


def test_static_map_scalars_become_text():
    cfg = counter(labels=[label(decoders=[{"name": "static_map", "allow_unknown": True,
                                           "static_map": {True: 1, 3: None, "x": "y"}}])])
    decoder = parse_metrics_config(cfg).counters[0].labels[0].decoders[0]
    assert decoder.static_map == {"true": "1", "3": "", "x": "y"}
    assert decoder.allow_unknown is True


@pytest.mark.parametrize("config, message", [
    ([], r"config: expected a mapping with a 'metrics' key"),
    ({}, r"'metrics' must be a mapping"),
    ({"metrics": {}}, r"metrics are not defined"),
    ({"metrics": {"gauges": []}}, r"unknown key\(s\) gauges under 'metrics'"),
    ({"metrics": {"counters": {}}}, r"metrics.counters must be a list"),
    (counter(name=""), r"counter #0: name is missing"),
    (counter(name="bad-name"), r"counter 'bad-name': name is not a valid Prometheus metric name"),
    (counter(help=""), r"counter 'things_total': help is missing"),
    (counter(table="x"), r"counter 'things_total': unknown key\(s\) table"),
    (counter(perf_event_array="yes"), r"counter 'things_total': perf_event_array must be true or false"),
    (counter(flush_interval="1m"), r"flush_interval applies to perf_event_array counters only"),
    (counter(perf_event_array=True, flush_interval="10"), r"flush_interval must be a duration such as"),
    (counter(perf_event_array=True, flush_interval=60), r"flush_interval must be a duration such as"),
    (counter(labels={}), r"counter 'things_total': labels must be a list"),
    (counter(labels=[label(size=0)]), r"counter 'things_total': labels\[0\] \(kind\): size must be a positive"),
    (counter(labels=[label(size=None)]), r"labels\[0\] \(kind\): size must be a positive"),
    (counter(labels=[label(padding=-1)]), r"labels\[0\] \(kind\): padding must be"),
    (counter(labels=[label(decoders=[])]), r"labels\[0\] \(kind\): decoders must be a non-empty list"),
    (counter(labels=[label(name="1x")]), r"labels\[0\]: name '1x' is not a valid Prometheus label name"),
    (counter(labels=[label(name="__x")]), r"name '__x' is not a valid Prometheus label name"),
    (counter(labels=[label(), label()]), r"labels\[1\] \(kind\): label name 'kind' is used twice"),
    (counter(labels=[label(decoders=[{"name": "nope"}])]), r"decoders\[0\]: unknown decoder 'nope'"),
    (counter(labels=[label(decoders=[{"name": "usym"}])]), r"unknown decoder 'usym'"),
    (counter(labels=[label(decoders=[{"name": "uint", "map": {}}])]), r"decoders\[0\]: unknown key\(s\) map"),
    (counter(labels=[label(decoders=[{"name": "regexp"}])]), r"decoders\[0\]: regexps must be a non-empty list"),
    (counter(labels=[label(decoders=[{"name": "regexp", "regexps": ["("]}])]), r"regexp '\(' does not compile"),
    (counter(labels=[label(decoders=[{"name": "static_map", "static_map": [1]}])]), r"static_map must be a mapping"),
    (counter(labels=[label(decoders=[{"name": "static_map", "allow_unknown": "yes"}])]),
     r"allow_unknown must be true or false"),
    (counter(labels=[label(decoders=[{"name": "btf_enum"}])]), r"decoders\[0\]: btf_enum needs enum, the name of a kernel enum"),
    (counter(labels=[label(decoders=[{"name": "btf_enum", "enum": "enum skb_drop_reason"}])]), r"btf_enum needs enum"),
    (counter(labels=[label(decoders=[{"name": "btf_enum", "enum": "x", "strip_prefix": 1}])]), r"strip_prefix must be a string"),
    (counter(labels=[label(decoders=[{"name": "uint", "enum": "x"}])]), r"decoders\[0\]: enum only apply to the btf_enum decoder"),
    (histogram(bucket_type="exp3"), r"histogram 'latency_seconds': bucket_type must be one of exp2, exp2zero"),
    (histogram(bucket_min=None), r"histogram 'latency_seconds': bucket_min must be an integer"),
    (histogram(bucket_max=0), r"bucket_max \(0\) must be greater than bucket_min \(0\)"),
    (histogram(bucket_max=2000), r"bucket_max 2000 is out of range for exp2 buckets"),
    (histogram(bucket_multiplier=-1), r"bucket_multiplier must be a number >= 0"),
    (histogram(bucket_multiplier="1"), r"bucket_multiplier must be a number"),
    (histogram(bucket_type="fixed"), r"bucket_keys must be a non-empty list of numbers for bucket_type fixed"),
    (histogram(bucket_type="fixed", bucket_keys=[5, 1]), r"bucket_keys must be in strictly increasing order"),
    (histogram(labels=[]), r"histogram 'latency_seconds': a histogram needs at least one label"),
    (histogram(labels=[label(name="le"), label(name="bucket", size=8)]), r"label name 'le' is reserved"),
])
def test_errors_name_metric_and_field(config, message):
    with pytest.raises(BpfError, match=message):
        parse_metrics_config(config)


def test_btf_enum_decoder_config():
    btf_enum = {"name": "btf_enum", "enum": "skb_drop_reason", "strip_prefix": "SKB_DROP_REASON_", "allow_unknown": True}
    cfg = counter(labels=[label(decoders=[{"name": "uint"}, btf_enum])])
    uint, enum = parse_metrics_config(cfg).counters[0].labels[0].decoders
    assert (uint.enum, uint.strip_prefix) == (None, "")
    assert (enum.name, enum.enum, enum.strip_prefix, enum.allow_unknown) == ("btf_enum", "skb_drop_reason", "SKB_DROP_REASON_", True)


def test_error_names_the_source():
    with pytest.raises(BpfError, match=re.escape("/etc/ebpf/bio.yaml: histogram 'latency_seconds': bucket_type")):
        parse_metrics_config(histogram(bucket_type=None), "/etc/ebpf/bio.yaml")


def test_metric_names_must_be_unique():
    config = counter()
    config["metrics"]["histograms"] = histogram(name="things_total")["metrics"]["histograms"]
    with pytest.raises(BpfError, match="more than one metric is named 'things_total'"):
        parse_metrics_config(config)


SPANS = {"spans": [{"name": "exec", "ringbuf": "events", "labels": []}]}


def test_a_tracing_only_config_says_tracing_is_not_supported():
    with pytest.raises(BpfError) as err:
        parse_metrics_config({"tracing": SPANS}, "exec-trace.yaml")
    assert str(err.value) == ("exec-trace.yaml: OpenTelemetry tracing (the 'tracing' section) is not supported; "
                              "its metrics are exported, and this config has no metrics")


def test_the_metrics_of_a_config_with_tracing_are_exported_with_a_note():
    config = parse_metrics_config(dict(counter(), tracing=SPANS))
    assert config.counters[0].name == "things_total"
    assert config.notes == ("OpenTelemetry tracing (the 'tracing' section) is not supported; its metrics are exported",)
    assert parse_metrics_config(counter()).notes == ()
    # static_maps keep the notes
    assert with_static_maps(config, {}, "here").notes == config.notes


@pytest.mark.parametrize("section, value, words", [
    ("kaddrs", ["mark_page_accessed"], "kaddr_<symbol> variables"),
    ("cgroup_id_map", {"name": "cgroup_id_map", "regexps": ["^.*(system.slice/.*)$"]}, "match no cgroup"),
    ("programs", [], "unknown top-level key(s) programs"),
])
def test_sections_that_cannot_be_honoured_are_refused(section, value, words):
    with pytest.raises(BpfError) as err:
        parse_metrics_config(dict(counter(), **{section: value}), "cfg.yaml")
    assert words in str(err.value) and str(err.value).startswith("cfg.yaml: ")
    if section != "programs":
        assert "the %r section is not supported" % section in str(err.value)


def test_perf_event_array_counters_flush_hourly_unless_told():
    (ctr,) = parse_metrics_config(counter(perf_event_array=True)).counters
    assert ctr.perf_event_array is True and ctr.flush_interval == 3600.0
    (ctr,) = parse_metrics_config(counter(perf_event_array=True, flush_interval="1m30s")).counters
    assert ctr.flush_interval == 90.0
    (ctr,) = parse_metrics_config(counter()).counters
    assert ctr.perf_event_array is False


@pytest.mark.parametrize("text, seconds", [("1h", 3600), ("90s", 90), ("1m30s", 90), ("500ms", 0.5), ("1.5h", 5400),
                                           ("2h45m", 9900), ("100us", 1e-4)])
def test_go_durations(text, seconds):
    assert go_duration(text) == pytest.approx(seconds)
