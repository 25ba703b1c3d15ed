"""The exporter against the running kernel: the collection's programs loaded and attached, real
traffic in private network namespaces, the installed host command (exporter_harness), a real
node_exporter scraping the textfile, and writers killed mid-write. As a non-root user:
test_exporter_privileges.py."""
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest
import yaml

from ansible_collections.ebpf.observability.plugins.module_utils.state import attach_events
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.textfile import Exporter
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.cli import load_config
from bpf_objects import REPO
from netns import veth_netns_pair
from exporter_harness import (
    Deployment, KILLS, PREFIX, SYSCALLS, UDP_PACKETS, UDP_PAYLOAD, XDP_LABELS, attach_xdp_counter, big_map, load,
    run_once, samples, send_udp, series, stop_process, temporaries, value,
)


@pytest.fixture
def deployment(pin_root, work):
    return Deployment(pin_root, work)


@pytest.fixture
def veth():
    with veth_netns_pair(PREFIX, addresses=True) as pair:
        yield pair


# ------------------------------------------------------------------------------ tests


def test_real_traffic_and_syscalls_are_exported_with_self_metrics(deployment, built, veth):
    attach_xdp_counter(deployment, built, veth)
    latency_dir = load(deployment, built, "syscall_latency")
    links = []
    for prog, tp in (("syscall_enter_tp", "sys_enter"), ("syscall_exit_tp", "sys_exit")):
        with sc.obj_get(os.path.join(latency_dir, "progs", prog)) as fd:
            links.append(sc.raw_tracepoint_open(tp, fd))
    try:
        for _call in range(SYSCALLS):
            os.sched_get_priority_max(os.SCHED_OTHER)
        send_udp(veth, UDP_PACKETS)
        for _failure in range(2):
            attach_events.record(deployment.events_dir, veth.ifname, "foreign_program", "xdp", "held by another program")
        deployment.configure([
            {"name": "xdp_counter", "metrics_file": os.path.join(REPO, "bpf", "xdp_counter.yaml")},
            {"name": "syscall_latency", "metrics_file": os.path.join(REPO, "bpf", "syscall_latency.yaml")},
        ])
        text, parsed, stderr = run_once(deployment, veth, ("ebpf_exporter_xdp_packets_total", XDP_LABELS, UDP_PACKETS))
    finally:
        for link in links:
            link.close()

    assert value(parsed, "ebpf_exporter_xdp_packets_total", **XDP_LABELS) == UDP_PACKETS, text
    frame = 14 + 20 + 8 + UDP_PAYLOAD
    assert value(parsed, "ebpf_exporter_xdp_bytes_total", **XDP_LABELS) == UDP_PACKETS * frame
    # Static neighbours and no IPv6: the datagrams are all the veth carried.
    assert set(series(parsed, "ebpf_exporter_xdp_packets_total")) == {tuple(sorted(XDP_LABELS.items()))}

    call = dict(syscall="sched_get_priority_max")
    buckets = sorted(((float(dict(labels)["le"]), v) for labels, v in series(parsed, "ebpf_exporter_syscall_latency_seconds_bucket").items()
                      if dict(labels)["syscall"] == call["syscall"]))
    assert len(buckets) == 34 - 8 + 1 + 1  # exp2 buckets 8..34 and +Inf
    counts = [v for _le, v in buckets]
    assert counts == sorted(counts), "buckets are cumulative"
    assert buckets[-1] == (float("inf"), SYSCALLS)
    assert value(parsed, "ebpf_exporter_syscall_latency_seconds_count", **call) == SYSCALLS
    assert value(parsed, "ebpf_exporter_syscalls_total", **call) == SYSCALLS
    assert 0 < value(parsed, "ebpf_exporter_syscall_latency_seconds_sum", **call) < 1

    assert value(parsed, "ebpf_programs_loaded", program_type="xdp") == 1
    assert value(parsed, "ebpf_programs_loaded", program_type="raw_tracepoint") == 2
    assert value(parsed, "ebpf_programs_attached", interface=veth.ifname, program_type="xdp") == 1
    assert value(parsed, "ebpf_programs_attached", interface="", program_type="raw_tracepoint") == 2
    assert value(parsed, "ebpf_attachment_errors_total", interface=veth.ifname, error_type="foreign_program") == 2
    # ebpf_exporter's self metrics, joined on id as its dashboards do
    assert series(parsed, "ebpf_exporter_enabled_configs") == {(("name", "xdp_counter"),): 1, (("name", "syscall_latency"),): 1}
    info = dict((dict(labels)["program"], dict(labels)) for labels in series(parsed, "ebpf_exporter_ebpf_program_info"))
    assert sorted(info) == ["syscall_enter_tp", "syscall_exit_tp", "xdp_counter"]
    for program, config in (("xdp_counter", "xdp_counter"), ("syscall_enter_tp", "syscall_latency")):
        with sc.obj_get(os.path.join(deployment.pin_root, config, "progs", program)) as fd:
            facts = sc.prog_info(fd)
        assert info[program] == {"config": config, "id": str(facts["id"]), "program": program, "tag": facts["tag"]}
        assert value(parsed, "ebpf_exporter_ebpf_program_attached", id=str(facts["id"])) == 1
        # read before these facts; kernel.bpf_stats_enabled is the host's, another test may set it
        assert value(parsed, "ebpf_exporter_ebpf_program_run_count_total", id=str(facts["id"])) <= facts["run_cnt"]
        assert value(parsed, "ebpf_program_misses_total", object=config, program=program,
                     program_type=facts["type_name"]) <= facts["recursion_misses"]
    assert time.time() - 30 < value(parsed, "ebpf_exporter_last_success_timestamp_seconds") <= time.time()
    assert not series(parsed, "ebpf_exporter_map_errors_total") and not series(parsed, "ebpf_exporter_source_errors_total")
    assert "WARNING" not in stderr
    assert os.stat(deployment.textfile).st_mode & 0o777 == 0o644


