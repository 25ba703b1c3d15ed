"""exporter value_fields: metrics read from a field of a wider map value (the collection's
superset of ebpf_exporter's format): counters at an offset, histograms whose buckets and sum
are in the value, the config checks, and the same numbers as the ebpf_exporter layout."""
import struct

import pytest
import yaml

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import MapColumns, MapSnapshot
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.metrics_config import (
    metric_label_names, parse_metrics_config,
)
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.value_fields import map_name
from metrics_cases import collector_for, render, samples, u64

TRAFFIC = """
metrics:
  counters:
    - name: packets_total
      help: Packets by port
      map: traffic
      value: {offset: 0}
      labels: &port
        - {name: port, size: 4, decoders: [{name: uint}]}
    - name: bytes_total
      help: Bytes by port
      map: traffic
      value: {offset: 8}
      labels: *port
"""

LATENCY = """
metrics:
  counters:
    - name: calls_total
      help: Calls by op
      map: op_stats
      labels: &op
        - {name: op, size: 4, decoders: [{name: uint}]}
  histograms:
    - name: op_latency_seconds
      help: Latency by op
      map: op_stats
      bucket_type: exp2
      bucket_min: 0
      bucket_max: 3
      bucket_multiplier: 0.5
      value: {offset: 8, buckets: true}
      labels: *op
"""


def port(n):
    return struct.pack("<I", n)


@pytest.mark.parametrize("cpus", [1, 3])
def test_counters_read_their_field_of_each_cpu_slot(cpus):
    collector = collector_for(TRAFFIC)
    # Per CPU: {packets, bytes, spare}: a 24-byte value, three u64 per CPU slot.
    value = b"".join(u64(10 + cpu, 1000 * (cpu + 1), 7) for cpu in range(cpus))
    snapshot = MapSnapshot([(port(53), value), (port(80), u64(*[0] * 3 * cpus))], 24, True)
    got = samples(render(collector, {"packets_total": snapshot, "bytes_total": snapshot}))
    assert got[("ebpf_exporter_packets_total", (("port", "53"),))] == sum(10 + cpu for cpu in range(cpus))
    assert got[("ebpf_exporter_bytes_total", (("port", "53"),))] == sum(1000 * (cpu + 1) for cpu in range(cpus))
    assert got[("ebpf_exporter_bytes_total", (("port", "80"),))] == 0  # a hash key is a series, as before


def test_histogram_in_the_value_equals_the_key_layout():
    """One entry {calls, b0, b1, b2, b3, sum} gives the histogram ebpf_exporter's layout gives
    with one key per bucket."""
    collector = collector_for(LATENCY)
    stats = MapColumns(2, port(1) + port(2), u64(6, 1, 2, 0, 3, 40) + u64(0, 0, 0, 0, 0, 0), 4, 48, False)
    text = render(collector, {"calls_total": stats, "op_latency_seconds": stats})
    keyed = collector_for("""
metrics:
  histograms:
    - name: op_latency_seconds
      help: Latency by op
      bucket_type: exp2
      bucket_min: 0
      bucket_max: 3
      bucket_multiplier: 0.5
      labels:
        - {name: op, size: 4, decoders: [{name: uint}]}
        - {name: bucket, size: 4, decoders: [{name: uint}]}
""")
    entries = [(port(1) + port(b), u64(n)) for b, n in ((0, 1), (1, 2), (3, 3), (4, 40))]
    reference = render(keyed, {"op_latency_seconds": MapSnapshot(entries, 8, False)})
    assert reference.strip() in text
    got = samples(text)
    assert got[("ebpf_exporter_calls_total", (("op", "1"),))] == 6
    assert got[("ebpf_exporter_op_latency_seconds_sum", (("op", "1"),))] == 20.0
    assert got[("ebpf_exporter_op_latency_seconds_bucket", (("le", "2"), ("op", "1")))] == 3
    # op 2 is all zero (an array slot never written): no histogram series, its counter at 0
    assert not [k for k in got if k[0].startswith("ebpf_exporter_op_latency") and ("op", "2") in k[1]]


def test_config_checks_and_names():
    config = parse_metrics_config(yaml.safe_load(LATENCY))
    histogram = config.histograms[0]
    assert metric_label_names(histogram) == ("op",)  # no bucket label: every label is an output label
    assert map_name(histogram) == "op_stats" and map_name(config.counters[0]) == "op_stats"
    plain = parse_metrics_config(yaml.safe_load(TRAFFIC.replace("      map: traffic\n", "")))
    assert [map_name(m) for m in plain.counters] == ["packets_total", "bytes_total"]
    for bad, message in [("value: {offset: 4}", "multiple of 8"), ("value: {offset: -8}", "multiple of 8"),
                         ("value: {buckets: true}", "unknown key"), ("value: 8", "must be a mapping"),
                         ("map: 'a/b'", "name of a map"), ("map: '..'", "name of a map")]:
        text = TRAFFIC.replace("value: {offset: 0}", bad)
        with pytest.raises(BpfError, match=message):
            parse_metrics_config(yaml.safe_load(text), "t.yaml")


