"""exporter collector, families and text format: map entries (hand-built with struct.pack) -> metric families -> text."""
import math
import random
import struct

import pytest
import yaml
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as bs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_syscall import possible_cpus
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.metrics_config import parse_metrics_config
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import (
    DecoderErrors, MapSnapshot, MetricFamily, entry_values, go_float, parse_bucket_index,
)
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.collector import MetricsCollector
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.text_format import (
    TextRenderer, render_text, to_prometheus_client,
)

U64 = struct.Struct("<Q")


def u64(*values):
    return struct.pack("<%dQ" % len(values), *values)


def collector_for(*configs):
    """A collector for the metrics of one or more YAML configs together."""
    merged = {"metrics": {"counters": [], "histograms": []}}
    for config in configs:
        for kind, metrics in yaml.safe_load(config)["metrics"].items():
            merged["metrics"][kind].extend(metrics)
    return MetricsCollector(parse_metrics_config(merged, "test.yaml"))


def samples(text):
    """{(sample name, sorted label items): value} of a text exposition, through prometheus' parser."""
    result = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in result, "duplicate series %r" % (key,)
            result[key] = sample.value
    return result


def render(collector, snapshots):
    return render_text(collector.collect(snapshots))


# Modelled on ebpf_exporter's examples: a struct key with padding (u8 op; 3 bytes pad; u32 pid).
OPS = """
metrics:
  counters:
    - name: ops_total
      help: Operations by kind and process
      labels:
        - name: op
          size: 1
          padding: 3
          decoders:
            - name: uint
            - name: static_map
              static_map:
                1: read
                2: write
        - name: pid
          size: 4
          decoders:
            - name: uint
"""


def ops_key(op, pid, pad=b"\xee\xee\xee"):
    return struct.pack("<B3sI", op, pad, pid)


def test_counter_labels_padding_and_values():
    collector = collector_for(OPS)
    entries = [(ops_key(1, 100), u64(5)), (ops_key(2, 100), u64(7)), (ops_key(3, 200), u64(2 ** 63))]
    text = render(collector, {"ops_total": MapSnapshot(entries, 8, False)})
    assert samples(text) == {
        ("ebpf_exporter_ops_total", (("op", "read"), ("pid", "100"))): 5.0,
        ("ebpf_exporter_ops_total", (("op", "write"), ("pid", "100"))): 7.0,
        ("ebpf_exporter_ops_total", (("op", "unknown:3"), ("pid", "200"))): float(2 ** 63),
    }
    # The padding bytes are never read: other padding, same labels.
    again = render(collector, {"ops_total": MapSnapshot([(ops_key(1, 100, b"\0\0\0"), u64(5))], 8, False)})
    assert 'ebpf_exporter_ops_total{op="read",pid="100"} 5\n' in again
    assert "9223372036854775808\n" in text  # u64 values stay exact integers


def test_exact_text_format():
    collector = collector_for(OPS)
    entries = [(ops_key(2, 7), u64(3)), (ops_key(1, 10), u64(1)), (ops_key(1, 9), u64(2))]
    assert render(collector, {"ops_total": MapSnapshot(entries, 8, False)}) == (
        "# HELP ebpf_exporter_ops_total Operations by kind and process\n"
        "# TYPE ebpf_exporter_ops_total counter\n"
        'ebpf_exporter_ops_total{op="read",pid="10"} 1\n'
        'ebpf_exporter_ops_total{op="read",pid="9"} 2\n'
        'ebpf_exporter_ops_total{op="write",pid="7"} 3\n')


@pytest.mark.parametrize("cpus", [1, 2, 3, 8])
def test_per_cpu_values_are_summed(cpus):
    collector = collector_for(OPS)
    rng = random.Random(cpus)
    per_cpu = {ops_key(1, pid): [rng.randrange(2 ** 40) for _cpu in range(cpus)] for pid in range(50)}
    entries = [(key, u64(*slots)) for key, slots in per_cpu.items()]
    got = samples(render(collector, {"ops_total": MapSnapshot(entries, 8, True)}))
    for pid, key in enumerate(per_cpu):
        assert got[("ebpf_exporter_ops_total", (("op", "read"), ("pid", str(pid))))] == sum(per_cpu[key])


