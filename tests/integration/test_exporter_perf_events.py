"""perf_event_array counters: a program of the test's own sends events through a pinned
BPF_MAP_TYPE_PERF_EVENT_ARRAY (bpf_perf_event_output, run with BPF_PROG_TEST_RUN on this CPU) and
the exporter counts them exactly, per decoded label set, between passes and at a pass."""
import os
import struct
import time

from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_insn as bi
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.config import parse_exporter_config
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.textfile import Exporter
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.perf_events import PerfEventCounter
from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_access import grant_pin_access

BPF_FUNC_PERF_EVENT_OUTPUT = 25
BPF_F_CURRENT_CPU = 0xFFFFFFFF
XDP_PASS = 2
PACKET = bytes(64)


def sender(map_fd, value):
    """An XDP program that sends the u64 ``value`` as one perf event and passes the packet."""
    insns = (bi.st_mem(bi.BPF_DW, 10, -8, value)
             + bi.ld_map_fd(2, map_fd.fd)
             + bi.ld_imm64(3, BPF_F_CURRENT_CPU)
             + bi.mov64_reg(4, 10) + bi.alu64_imm(bi.BPF_ADD, 4, -8)
             + bi.mov64_imm(5, 8)
             + bi.call(BPF_FUNC_PERF_EVENT_OUTPUT)
             + bi.mov64_imm(0, XDP_PASS) + bi.exit_insn())
    return sc.prog_load(sc.BPF_PROG_TYPE_XDP, insns, "GPL", "ebpft_perf_out")


def counts(text, name):
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_perf_event_array_events_are_counted_exactly(pin_root, tmp_path):
    maps_dir = os.path.join(pin_root, "perf", "maps")
    bpffs.makedirs(maps_dir)
    events = sc.map_create(sc.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, sc.possible_cpus(), name="events_total")
    sc.obj_pin(events, os.path.join(maps_dir, "events_total"))
    decoders = [{"name": "uint"}, {"name": "static_map", "static_map": {7: "seven"}, "allow_unknown": True}]
    metrics = {"metrics": {"counters": [{
        "name": "events_total", "help": "events by value", "perf_event_array": True,
        "labels": [{"name": "value", "size": 8, "decoders": decoders}]}]}}
    config = parse_exporter_config({"pin_root": pin_root, "textfile": str(tmp_path / "m.prom"),
                                    "attach_events": str(tmp_path / "events.json"),
                                    "programs": [{"name": "perf", "metrics": metrics}]})
    # --grant-access lets the exporter's group put its buffers in the map (read-write), nothing else
    grant_pin_access(pin_root, ["perf"], os.getegid())
    assert os.stat(os.path.join(maps_dir, "events_total")).st_mode & 0o777 == 0o660
    exporter = Exporter(config)
    seven, nine = sender(events, 7), sender(events, 9)
    try:
        first = exporter.render()  # opens the buffers: nothing counted yet
        assert not counts(first, "ebpf_exporter_events_total")
        assert counts(first, "dropped_perf_event_map_events_events_total") == {(): 0}
        for _run in range(5):
            assert sc.prog_test_run(seven, PACKET)["retval"] == XDP_PASS
        for _run in range(3):
            sc.prog_test_run(nine, PACKET)
        # read at the pass (what --once does)
        text = exporter.render()
        assert counts(text, "ebpf_exporter_events_total") == {(("value", "seven"),): 5, (("value", "9"),): 3}, text
        assert "# TYPE ebpf_exporter_events_total counter" in text

        # the long-running exporter reads them as they arrive, between passes
        exporter.perf.continuous = True
        exporter.perf._restart()  # pylint: disable=protected-access
        for _run in range(11):
            sc.prog_test_run(nine, PACKET)
        counter = exporter.perf.counters[("perf", "events_total")]
        deadline = time.monotonic() + 5
        while counter.counts.get(struct.pack("=Q", 9)) != 14 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert counter.counts[struct.pack("=Q", 9)] == 14  # drained by the thread, no pass ran
        assert counts(exporter.render(), "ebpf_exporter_events_total")[(("value", "9"),)] == 14

        # flush_interval: the counts start anew after the pass that exports them
        exporter.perf.flushed[("perf", "events_total")] -= 3600
        assert counts(exporter.render(), "ebpf_exporter_events_total")[(("value", "9"),)] == 14
        sc.prog_test_run(nine, PACKET)
        assert counts(exporter.render(), "ebpf_exporter_events_total") == {(("value", "9"),): 1}
        exporter.perf.close()
        # another reader takes the map over and counts from there
        again = PerfEventCounter(os.path.join(maps_dir, "events_total"), 8)
        try:
            for _run in range(2):
                sc.prog_test_run(seven, PACKET)
            assert again.take() == ({struct.pack("=Q", 7): 2}, 0)
        finally:
            again.close()
    finally:
        exporter.perf.close()
        for fd in (seven, nine, events):
            fd.close()
