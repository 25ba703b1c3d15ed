"""exporter collector, counters: map entries (hand-built with struct.pack, and maps the kernel
filled) -> counter families -> text; labels, padding, per-CPU values, the cpu label, decoder
failures, and the map layouts a config accepts."""
import random
import struct

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as bs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_syscall import possible_cpus
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import MapSnapshot, entry_values
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.text_format import render_text
from metrics_cases import NO_LABELS, OPS, SOFTIRQ, collector_for, ops_key, render, samples, u64


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