def test_per_cpu_values_on_this_machine():
    cpus = possible_cpus()
    values = [u64(*[i * 10 + cpu for cpu in range(cpus)]) for i in range(4)]
    assert entry_values(values, 8, True) == [sum(i * 10 + cpu for cpu in range(cpus)) for i in range(4)]
    assert entry_values([u64(9)], 8, False) == [9]
    with pytest.raises(BpfError, match="not a whole number of 8-byte CPU slots"):
        entry_values([b"\0" * 12], 8, True)
    with pytest.raises(BpfError, match="value size is 4 bytes"):
        entry_values([b"\0" * 4], 4, False)


# Modelled on ebpf_exporter's examples/percpu-softirq.yaml: a per-CPU map whose last label is "cpu".
SOFTIRQ = """
metrics:
  counters:
    - name: softirqs_total
      help: Softirqs by kind and CPU
      labels:
        - name: kind
          size: 4
          decoders:
            - name: uint
            - name: static_map
              static_map: {1: timer, 3: net_rx}
        - name: cpu
          size: 2
          decoders:
            - name: uint
    - name: cpu_ticks_total
      help: Ticks by CPU
      labels:
        - name: cpu
          size: 2
          decoders:
            - name: uint
"""


def test_cpu_label_splits_per_cpu_values():
    collector = collector_for(SOFTIRQ)
    entries = [(struct.pack("<I", 1), u64(10, 20, 30)), (struct.pack("<I", 3), u64(0, 5, 0))]
    ticks = [(struct.pack("<I", 0), u64(7, 8, 9))]  # an array's key u32 0, the only label being cpu
    got = samples(render(collector, {"softirqs_total": MapSnapshot(entries, 8, True),
                                     "cpu_ticks_total": MapSnapshot(ticks, 8, True)}))
    assert got == {
        ("ebpf_exporter_softirqs_total", (("cpu", "0"), ("kind", "timer"))): 10.0,
        ("ebpf_exporter_softirqs_total", (("cpu", "1"), ("kind", "timer"))): 20.0,
        ("ebpf_exporter_softirqs_total", (("cpu", "2"), ("kind", "timer"))): 30.0,
        ("ebpf_exporter_softirqs_total", (("cpu", "0"), ("kind", "net_rx"))): 0.0,
        ("ebpf_exporter_softirqs_total", (("cpu", "1"), ("kind", "net_rx"))): 5.0,
        ("ebpf_exporter_softirqs_total", (("cpu", "2"), ("kind", "net_rx"))): 0.0,
        ("ebpf_exporter_cpu_ticks_total", (("cpu", "0"),)): 7.0,
        ("ebpf_exporter_cpu_ticks_total", (("cpu", "1"),)): 8.0,
        ("ebpf_exporter_cpu_ticks_total", (("cpu", "2"),)): 9.0,
    }


NO_LABELS = """
metrics:
  counters:
    - name: oom_kills_total
      help: Count global OOM kills
"""


def test_metric_without_labels_reads_key_zero():
    collector = collector_for(NO_LABELS)
    entries = [(struct.pack("<I", 0), u64(4)), (struct.pack("<I", 1), u64(99))]
    text = render(collector, {"oom_kills_total": MapSnapshot(entries, 8, False)})
    assert text.endswith("# TYPE ebpf_exporter_oom_kills_total counter\nebpf_exporter_oom_kills_total 4\n")
    assert collector.errors.counts == {("oom_kills_total", "key_size"): 1}


COLLISIONS = """
metrics:
  counters:
    - name: accepts_total
      help: Accepts by family and command
      labels:
        - name: family
          size: 2
          decoders:
            - name: uint
            - name: static_map
              static_map: {2: inet, 10: inet6, 30: inet6}
        - name: command
          size: 6
          decoders:
            - name: string
            - name: regexp
              regexps: ["^(nginx|envoy)$"]
"""