def test_a_broken_map_costs_only_itself(deployment, built, veth):
    attach_xdp_counter(deployment, built, veth)
    send_udp(veth, UDP_PACKETS)
    with open(os.path.join(REPO, "bpf", "xdp_counter.yaml")) as f:
        good = yaml.safe_load(f)["metrics"]["counters"][0]
    uint = [{"name": "uint"}]
    metrics = {"metrics": {"counters": [
        good,
        # the map's key is 8 bytes: labels of 4 do not fit it
        {"name": "xdp_bytes_total", "help": "wrong key layout", "map": "xdp_traffic", "value": {"offset": 8},
         "labels": [{"name": "a", "size": 4, "decoders": uint}]},
        {"name": "no_such_map", "help": "nothing pinned", "labels": [{"name": "a", "size": 4, "decoders": uint}]},
    ]}}
    undecodable = {"metrics": {"counters": [{
        "name": "xdp_packets_total", "help": "a 3-byte uint does not decode", "map": "xdp_traffic",
        "slots": good["slots"],
        "labels": [{"name": "a", "size": 3, "padding": 1, "decoders": uint},
                   {"name": "b", "size": 4, "decoders": [{"name": "hex"}]}]}]}}
    # The same maps a second time through another name: a second object with the same pins.
    os.symlink(os.path.join(deployment.pin_root, "xdp_counter"), os.path.join(deployment.pin_root, "second"))
    deployment.configure([{"name": "xdp_counter", "metrics": metrics}, {"name": "second", "metrics": undecodable},
                          {"name": "not_loaded", "metrics": metrics}])
    text, parsed, stderr = run_once(deployment, veth, ("ebpf_exporter_xdp_packets_total", XDP_LABELS, UDP_PACKETS))
    os.unlink(os.path.join(deployment.pin_root, "second"))

    assert value(parsed, "ebpf_exporter_xdp_packets_total", **XDP_LABELS) == UDP_PACKETS, text
    errors = series(parsed, "ebpf_exporter_map_errors_total")
    assert errors == {
        (("map", "xdp_bytes_total"), ("program", "xdp_counter")): 1,
        (("map", "no_such_map"), ("program", "xdp_counter")): 1,
        (("map", "xdp_packets_total"), ("program", "not_loaded")): 1,
        (("map", "xdp_bytes_total"), ("program", "not_loaded")): 1,
        (("map", "no_such_map"), ("program", "not_loaded")): 1,
    }, text
    decoder_errors = series(parsed, "ebpf_exporter_decoder_errors_total")
    assert decoder_errors[(("config", "second"), ("decoder", "uint"), ("metric", "xdp_packets_total"))] == 1
    # ebpf_exporter's series: {config} at 0 from the start (empty labels are absent to Prometheus)
    assert set(labels for labels, v in decoder_errors.items() if v == 0) == set(
        (("config", name), ("decoder", ""), ("metric", "")) for name in ("xdp_counter", "second", "not_loaded"))
    assert value(parsed, "ebpf_exporter_last_success_timestamp_seconds") == 0
    assert "xdp_counter/xdp_bytes_total: metric 'xdp_bytes_total': the map key is 8 bytes" in stderr
    assert "xdp_counter/no_such_map: no map is pinned at" in stderr
    assert "program not_loaded is not loaded" in stderr