def test_map_sizes_are_checked_against_the_fields():
    collector = collector_for(LATENCY)
    collector.check_map("op_latency_seconds", 4, 48, True)  # calls + 4 buckets + sum
    with pytest.raises(BpfError, match="too short for 5 u64 at offset 8"):
        collector.check_map("op_latency_seconds", 4, 40, True)
    with pytest.raises(BpfError, match="value: {offset: N}"):
        collector_for(TRAFFIC.replace("      value: {offset: 0}\n", "").replace("      map: traffic\n", "", 1)
                      ).check_map("packets_total", 4, 16, False)


SLOTS = """
metrics:
  counters:
    - name: packets_total
      help: Packets by port
      map: traffic
      slots:
        map: port_slots
        index:
          - {bits: 2, key_offset: 2, key_size: 2, values: [0, 6, 17]}
          - {bits: 4, key_offset: 0, key_size: 2, table: {map: slot_ports, offset: 4}}
      labels:
        - {name: port, size: 2, decoders: [{name: uint}]}
        - {name: proto, size: 2, decoders: [{name: uint}]}
"""


def test_slots_config_and_its_checks():
    slots = parse_metrics_config(yaml.safe_load(SLOTS)).counters[0].slots
    assert slots.map == "port_slots" and [f.bits for f in slots.fields] == [2, 4]
    assert slots.fields[0].values == (0, 6, 17) and slots.fields[1].table_map == "slot_ports"
    assert slots.fields[1].table_offset == 4
    with pytest.raises(BpfError, match="either values"):
        parse_metrics_config(yaml.safe_load(SLOTS.replace("values: [0, 6, 17]}", "values: [0, 6, 17], table: {map: x}}")),
                             "t.yaml")
    for old, new, message in [("bits: 2,", "bits: 0,", "bits must be an integer >= 1"),
                              ("key_size: 2, values", "key_size: 3, values", "key_size must be 1, 2, 4 or 8"),
                              ("values: [0, 6, 17]", "values: [0, 6, 70000]", "fit 2 bytes"),
                              ("bits: 4,", "bits: 31,", "more than 32 bits"),
                              ("map: port_slots", "map: ../x", "name of a map")]:
        with pytest.raises(BpfError, match=message):
            parse_metrics_config(yaml.safe_load(SLOTS.replace(old, new)), "t.yaml")


def test_slot_keys_are_built_from_the_fields():
    from ansible_collections.ebpf.observability.plugins.module_utils.exporter.slot_entries import _slot_key
    fields = parse_metrics_config(yaml.safe_load(SLOTS)).counters[0].slots.fields
    tables = {"slot_ports": {5: [b"\0\0\0\0" + struct.pack("<H", 53) + b"\0\0"], 6: [bytes(8)]}}
    assert _slot_key(fields, 5 << 2 | 2, 4, tables, 0) == struct.pack("<HH", 53, 17)
    assert _slot_key(fields, 6 << 2 | 2, 4, tables, 0) is None  # a slot nobody holds
    assert _slot_key(fields, 5 << 2 | 3, 4, tables, 0) is None  # no values entry for class 3
    assert _slot_key(fields, 7 << 2 | 1, 4, tables, 0) is None  # no table entry
    # a per-CPU table: each CPU's entry names what that CPU counted in the slot
    per_cpu = {"slot_ports": {5: [bytes(4) + struct.pack("<H", 53) + bytes(2), bytes(4) + struct.pack("<H", 80) + bytes(2)]}}
    assert _slot_key(fields, 5 << 2 | 1, 4, per_cpu, 1) == struct.pack("<HH", 80, 6)


def test_the_bpf_readme_examples_are_the_shipped_configs():
    """The map, value and slots examples in bpf/maps.md are what the objects' configs say."""
    import os
    import re
    bpf = os.path.join(os.path.dirname(__file__), "..", "..", "bpf")
    with open(os.path.join(bpf, "maps.md")) as f:
        blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", f.read(), re.S)]
    shipped = {}
    for name in ("xdp_counter", "tc_classifier", "syscall_latency"):
        with open(os.path.join(bpf, name + ".yaml")) as f:
            config = yaml.safe_load(f)
        parse_metrics_config(config, name)
        for kind, metrics in config["metrics"].items():
            shipped.update(((kind, m["name"]), m) for m in metrics)
    checked = 0
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if "slots" in block:
            assert block["slots"] == shipped[("counters", "xdp_packets_total")]["slots"]
            checked += 1
        for kind in ("counters", "histograms"):
            for metric in block.get(kind, []):
                real = shipped[(kind, metric["name"])]
                assert dict((k, v) for k, v in metric.items() if k != "labels") == \
                    dict((k, real[k]) for k in metric if k != "labels")
                checked += 1
    assert checked >= 3