def test_equal_label_sets_are_summed_and_dropped_entries_left_out():
    collector = collector_for(COLLISIONS)
    entries = [
        (struct.pack("<H6s", 10, b"nginx"), u64(3)),
        (struct.pack("<H6s", 30, b"nginx"), u64(4)),  # also inet6/nginx: summed
        (struct.pack("<H6s", 2, b"nginx"), u64(1)),
        (struct.pack("<H6s", 2, b"bash"), u64(100)),  # regexp drops it: no series, no error
        (struct.pack("<H6s", 2, b"envoy"), u64(8)),
    ]
    got = samples(render(collector, {"accepts_total": MapSnapshot(entries, 8, False)}))
    assert got == {
        ("ebpf_exporter_accepts_total", (("command", "nginx"), ("family", "inet6"))): 7.0,
        ("ebpf_exporter_accepts_total", (("command", "nginx"), ("family", "inet"))): 1.0,
        ("ebpf_exporter_accepts_total", (("command", "envoy"), ("family", "inet"))): 8.0,
    }
    assert collector.errors.counts == {}


FAILING = """
metrics:
  counters:
    - name: calls_total
      help: Calls by syscall
      labels:
        - name: syscall
          size: 3
          decoders:
            - name: uint
            - name: syscall
"""


def test_decoder_failures_drop_entries_and_are_counted():
    collector = collector_for(FAILING)
    entries = [(b"\1\0\0", u64(1)), (b"\2\0\0", u64(2)), (b"\1\0\0\0", u64(3))]
    families = collector.collect({"calls_total": MapSnapshot(entries, 8, False)})
    assert families == []  # nothing decodes: a 3-byte uint is an error
    assert collector.errors.counts == {("calls_total", "uint"): 2, ("calls_total", "key_size"): 1}
    collector.collect({"calls_total": MapSnapshot(entries[:1], 8, False)})
    assert collector.errors.counts[("calls_total", "uint")] == 3  # counted per entry and pass
    assert collector.errors.total() == 4
    text = render_text([collector.errors.family()])
    assert samples(text) == {
        ("ebpf_exporter_decoder_errors_total", (("decoder", "key_size"), ("metric", "calls_total"))): 1.0,
        ("ebpf_exporter_decoder_errors_total", (("decoder", "uint"), ("metric", "calls_total"))): 3.0,
    }
    assert "# TYPE ebpf_exporter_decoder_errors_total counter\n" in text


def test_value_size_other_than_u64_is_counted_and_skipped():
    collector = collector_for(OPS)
    assert collector.collect({"ops_total": MapSnapshot([(ops_key(1, 1), b"\1\0\0\0")], 4, False)}) == []
    assert collector.errors.counts == {("ops_total", "value_size"): 1}


def test_metrics_without_snapshot_or_entries_are_left_out():
    collector = collector_for(OPS, NO_LABELS)
    assert [c.name for c in collector.config.counters] == ["ops_total", "oom_kills_total"]
    assert collector.collect({}) == []
    assert collector.collect({"ops_total": MapSnapshot([], 8, True)}) == []
    assert render_text(collector.collect({"oom_kills_total": MapSnapshot([], 8, False)})) == ""


def test_later_passes_follow_the_map():
    collector = collector_for(OPS)
    first = {"ops_total": MapSnapshot([(ops_key(1, 1), u64(1)), (ops_key(2, 1), u64(1))], 8, False)}
    second = {"ops_total": MapSnapshot([(ops_key(1, 1), u64(5)), (ops_key(1, 2), u64(6))], 8, False)}
    render(collector, first)
    assert samples(render(collector, second)) == {
        ("ebpf_exporter_ops_total", (("op", "read"), ("pid", "1"))): 5.0,
        ("ebpf_exporter_ops_total", (("op", "read"), ("pid", "2"))): 6.0,
    }


# --- histograms ------------------------------------------------------------------------------

# Modelled on ebpf_exporter's examples/biolatency.yaml.
BIOLATENCY = """
metrics:
  histograms:
    - name: bio_latency_seconds
      help: Block IO latency histogram
      bucket_type: exp2
      bucket_min: 0
      bucket_max: 20
      bucket_multiplier: 0.000001 # microseconds to seconds
      labels:
        - name: device
          size: 8
          decoders:
            - name: string
        - name: operation
          size: 8
          decoders:
            - name: uint
            - name: static_map
              static_map: {1: read, 2: write}
        - name: bucket
          size: 8
          decoders:
            - name: uint
"""