def test_a_damaged_attach_event_file_is_reported_kept_and_repaired(deployment, built, veth, caplog):
    """A damaged event file: the long-running exporter logs it, counts it and keeps the counts it
    last read; --once logs it and exits 1; ebpf_attach's next failure rewrites the file, keeping
    the entries that can still be read."""
    from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach import AttachBackend
    from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import AttachError
    load(deployment, built, "xdp_counter")
    for _failure in range(3):
        attach_events.record(deployment.events_dir, PREFIX + "7", "foreign_program", "xdp", "held by another program")
    attach_events.record(deployment.events_dir, PREFIX + "8", "interface_missing", "tc", "gone")
    deployment.configure([{"name": "xdp_counter", "metrics_file": os.path.join(REPO, "bpf", "xdp_counter.yaml")}])
    exporter = Exporter(load_config(deployment.config))
    good = {(("error_type", "foreign_program"), ("interface", PREFIX + "7")): 3,
            (("error_type", "interface_missing"), ("interface", PREFIX + "8")): 1}
    assert series(samples(exporter.render()), "ebpf_attachment_errors_total") == good

    path = attach_events.events_path(deployment.events_dir)
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text[:text.index("}") + 1] + ', {"interface": "ebpft-ex')  # cut short after the first entry
    with caplog.at_level("WARNING", logger="ebpf_observability.exporter"):
        for passes in (1, 2):
            parsed = samples(exporter.render())
            assert series(parsed, "ebpf_attachment_errors_total") == good
            assert value(parsed, "ebpf_exporter_source_errors_total", source="attach_events") == passes
    logged = [r.getMessage() for r in caplog.records if "attachment event file" in r.getMessage()]
    assert len(logged) == 1, logged  # once, not at every pass
    assert logged[0].startswith("the attachment event file %s is not valid JSON" % path)
    assert "keeping the counts of the last good read" in logged[0]

    out = deployment.run("--once", netns=veth.ns)
    assert out.returncode == 1, out.stderr
    assert "is not valid JSON" in out.stderr and "no counts read yet" in out.stderr
    with open(deployment.textfile) as f:
        once = samples(f.read())
    assert series(once, "ebpf_attachment_errors_total") == {}
    assert value(once, "ebpf_exporter_source_errors_total", source="attach_events") == 1
    assert value(once, "ebpf_programs_loaded", program_type="xdp") == 1

    params = dict(name="xdp_counter", program="xdp_counter", pin_root=deployment.pin_root, interface=PREFIX + "9",
                  events_dir=deployment.events_dir)
    with pytest.raises(AttachError) as info:
        AttachBackend(params).run()
    assert "is not valid JSON" in str(info.value)
    assert "it was rewritten keeping the 1 entries that could be read" in str(info.value)
    repaired = {(PREFIX + "7", "foreign_program"): 3, (PREFIX + "9", "interface_missing"): 1}
    assert attach_events.counts(path) == repaired
    with caplog.at_level("INFO", logger="ebpf_observability.exporter"):
        assert series(samples(exporter.render()), "ebpf_attachment_errors_total") == dict(
            ((("error_type", t), ("interface", i)), n) for (i, t), n in repaired.items())
    assert "recovered: the attachment event file" in caplog.text


