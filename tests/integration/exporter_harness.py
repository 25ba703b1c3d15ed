"""What the exporter tests share: the command rendered from the ebpf_runtime role's template
(one file holding the module_utils) into a world-readable directory, a deployment of it under a
private pin root, the collection's programs built for them, traffic and one-pass runs."""
import glob
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import jinja2
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.ebpf.observability.plugins.module_utils.state import attach_events
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend
from bpf_objects import BUILD_ROOT, REPO
from netns import netns_entered

PREFIX = "ebpft-ex"
COMMAND_TEMPLATE = os.path.join(REPO, "roles", "ebpf_runtime", "templates", "ebpf-observability-command.j2")
BPF_OUT = os.path.join(BUILD_ROOT, "exporter-bpf")
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
        role_path=os.path.join(REPO, "roles", "ebpf_exporter"))
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


def run_with_cap_bpf_only(deployment, group):
    """One pass printed by the command run as nobody in ``group`` with CAP_BPF alone: (samples, stderr)."""
    nobody = ["setpriv", "--reuid=65534", "--regid=%d" % group, "--clear-groups", "--inh-caps=-all,+bpf",
              "--ambient-caps=+bpf", "--bounding-set=-all,+bpf", "--no-new-privs"]
    out = deployment.run("--once", "--stdout", python=SYSTEM_PYTHON, prefix=nobody)
    assert out.returncode == 0, out.stderr
    return samples(out.stdout), out.stderr