def bio_key(device, op, bucket):
    return struct.pack("<8sQQ", device, op, bucket)


def log2(value):
    """bits.bpf.h's log2l(): floor(log2(v)), 0 for 0."""
    return max(value.bit_length() - 1, 0)


def fill_exp2(events, key_fn, max_bucket, zero_bucket=False):
    """Map contents as maps.bpf.h's increment_exp2(zero)_histogram() leaves them."""
    counts = {}
    for value in events:
        if zero_bucket:
            bucket = 0 if value == 0 else log2(value) + 1
        else:
            bucket = log2(value)
        bucket = min(bucket, max_bucket)
        counts[key_fn(bucket)] = counts.get(key_fn(bucket), 0) + 1
        if value > 0:
            counts[key_fn(max_bucket + 1)] = counts.get(key_fn(max_bucket + 1), 0) + value
    return [(key, u64(count)) for key, count in counts.items()]


def histogram_of(got, name, labels=()):
    """(le -> cumulative count, sum, count) of one histogram series in parsed samples."""
    buckets = {}
    for (sample, items), value in got.items():
        items = dict(items)
        le = items.pop("le", None)
        if sample == name + "_bucket" and tuple(sorted(items.items())) == tuple(sorted(labels)):
            buckets[le] = value
    labels = tuple(sorted(labels))
    return buckets, got[(name + "_sum", labels)], got[(name + "_count", labels)]


def test_exp2_histogram_from_events():
    collector = collector_for(BIOLATENCY)
    rng = random.Random(7)
    reads = [rng.choice([3, 100, 250, 900, 5000, 2 ** 22]) for _event in range(500)]
    writes = [rng.randrange(1, 70000) for _event in range(300)]
    entries = (fill_exp2(reads, lambda b: bio_key(b"sda", 1, b), 20)
               + fill_exp2(writes, lambda b: bio_key(b"nvme0n1", 2, b), 20))
    text = render(collector, {"bio_latency_seconds": MapSnapshot(entries, 8, False)})
    got = samples(text)
    name = "ebpf_exporter_bio_latency_seconds"
    for device, op, events in (("sda", "read", reads), ("nvme0n1", "write", writes)):
        buckets, total, count = histogram_of(got, name, (("device", device), ("operation", op)))
        assert count == len(events)
        assert buckets["+Inf"] == len(events)
        assert total == pytest.approx(sum(events) * 0.000001)
        assert len(buckets) == 22  # 0..20 and +Inf
        for i in range(21):
            expected = sum(1 for v in events if min(log2(v), 20) <= i)
            assert buckets[go_float(2.0 ** i * 0.000001)] == expected
        values = [buckets[le] for le in sorted(buckets, key=float)]
        assert values == sorted(values)  # cumulative
    # Bucket bounds print like Go's FormatFloat(f, 'g', -1, 64), le last after the sorted labels.
    assert 'ebpf_exporter_bio_latency_seconds_bucket{device="sda",operation="read",le="1e-06"} ' in text
    assert 'ebpf_exporter_bio_latency_seconds_bucket{device="sda",operation="read",le="1.048576"} 500\n' in text
    assert "# TYPE ebpf_exporter_bio_latency_seconds histogram\n" in text


EXP2ZERO = """
metrics:
  histograms:
    - name: tcp_syn_backlog
      help: TCP SYN backlog size
      bucket_type: exp2zero
      bucket_min: 0
      bucket_max: 17
      labels:
        - name: bucket
          size: 8
          decoders:
            - name: uint
"""


