"""Helpers of the exporter's metrics tests: collectors for YAML configs modelled on ebpf_exporter's
examples, map entries hand-built with struct.pack as its BPF programs leave them, and the text
parsed back through prometheus' parser."""
import struct

import yaml
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.ebpf.observability.plugins.module_utils.exporter.metrics_config import parse_metrics_config
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.collector import MetricsCollector
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.text_format import render_text

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


NO_LABELS = """
metrics:
  counters:
    - name: oom_kills_total
      help: Count global OOM kills
"""


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
