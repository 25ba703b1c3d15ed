"""exporter collector, histograms: map entries as maps.bpf.h's histogram helpers leave them ->
histogram families -> text; exp2, exp2zero, linear and fixed buckets, sums and bucket bounds."""
import random
import struct

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import MapSnapshot, go_float
from metrics_cases import BIOLATENCY, U64, bio_key, collector_for, fill_exp2, log2, render, samples, u64


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