def test_exp2zero_histogram_has_a_zero_bucket():
    collector = collector_for(EXP2ZERO)
    events = [0, 0, 0, 1, 2, 3, 4, 5, 100, 1000, 10 ** 9]
    entries = fill_exp2(events, U64.pack, 17, zero_bucket=True)
    text = render(collector, {"tcp_syn_backlog": MapSnapshot(entries, 8, False)})
    buckets, total, count = histogram_of(samples(text), "ebpf_exporter_tcp_syn_backlog")
    assert count == len(events) == buckets["+Inf"]
    assert total == sum(events)
    assert [buckets[le] for le in ("0", "1", "2", "4", "8", "128", "1024", "65536")] == [3, 4, 6, 8, 8, 9, 10, 11]
    assert '_bucket{le="0"} 3\n' in text and "le=\"65536\"" in text and "le=\"131072\"" not in text


LINEAR = """
metrics:
  histograms:
    - name: run_queue_length
      help: Run queue length
      bucket_type: linear
      bucket_min: 1
      bucket_max: 5
      bucket_multiplier: 10
      labels:
        - name: cpu_group
          size: 4
          decoders:
            - name: uint
        - name: bucket
          size: 4
          decoders:
            - name: uint
"""


def test_linear_histogram_ignores_keys_out_of_range():
    collector = collector_for(LINEAR)
    counts = {0: 50, 1: 2, 3: 4, 5: 1, 7: 99}  # 0 and 7 are outside 1..5, 6 holds the sum
    entries = [(struct.pack("<II", 0, b), u64(n)) for b, n in counts.items()]
    entries.append((struct.pack("<II", 0, 6), u64(123)))
    buckets, total, count = histogram_of(
        samples(render(collector, {"run_queue_length": MapSnapshot(entries, 8, False)})),
        "ebpf_exporter_run_queue_length", (("cpu_group", "0"),))
    assert buckets == {"10": 2, "20": 2, "30": 6, "40": 6, "50": 7, "+Inf": 7}
    assert count == 7
    assert total == 1230  # the sum key times the multiplier


FIXED = """
metrics:
  histograms:
    - name: request_size_bytes
      help: Request sizes
      bucket_type: fixed
      bucket_keys: [1, 4, 16, 64]
      bucket_multiplier: 1024
      labels:
        - name: bucket
          size: 8
          decoders:
            - name: uint
"""


def test_fixed_histogram_uses_its_keys():
    collector = collector_for(FIXED)
    entries = [(U64.pack(1), u64(3)), (U64.pack(16), u64(4)), (U64.pack(5), u64(50)), (U64.pack(65), u64(9999))]
    text = render(collector, {"request_size_bytes": MapSnapshot(entries, 8, False)})
    buckets, total, count = histogram_of(samples(text), "ebpf_exporter_request_size_bytes")
    assert buckets == {"1024": 3, "4096": 3, "16384": 7, "65536": 7, "+Inf": 7}
    assert (count, total) == (7, 9999 * 1024)


def test_histogram_series_summed_across_entries_and_bucket_spellings():
    config = BIOLATENCY.replace("static_map: {1: read, 2: write}", "static_map: {1: read, 2: write, 3: write}")
    collector = collector_for(config)
    entries = [(bio_key(b"sda", 2, 4), u64(5)), (bio_key(b"sda", 3, 4), u64(6)), (bio_key(b"sda", 3, 5), u64(1))]
    buckets, _total, count = histogram_of(
        samples(render(collector, {"bio_latency_seconds": MapSnapshot(entries, 8, False)})),
        "ebpf_exporter_bio_latency_seconds", (("device", "sda"), ("operation", "write")))
    assert count == 12 and buckets["1.6e-05"] == 11 and buckets["3.2e-05"] == 12


def test_unparsable_bucket_skips_the_histogram():
    config = EXP2ZERO.replace("            - name: uint", "            - name: string")
    collector = collector_for(config)
    entries = [(b"1\0\0\0\0\0\0\0", u64(3)), (b"x\0\0\0\0\0\0\0", u64(4))]
    assert collector.collect({"tcp_syn_backlog": MapSnapshot(entries, 8, False)}) == []
    assert collector.errors.counts == {("tcp_syn_backlog", "bucket"): 1}