def test_program_run_statistics_follow_the_sysctl(deployment, built, tmp_path):
    pin_dir = load(deployment, built, "xdp_counter")
    sysctl = tmp_path / "bpf_stats_enabled"
    config = load_config(deployment.configure([{"name": "xdp_counter"}]))
    packet = b"\xff" * 12 + b"\x08\x00" + b"\x45" + b"\0" * 49
    with sc.enable_stats(), sc.obj_get(os.path.join(pin_dir, "progs", "xdp_counter")) as prog:
        sc.prog_test_run(prog, packet, repeat=250)
        sysctl.write_text("1\n")
        on = samples(Exporter(config, bpf_stats_path=str(sysctl)).render())
        sysctl.write_text("0\n")
        off = samples(Exporter(config, bpf_stats_path=str(sysctl)).render())
    labels = dict(object="xdp_counter", program="xdp_counter", program_type="xdp")
    assert value(on, "ebpf_program_run_count_total", **labels) == 250
    assert 0 < value(on, "ebpf_program_run_time_seconds_total", **labels) < 1
    assert value(on, "ebpf_exporter_bpf_stats_enabled") == 1
    assert value(off, "ebpf_exporter_bpf_stats_enabled") == 0
    assert not series(off, "ebpf_program_run_count_total")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def node_exporter(deployment):
    """prometheus-node-exporter on 127.0.0.1 reading the deployment's textfile directory."""
    binary = shutil.which("prometheus-node-exporter")
    if binary is None:
        pytest.fail("prometheus-node-exporter is not installed (scripts/setup.sh installs it)")
    port = _free_port()
    proc = subprocess.Popen([binary, "--web.listen-address=127.0.0.1:%d" % port, "--collector.disable-defaults",
                             "--collector.textfile", "--collector.textfile.directory=" + deployment.textfile_dir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = "http://127.0.0.1:%d/metrics" % port
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("node_exporter did not come up: %s" % proc.stderr.read().decode())
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_node_exporter_serves_the_textfile(deployment, built, node_exporter):
    with veth_netns_pair(PREFIX, addresses=True) as veth:  # this thread is in namespace A meanwhile
        attach_xdp_counter(deployment, built, veth)
        send_udp(veth, UDP_PACKETS)
        deployment.configure([{"name": "xdp_counter", "metrics_file": os.path.join(REPO, "bpf", "xdp_counter.yaml")}])
        run_once(deployment, veth, ("ebpf_exporter_xdp_packets_total", XDP_LABELS, UDP_PACKETS))
        ifname = veth.ifname
    scraped = samples(urllib.request.urlopen(node_exporter, timeout=5).read().decode())
    assert value(scraped, "node_textfile_scrape_error") == 0
    assert value(scraped, "ebpf_exporter_xdp_packets_total", **XDP_LABELS) == UDP_PACKETS
    assert value(scraped, "ebpf_programs_attached", interface=ifname, program_type="xdp") == 1
    assert value(scraped, "node_textfile_mtime_seconds", file=deployment.textfile) > 0


def test_killed_writers_never_leave_a_partial_file(deployment):
    """Writers are frozen (SIGSTOP) at random instants until one is caught in the middle of a
    write (its temporary file exists), and killed there; a reader checks the file meanwhile."""
    deployment.configure([big_map(deployment.pin_root, 20000)], interval=0.001)
    out = deployment.run("--once")
    assert out.returncode == 0, out.stderr
    with open(deployment.textfile) as f:
        lines = f.read().count("\n")
    stop = threading.Event()
    reads, bad = [0], []

    def reader():
        while not stop.is_set():
            with open(deployment.textfile) as f:
                text = f.read()
            reads[0] += 1
            if text.count("\n") != lines or not text.endswith("\n"):
                bad.append(len(text))

    thread = threading.Thread(target=reader)
    thread.start()
    rng = random.Random(5)
    freezes = 0
    try:
        for _kill in range(KILLS):
            proc = subprocess.Popen(deployment.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 20
            while True:
                assert time.monotonic() < deadline, "no freeze caught a write in 20 s"
                time.sleep(rng.uniform(0.0, 0.003))
                stop_process(proc)
                freezes += 1
                if temporaries(deployment.textfile_dir):
                    break  # frozen between creating the temporary file and renaming it
                proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert temporaries(deployment.textfile_dir)
            with open(deployment.textfile) as f:
                assert f.read().count("\n") == lines
    finally:
        stop.set()
        thread.join()
    assert not bad, "a reader saw partial files of sizes %s" % bad[:5]
    assert reads[0] > 50
    # A new start clears what killed writers left; SIGTERM ends the loop cleanly.
    proc = subprocess.Popen(deployment.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0, proc.stderr.read()
    assert os.listdir(deployment.textfile_dir) == ["ebpf_observability.prom"]
    with open(deployment.textfile) as f:
        assert f.read().count("\n") == lines
    print("%d writers killed mid-write after %d freezes; %d complete reads" % (KILLS, freezes, reads[0]))


def test_a_map_two_metrics_read_is_read_once_per_pass(deployment, built, veth, monkeypatch):
    """xdp_packets_total and xdp_bytes_total read the same three maps (the hash, the slot array,
    the slot table): one batch read of each per pass, not one per metric."""
    attach_xdp_counter(deployment, built, veth)
    send_udp(veth, UDP_PACKETS)
    deployment.configure([{"name": "xdp_counter", "metrics_file": os.path.join(REPO, "bpf", "xdp_counter.yaml")}])
    exporter = Exporter(load_config(deployment.config))
    reads = []
    batch = sc.map_lookup_batch_raw
    monkeypatch.setattr(sc, "map_lookup_batch_raw", lambda fd, *args: reads.append(sc.map_info(fd)["name"]) or
                        batch(fd, *args))
    parsed = samples(exporter.render())
    assert sorted(reads) == ["xdp_slot_traffi", "xdp_slots", "xdp_traffic"]  # kernel names: 15 characters
    assert value(parsed, "ebpf_exporter_xdp_packets_total", **XDP_LABELS) == UDP_PACKETS
    assert value(parsed, "ebpf_exporter_xdp_bytes_total", **XDP_LABELS) > 0
