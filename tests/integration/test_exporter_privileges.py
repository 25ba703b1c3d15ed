"""The exporter as a non-root user with only CAP_BPF once the pins are granted to its group, and
the series it makes of array maps and of maps past the per-metric limit."""
import grp
import os
import struct
import subprocess

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.textfile import Exporter, read_metric_map
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.config import parse_exporter_config
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.metrics_config import parse_metrics_config
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.collector import MetricsCollector
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach import AttachBackend
from netns import veth_netns_pair
from exporter_harness import (
    Deployment, PREFIX, SYSTEM_PYTHON, big_map, load, run_with_cap_bpf_only, samples, series, value,
)


@pytest.fixture
def veth():
    with veth_netns_pair(PREFIX, addresses=True) as pair:
        yield pair


@pytest.fixture
def exporter_group():
    name = "%s-%d" % (PREFIX, os.getpid())
    subprocess.run(["groupadd", "--system", name], check=True, capture_output=True)
    yield grp.getgrnam(name).gr_gid
    subprocess.run(["groupdel", name], check=False, capture_output=True)


def test_non_root_with_only_cap_bpf_reads_the_maps_once_granted(pin_root, work, built, exporter_group):
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("no %s" % SYSTEM_PYTHON)
    # The pin root below a directory of mode 0700, as systemd mounts /sys/fs/bpf.
    os.makedirs(pin_root)
    os.chmod(pin_root, 0o700)
    deployment = Deployment(os.path.join(pin_root, "nested"), work)
    load(deployment, built, "xdp_counter")
    big = big_map(deployment.pin_root, 1000)
    deployment.configure([{"name": "xdp_counter"}, big], group=exporter_group)

    def as_nobody():
        return run_with_cap_bpf_only(deployment, exporter_group)

    before, stderr = as_nobody()
    assert value(before, "ebpf_exporter_map_errors_total", program="big", map="big_total") == 1
    assert "EACCES" in stderr and "--grant-access" in stderr
    assert value(before, "ebpf_exporter_source_errors_total", source="programs") == 2  # both objects

    dry = deployment.run("--grant-access", "--dry-run")
    assert dry.returncode == 0 and '"changed": true' in dry.stdout, dry.stdout + dry.stderr
    assert os.stat(os.path.join(deployment.pin_root, "big", "maps", "big_total")).st_mode & 0o777 == 0o600
    first = deployment.run("--grant-access")
    assert '"changed": true' in first.stdout, first.stdout + first.stderr
    again = deployment.run("--grant-access")
    assert '"changed": false' in again.stdout, again.stdout

    assert os.stat(pin_root).st_mode & 0o777 == 0o701  # search permission only
    after, stderr = as_nobody()
    assert len(series(after, "ebpf_exporter_big_total")) == 1000
    assert sum(series(after, "ebpf_exporter_big_total").values()) == 1000 * sc.possible_cpus()
    assert value(after, "ebpf_programs_loaded", program_type="xdp") == 1
    # bpf_links cannot be listed without CAP_SYS_ADMIN: XDP and TC attachments are still counted
    assert not value(after, "ebpf_exporter_source_errors_total", source="attachments"), stderr
    # ... and a program none of those attach has no ebpf_exporter_ebpf_program_attached series (unknown, not 0)
    (info,) = series(after, "ebpf_exporter_ebpf_program_info")
    assert dict(info)["config"] == "xdp_counter" and not series(after, "ebpf_exporter_ebpf_program_attached")
    assert not series(after, "ebpf_exporter_map_errors_total"), stderr
    assert value(after, "ebpf_exporter_last_success_timestamp_seconds") > 0