def test_histogram_sum_absent_is_zero_and_le_switches_to_exponent():
    config = EXP2ZERO.replace("exp2zero", "exp2").replace("bucket_max: 17", "bucket_max: 20")
    collector = collector_for(config)
    text = render(collector, {"tcp_syn_backlog": MapSnapshot([(U64.pack(19), u64(2))], 8, False)})
    assert 'le="524288"} 2\n' in text and 'le="1.048576e+06"} 2\n' in text
    assert "ebpf_exporter_tcp_syn_backlog_sum 0\n" in text and "ebpf_exporter_tcp_syn_backlog_count 2\n" in text


# --- rendering ---------------------------------------------------------------------------------

def test_escaping_sorting_and_gauges():
    odd = MetricFamily("ebpf_exporter_odd_total", 'Help with \\ and\nnewline', "counter", ("b", "a"))
    odd.add(("x", 'say "hi"\\\n'), 1)
    odd.add(("a", "z"), 2)
    gauge = MetricFamily("ebpf_exporter_last_pass_seconds", "Duration of the last pass", "gauge")
    gauge.add((), 0.25)
    text = render_text([odd, gauge])
    assert text == (
        "# HELP ebpf_exporter_last_pass_seconds Duration of the last pass\n"
        "# TYPE ebpf_exporter_last_pass_seconds gauge\n"
        "ebpf_exporter_last_pass_seconds 0.25\n"
        "# HELP ebpf_exporter_odd_total Help with \\\\ and\\nnewline\n"
        "# TYPE ebpf_exporter_odd_total counter\n"
        'ebpf_exporter_odd_total{a="say \\"hi\\"\\\\\\n",b="x"} 1\n'
        'ebpf_exporter_odd_total{a="z",b="a"} 2\n')
    got = samples(text)
    assert got[("ebpf_exporter_odd_total", (("a", 'say "hi"\\\n'), ("b", "x")))] == 1.0


def test_prometheus_client_gives_the_same_samples():
    collector = collector_for(BIOLATENCY, OPS)
    entries = fill_exp2([1, 5, 9, 300], lambda b: bio_key(b"sda", 1, b), 20)
    families = collector.collect({"bio_latency_seconds": MapSnapshot(entries, 8, False),
                                  "ops_total": MapSnapshot([(ops_key(1, 3), u64(4))], 8, False)})
    families.append(MetricFamily("ebpf_exporter_up", "Up", "gauge"))
    families[-1].add((), 1)

    class Collector:
        def collect(self):
            return to_prometheus_client(families)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    ours = samples(render_text(families))
    theirs = samples(generate_latest(registry).decode())
    assert ours == theirs
    assert len(ours) == 22 + 2 + 1 + 1


@pytest.mark.parametrize("value, text", [
    (1, "1"), (0, "0"), (0.5, "0.5"), (524288, "524288"), (1048576, "1.048576e+06"), (1e-6, "1e-06"),
    (2 ** -20, "9.5367431640625e-07"), (0.0001, "0.0001"), (0.00001, "1e-05"), (123456789.0, "1.23456789e+08"),
    (0.0018239999999999999, "0.0018239999999999999"), (-2.5, "-2.5"), (math.inf, "+Inf"), (1e21, "1e+21"),
])
def test_go_float(value, text):
    assert go_float(value) == text


@pytest.mark.parametrize("text, value", [
    ("0", 0), ("17", 17), ("0x1f", 31), ("0o17", 15), ("017", 15), ("0b101", 5), ("1_000", 1000),
    ("18446744073709551615", 2 ** 64 - 1), ("18446744073709551616", None), ("-1", None), ("", None),
    ("08", None), ("1e3", None), ("abc", None),
])
def test_parse_bucket_index_is_go_parseuint(text, value):
    assert parse_bucket_index(text) == value


def test_decoder_errors_api():
    errors = DecoderErrors()
    assert render_text([errors.family()]) == ""
    errors.add("bio_latency_seconds", "majorminor")
    errors.add("bio_latency_seconds", "majorminor", 2)
    family = errors.family()
    assert family.name == "ebpf_exporter_decoder_errors_total" and family.label_names == ("metric", "decoder")
    assert family.series == {("bio_latency_seconds", "majorminor"): 3}
    with pytest.raises(BpfError, match="type must be counter, gauge or histogram"):
        MetricFamily("x", "y", "summary")


