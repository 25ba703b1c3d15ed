"""The exporter against the running kernel: the collection's programs loaded and attached, real
traffic in private network namespaces, the installed host command run as root and as a
non-root user with only CAP_BPF, a real node_exporter scraping the textfile, and writers killed
mid-write.

The command is rendered from the ebpf_exporter role's template (one file holding the module_utils)
into a world-readable temporary directory.
"""
import glob
import grp
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import jinja2
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.ebpf.observability.plugins.module_utils.state import attach_events
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.textfile import Exporter, read_metric_map
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.cli import load_config
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.config import parse_exporter_config
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.metrics_config import parse_metrics_config
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.collector import MetricsCollector
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach import AttachBackend
from bpf_objects import REPO
from netns import netns_entered, veth_netns_pair

PREFIX = "ebpft-ex"
COMMAND_TEMPLATE = os.path.join(REPO, "roles", "ebpf_runtime", "templates", "ebpf-observability-command.j2")
MODULE_UTILS = os.path.join(REPO, "plugins", "module_utils")
with open(os.path.join(REPO, "roles", "ebpf_runtime", "vars", "main.yml")) as _f:
    RUNTIME_VARS = yaml.safe_load(_f)
BPF_OUT = os.path.join(REPO, "build", "exporter-bpf")
SYSTEM_PYTHON = "/usr/bin/python3"
UDP_PACKETS = 37
UDP_PAYLOAD = 100
SYSCALLS = 53
KILLS = 3


# ------------------------------------------------------------------------------ helpers

def render_command(path, python=SYSTEM_PYTHON):
    """The command as the ebpf_exporter role installs it through ebpf_runtime (the template
    rendered with Jinja2 and stand-ins for the two Ansible lookups it uses) at ``path``."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.dirname(COMMAND_TEMPLATE)),
                             trim_blocks=True, keep_trailing_newline=True)  # as Ansible's template module
    env.filters["to_json"] = json.dumps
    env.filters["basename"] = os.path.basename
    env.globals["query"] = lambda _plugin, pattern: glob.glob(pattern)
    env.globals["lookup"] = lambda _plugin, name, rstrip=True: open(name).read()
    text = env.get_template(os.path.basename(COMMAND_TEMPLATE)).render(
        ebpf_runtime_command_python=python, ebpf_runtime_command_path=path, ebpf_runtime_command_summary="",
        ebpf_runtime_command_module="exporter.cli", ebpf_runtime_command_function="main",
        _ebpf_runtime_package="ansible_collections.ebpf.observability.plugins.module_utils",
        _ebpf_runtime_module_utils_dir=MODULE_UTILS, _ebpf_runtime_rooms=RUNTIME_VARS["_ebpf_runtime_rooms"])
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)
    return path


def write_config(path, **config):
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    os.chmod(path, 0o644)
    return path


def samples(text):
    """{(sample name, sorted label items): value} of a Prometheus text."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(parsed, name, **labels):
    return parsed.get((name, tuple(sorted(labels.items()))))


def series(parsed, name):
    return dict((labels, v) for (n, labels), v in parsed.items() if n == name)


class Deployment:
    """Programs under a private pin root, a work directory readable by everyone, the command."""

    def __init__(self, pin_root, work):
        self.pin_root = pin_root
        self.work = work
        self.launcher = render_command(os.path.join(work, "ebpf-observability-exporter"))
        self.textfile_dir = os.path.join(work, "textfile")
        os.makedirs(self.textfile_dir)
        self.textfile = os.path.join(self.textfile_dir, "ebpf_observability.prom")
        self.events_dir = os.path.join(work, "events")
        self.config = os.path.join(work, "exporter.yml")

    def configure(self, programs, **extra):
        config = dict(pin_root=self.pin_root, textfile=self.textfile, programs=programs,
                      attach_events=attach_events.events_path(self.events_dir))
        config.update(extra)
        return write_config(self.config, **config)

    def command(self, *args, python=sys.executable, netns=None, prefix=()):
        cmd = list(prefix) + [python, self.launcher, "--config", self.config] + list(args)
        if netns:
            cmd = ["nsenter", "--net=/run/netns/" + netns] + cmd
        return cmd

    def run(self, *args, **kwargs):
        return subprocess.run(self.command(*args, **kwargs), capture_output=True, text=True, check=False, timeout=60)


def build_programs():
    """{name: object path} of the collection's BPF programs, built from bpf/ into a directory of
    the exporter tests' own."""
    subprocess.run(["make", "-s", "-C", os.path.join(REPO, "bpf"), "O=" + BPF_OUT], check=True)
    return dict((name[:-len(".bpf.o")], os.path.join(BPF_OUT, name))
                for name in os.listdir(BPF_OUT) if name.endswith(".bpf.o"))