def test_non_root_with_only_cap_bpf_counts_tcx_and_tracing_links_from_their_pins(
        pin_root, work, built, veth, exporter_group):
    """Without CAP_SYS_ADMIN the kernel's links cannot be listed: the link pins ebpf_attach made
    under links/ say what is attached where, and the counts are those root sees."""
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("no %s" % SYSTEM_PYTHON)
    deployment = Deployment(pin_root, work)
    for name in ("syscall_latency", "tc_classifier"):
        load(deployment, built, name)
    events = os.path.join(work, "events")
    for params in ({"name": "syscall_latency", "program": "syscall_enter_tp", "hook": "raw_tracepoint", "target": "sys_enter"},
                   {"name": "tc_classifier", "program": "tc_classify_ingress", "hook": "tc", "interface": veth.ifname,
                    "direction": "ingress"}):
        res = AttachBackend(dict(params, pin_root=deployment.pin_root, events_dir=events)).run()
        assert res["changed"], res
    deployment.configure([{"name": "syscall_latency"}, {"name": "tc_classifier"}], group=exporter_group)
    assert deployment.run("--grant-access").returncode == 0
    root = samples(deployment.run("--once", "--stdout").stdout)
    least, stderr = run_with_cap_bpf_only(deployment, exporter_group)
    for parsed in (root, least):
        assert value(parsed, "ebpf_programs_attached", interface=veth.ifname, program_type="sched_cls") == 1, stderr
        assert value(parsed, "ebpf_programs_attached", interface="", program_type="raw_tracepoint") == 1, stderr
    assert series(least, "ebpf_programs_attached") == series(root, "ebpf_programs_attached")
    attached = series(least, "ebpf_exporter_ebpf_program_attached")
    ids = dict((dict(labels)["program"], dict(labels)["id"]) for labels in series(least, "ebpf_exporter_ebpf_program_info"))
    assert attached == {(("id", ids["syscall_enter_tp"]),): 1, (("id", ids["tc_classify_ingress"]),): 1}
    # with every link listed, root knows the others are not attached
    assert value(root, "ebpf_exporter_ebpf_program_attached", id=ids["tc_classify_egress"]) == 0
    assert not series(least, "ebpf_exporter_source_errors_total"), stderr
    # the group may list links/, never open a link in it
    links = os.path.join(deployment.pin_root, "tc_classifier", "links")
    assert os.stat(links).st_gid == exporter_group and os.stat(links).st_mode & 0o777 == 0o750
    assert all(os.stat(os.path.join(links, pin)).st_mode & 0o077 == 0 for pin in os.listdir(links))


def test_every_index_of_an_array_map_is_a_series_unless_zero_entries_are_skipped(pin_root):
    """An array holds every index: as ebpf_exporter, all of them are series (at zero when not
    written to); skip_zero_array_entries keeps only those written to."""
    config = parse_metrics_config({"metrics": {"counters": [
        {"name": "slots_total", "help": "h", "labels": [{"name": "slot", "size": 4, "decoders": [{"name": "uint"}]}]}]}})
    collector = MetricsCollector(config)
    for map_type in (sc.BPF_MAP_TYPE_ARRAY, sc.BPF_MAP_TYPE_PERCPU_ARRAY):
        os.makedirs(pin_root, exist_ok=True)
        path = os.path.join(pin_root, "slots_%d" % map_type)
        with sc.map_create(map_type, 4, 8, 64, name="slots_total") as fd:
            size = sc.percpu_value_size(8) if sc.is_percpu_map_type(map_type) else 8
            sc.map_update(fd, struct.pack("<I", 5), struct.pack("<Q", 3).ljust(size, b"\0"))
            sc.obj_pin(fd, path)
        snapshot = read_metric_map(collector, "slots_total", path)
        assert sorted(struct.unpack("<I", key)[0] for key, _value in snapshot.entries) == list(range(64))
        family = collector.collect_metric("slots_total", snapshot)
        assert family.series[("5",)] == 3 and family.series[("0",)] == 0 and len(family.series) == 64
        skipped = read_metric_map(collector, "slots_total", path, skip_zero_array_entries=True)
        assert [struct.unpack("<I", key)[0] for key, _value in skipped.entries] == [5]


def test_a_metric_with_more_series_than_the_limit_is_left_out_and_counted(pin_root, tmp_path, caplog):
    big = big_map(pin_root, 250)  # 250 label sets (a, b)
    config = parse_exporter_config({"pin_root": pin_root, "textfile": str(tmp_path / "m.prom"),
                                    "attach_events": str(tmp_path / "events.json"), "max_series_per_metric": 200,
                                    "programs": [big]})
    exporter = Exporter(config)
    for _pass in range(2):
        parsed = samples(exporter.render())
    assert not series(parsed, "ebpf_exporter_big_total")
    assert value(parsed, "ebpf_exporter_series_limit_exceeded_total", config="big", metric="big_total") == 2
    assert value(parsed, "ebpf_exporter_metric_series", config="big", metric="big_total") == 250
    assert "big/big_total: 250 series, more than max_series_per_metric (200)" in caplog.text
    assert value(parsed, "ebpf_exporter_last_success_timestamp_seconds") > 0  # the map was read
    unlimited = samples(Exporter(config._replace(max_series_per_metric=0)).render())
    assert len(series(unlimited, "ebpf_exporter_big_total")) == 250
    assert not series(unlimited, "ebpf_exporter_series_limit_exceeded_total")
    assert len(series(samples(Exporter(config._replace(max_series_per_metric=250)).render()), "ebpf_exporter_big_total")) == 250