def test_check_map_compares_layouts():
    collector = collector_for(OPS, SOFTIRQ, NO_LABELS)
    collector.check_map("ops_total", 8, 8, False)
    collector.check_map("softirqs_total", 4, 8, True)  # kind (4) + the u16 CPU number
    collector.check_map("softirqs_total", 6, 8, False)  # not per-CPU: the key holds the cpu field
    collector.check_map("cpu_ticks_total", 4, 8, True)
    collector.check_map("oom_kills_total", 4, 8, False)
    with pytest.raises(BpfError, match=r"metric 'ops_total': the map key is 16 bytes but the labels describe 8"):
        collector.check_map("ops_total", 16, 8, False)
    with pytest.raises(BpfError, match=r"metric 'ops_total': map values are 4 bytes"):
        collector.check_map("ops_total", 8, 4, False)
    wide_cpu = collector_for(SOFTIRQ.replace("size: 2", "size: 4"))
    with pytest.raises(BpfError, match="set its size to 2"):
        wide_cpu.check_map("softirqs_total", 4, 8, True)


def test_real_per_cpu_maps_through_batch_lookup():
    """Maps the kernel created and filled, read back with BPF_MAP_LOOKUP_BATCH, rendered."""
    cpus = possible_cpus()
    stride = bs.percpu_value_size(8)
    collector = collector_for(OPS, SOFTIRQ)
    with bs.map_create(bs.BPF_MAP_TYPE_PERCPU_HASH, 8, 8, 64, name="ops_total") as ops_fd, \
            bs.map_create(bs.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 1, name="cpu_ticks") as ticks_fd:
        bs.map_update_batch(ops_fd, [(ops_key(op, pid), u64(*[pid * 100 + op + cpu for cpu in range(cpus)]))
                                     for op in (1, 2) for pid in range(10)])
        bs.map_update(ticks_fd, struct.pack("<I", 0), u64(*[7 * (cpu + 1) for cpu in range(cpus)]))
        info = bs.map_info(ticks_fd)
        collector.check_map("ops_total", 8, 8, True)
        collector.check_map("cpu_ticks_total", info["key_size"], info["value_size"], True)
        snapshots = {
            "ops_total": MapSnapshot(bs.map_lookup_batch(ops_fd, 8, stride, 64), 8, True),
            "cpu_ticks_total": MapSnapshot(bs.map_lookup_batch(ticks_fd, 4, stride, 1), info["value_size"], True),
        }
    got = samples(render(collector, snapshots))
    for op, name in ((1, "read"), (2, "write")):
        for pid in range(10):
            expected = sum(pid * 100 + op + cpu for cpu in range(cpus))
            assert got[("ebpf_exporter_ops_total", (("op", name), ("pid", str(pid))))] == expected
    for cpu in range(cpus):
        assert got[("ebpf_exporter_cpu_ticks_total", (("cpu", str(cpu)),))] == 7 * (cpu + 1)
    assert len(got) == 20 + cpus and collector.errors.counts == {}


def test_text_renderer_reuses_its_cache_only_while_the_series_stay_the_same():
    renderer = TextRenderer()
    family = MetricFamily("ebpf_exporter_x_total", "help", "counter", ("b", "a"))
    family.add(("2", "z"), 1)
    family.add(("1", "y"), 2)
    assert renderer.render([family]) == render_text([family])
    family.series[("2", "z")] = 5  # same series, new value
    assert renderer.render([family]) == render_text([family])
    assert 'ebpf_exporter_x_total{a="z",b="2"} 5\n' in renderer.render([family])
    family.add(("0", 'q"uote'), 3)  # a new series: sorted in, escaped
    text = renderer.render([family])
    assert text == render_text([family])
    assert text.index('a="q\\"uote"') < text.index('a="y"')
    del family.series[("1", "y")]
    family.add(("9", "w"), 1)  # as many series as before, another set
    assert renderer.render([family]) == render_text([family])
    family.series[("9", "w")] = 0.5
    assert renderer.render([family]) == render_text([family])