@pytest.fixture(scope="module")
def built():
    return build_programs()


@pytest.fixture
def work():
    path = tempfile.mkdtemp(prefix=PREFIX + "-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def deployment(pin_root, work):
    return Deployment(pin_root, work)


@pytest.fixture
def veth():
    with veth_netns_pair(PREFIX, addresses=True) as pair:
        yield pair


def load(deployment, built, name):
    ProgramBackend(name, deployment.pin_root).present(built[name])
    return os.path.join(deployment.pin_root, name)


def attach_xdp_counter(deployment, built, veth):
    """xdp_counter loaded and attached (skb mode) to the veth end in namespace A."""
    pin_dir = load(deployment, built, "xdp_counter")
    with sc.obj_get(os.path.join(pin_dir, "progs", "xdp_counter")) as prog, Netlink() as nl:
        nl.xdp_set(nl.ifindex(veth.ifname), prog.fd, "skb")
    return pin_dir


def send_udp(veth, count, payload=UDP_PAYLOAD):
    """``count`` UDP datagrams from namespace B to A's address (nothing listens: they end there)."""
    with netns_entered(veth.peer_ns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        for _packet in range(count):
            sock.sendto(b"x" * payload, (veth.addr, 9))


def run_once(deployment, veth, want=None, attempts=20):
    """The command run once inside namespace A (interface names resolve there); with ``want``,
    run again until that (name, labels, value) shows (the last packets may still be in flight)."""
    parsed = {}
    for _attempt in range(attempts):
        out = deployment.run("--once", netns=veth.ns)
        assert out.returncode == 0, out.stderr
        with open(deployment.textfile) as f:
            text = f.read()
        parsed = samples(text)
        if want is None or value(parsed, want[0], **want[1]) == want[2]:
            return text, parsed, out.stderr
        time.sleep(0.05)
    return text, parsed, out.stderr


XDP_LABELS = dict(interface=PREFIX + "0", ethertype="ipv4", l4proto="udp")


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
        {"name": "xdp_bytes_total", "help": "wrong key layout", "labels": [{"name": "a", "size": 4, "decoders": uint}]},
        {"name": "no_such_map", "help": "nothing pinned", "labels": [{"name": "a", "size": 4, "decoders": uint}]},
    ]}}
    undecodable = {"metrics": {"counters": [{
        "name": "xdp_packets_total", "help": "a 3-byte uint does not decode",
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


def big_map(pin_root, entries):
    """An object ``big`` holding only a 2-label per-CPU hash ``big_total`` of ``entries`` entries."""
    maps_dir = os.path.join(pin_root, "big", "maps")
    bpffs.makedirs(maps_dir)
    cpus = sc.possible_cpus()
    pack_key, pack_value = struct.Struct("<II").pack, struct.Struct("<%dQ" % cpus).pack
    with sc.map_create(sc.BPF_MAP_TYPE_PERCPU_HASH, 8, 8, entries, name="big_total") as fd:
        items = [(pack_key(i // 100, i % 100), pack_value(*([1] * cpus))) for i in range(entries)]
        for start in range(0, entries, 10000):
            sc.map_update_batch(fd, items[start:start + 10000])
        sc.obj_pin(fd, os.path.join(maps_dir, "big_total"))
    uint = [{"name": "uint"}]
    return {"name": "big", "metrics": {"metrics": {"counters": [{
        "name": "big_total", "help": "two labels", "labels": [{"name": "a", "size": 4, "decoders": uint},
                                                              {"name": "b", "size": 4, "decoders": uint}]}]}}}


def stop_process(proc):
    """SIGSTOP and wait until the kernel reports the process stopped."""
    proc.send_signal(signal.SIGSTOP)
    while True:
        with open("/proc/%d/stat" % proc.pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                return
        time.sleep(0.0002)


def temporaries(directory):
    return [name for name in os.listdir(directory) if name.startswith(".")]


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


@pytest.fixture
def exporter_group():
    name = "%s-%d" % (PREFIX, os.getpid())
    subprocess.run(["groupadd", "--system", name], check=True, capture_output=True)
    yield grp.getgrnam(name).gr_gid
    subprocess.run(["groupdel", name], check=False, capture_output=True)


def run_with_cap_bpf_only(deployment, group):
    """One pass printed by the command run as nobody in ``group`` with CAP_BPF alone: (samples, stderr)."""
    nobody = ["setpriv", "--reuid=65534", "--regid=%d" % group, "--clear-groups", "--inh-caps=-all,+bpf",
              "--ambient-caps=+bpf", "--bounding-set=-all,+bpf", "--no-new-privs"]
    out = deployment.run("--once", "--stdout", python=SYSTEM_PYTHON, prefix=nobody)
    assert out.returncode == 0, out.stderr
    return samples(out.stdout), out.stderr


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
