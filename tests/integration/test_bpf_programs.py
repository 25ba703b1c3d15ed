"""The collection's BPF programs (bpf/) on the running kernel: each loads through ebpf_program's
backend and attaches through ebpf_attach's, and counts exactly what a test sends between two
private network namespaces (ebpft-bp-*), read back through the exporter's metrics code: the
program's YAML parsed with parse_metrics_config, its maps rendered by MetricsCollector, the text
parsed with prometheus_client."""
import contextlib
import ctypes
import os
import platform
import socket
import struct
import time

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_insn
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.backends import tc_rules_encoding as tc_rules
from ansible_collections.ebpf.observability.plugins.module_utils.backends.tc_rules import TcRulesBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach import AttachBackend
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.textfile import read_metric_map
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.metrics_config import parse_metrics_config
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.decoders import Decoders
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.collector import MetricsCollector
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.text_format import render_text
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.syscall_names import syscall_names
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.value_fields import map_name
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend
from bpf_objects import REPO, build_product_objects
from netns import netns_entered, socket_in, veth_netns_pair

BPF_DIR = os.path.join(REPO, "bpf")
PREFIX = "ebpft-bp"
N = 40
UDP_PAYLOAD = b"ebpft-bp!!"  # 10 bytes: 52-byte frames (Ethernet 14 + IPv4 20 + UDP 8)
UDP_FRAME = 14 + 20 + 8 + len(UDP_PAYLOAD)
TC_ACT_SHOT = 2
NUMBERS = dict((name, number) for number, name in syscall_names(platform.machine()).items())
_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.syscall.restype = ctypes.c_long

# object -> [(program, attach options)]; network programs attach to the veth end in namespace B
PROGRAMS = {
    "xdp_counter": [("xdp_counter", {})],
    "tc_classifier": [("tc_classify_ingress", {"direction": "ingress"}), ("tc_classify_egress", {"direction": "egress"})],
    "syscall_latency": [("syscall_enter_tp", {}), ("syscall_exit_tp", {})],
    "syscall_latency_hash": [("syscall_enter_tp", {}), ("syscall_exit_tp", {})],  # before Linux 5.11
    "net_tracepoints": [("skb_kfree", {}), ("tcp_retransmit", {}), ("tcp_set_state", {}), ("net_rx", {}), ("net_tx", {})],
}
PROGRAMS["raw_net_tracepoints"] = PROGRAMS["net_tracepoints"]  # before Linux 5.15
PROGRAMS["btf_net_tracepoints"] = PROGRAMS["net_tracepoints"]  # BTF-typed tracepoints
NETWORK = ("xdp_counter", "tc_classifier")


@pytest.fixture(scope="module")
def objects():
    return build_product_objects()


@pytest.fixture
def veth():
    """Namespaces A (this thread, ebpft-bp0, 192.0.2.1) and B (ebpft-bp1, 192.0.2.2), nothing
    else on the wire."""
    with veth_netns_pair(PREFIX, addresses=True) as pair:
        yield pair


class Deployment:
    """Objects loaded under one pin root, and the attachments made to them."""

    def __init__(self, objects, pin_root, events_dir, veth=None):
        self.objects = objects
        self.pin_root = pin_root
        self.events_dir = events_dir
        self.veth = veth

    def load(self, name):
        return ProgramBackend(name, self.pin_root).present(self.objects[name])

    def attach(self, name, program, state="present", ifname=None, **options):
        params = dict(name=name, program=program, pin_root=self.pin_root, events_dir=self.events_dir, state=state,
                      **options)
        if name not in NETWORK:
            return AttachBackend(params).run()
        params["interface"] = ifname or self.veth.peer_ifname
        with netns_entered(self.veth.peer_ns if params["interface"] == self.veth.peer_ifname else self.veth.ns):
            return AttachBackend(params).run()

    def attach_all(self, name, state="present"):
        return [self.attach(name, program, state=state, **options) for program, options in PROGRAMS[name]]

    def map_fd(self, name, map_name):
        return sc.obj_get(os.path.join(self.pin_root, name, "maps", map_name))

    def metrics(self, name, yaml_name=None, config_hook=None, netns=None):
        """{(sample name, ((label, value), ...)): value} of the object's non-zero samples, as the
        exporter renders them (array maps hold every slot: their zero entries are left out)."""
        with open(os.path.join(BPF_DIR, (yaml_name or name) + ".yaml")) as f:
            config = yaml.safe_load(f)
        if config_hook:
            config_hook(config)
        collector = MetricsCollector(parse_metrics_config(config, name), Decoders())
        families = []
        with netns_entered(netns) if netns else contextlib.nullcontext():
            for metric in collector.plans:
                path = os.path.join(self.pin_root, name, "maps", map_name(collector.plans[metric].metric))
                snapshot = read_metric_map(collector, metric, path)
                family = collector.collect_metric(metric, snapshot)
                if family is not None and family.series:
                    families.append(family)
            text = render_text(families)
        return dict(((s.name, tuple(sorted(s.labels.items()))), s.value)
                    for family in text_string_to_metric_families(text) for s in family.samples if s.value)


def value(samples, name, **labels):
    return samples.get(("ebpf_exporter_" + name, tuple(sorted(labels.items()))), 0)


def series(samples, name):
    """{labels tuple: value} of one sample name."""
    return dict((labels, v) for (n, labels), v in samples.items() if n == "ebpf_exporter_" + name)


def wait_for(condition, timeout=3.0):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.01)


@pytest.fixture
def deploy(objects, pin_root, tmp_path):
    return Deployment(objects, pin_root, str(tmp_path / "events"))


@pytest.fixture
def net(objects, pin_root, tmp_path, veth):
    return Deployment(objects, pin_root, str(tmp_path / "events"), veth)


# ------------------------------------------------------------------------------ load + attach

@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_loads_and_attaches(net, name):
    loaded = net.load(name)
    ids = dict((p["name"], p["id"]) for p in loaded["programs"])
    assert loaded["changed"] and sorted(ids) == sorted(p for p, _o in PROGRAMS[name])
    for (program, _options), res in zip(PROGRAMS[name], net.attach_all(name)):
        assert res["changed"] and res["attachment"]["prog_id"] == ids[program], res
    for res in net.attach_all(name, state="absent"):
        assert res["changed"] and res["attachment"] == {}


def test_kprobe_variant_loads_and_says_plainly_when_kprobes_are_missing(deploy):
    loaded = deploy.load("kprobe_syscall_latency")
    assert sorted(p["name"] for p in loaded["programs"]) == ["syscall_enter_kp", "syscall_exit_kp"]
    for program in ("syscall_enter_kp", "syscall_exit_kp"):
        if features.has_kprobes():  # kernels with CONFIG_KPROBES (the VM tests' 6.1 and 6.12)
            assert deploy.attach("kprobe_syscall_latency", program)["changed"]
        else:
            with pytest.raises(BpfError, match="kprobes are not available on this kernel"):
                deploy.attach("kprobe_syscall_latency", program)


# ------------------------------------------------------------------------------ xdp + tc counts

CLASSES = [
    {"name": "dns", "id": 1, "proto": "udp", "dport": 5353},
    {"name": "web", "id": 2, "proto": "tcp", "dport": "8080-8081"},
    {"name": "marked", "id": 3, "dscp": "ef"},
]


def write_rules(deployment, classes):
    """Install a class list the way the ebpf_tc_rules module does; a second install changes nothing."""
    backend = TcRulesBackend("tc_classifier", deployment.pin_root)
    try:
        assert backend.apply_classes(classes)["changed"]
        assert not backend.apply_classes(classes)["changed"]
    finally:
        backend.close()


def class_names(config):
    """What a deployment renders into tc_classifier.yaml: its class names."""
    for counter in config["metrics"]["counters"]:
        counter["labels"][0]["decoders"][1]["static_map"] = tc_rules.class_names(CLASSES)


def send_traffic(veth, n):
    """From A to B: n UDP datagrams to 5353 (dns), n to 9999 (no class), n TCP SYNs to 8080
    (web; refused by a RST, no retry) and n UDP datagrams marked DSCP EF to 9999 (marked)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as marked:
        marked.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 46 << 2)
        for _i in range(n):
            udp.sendto(UDP_PAYLOAD, (veth.peer_addr, 5353))
            udp.sendto(UDP_PAYLOAD, (veth.peer_addr, 9999))
            marked.sendto(UDP_PAYLOAD, (veth.peer_addr, 9999))
    for _i in range(n):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            with pytest.raises(ConnectionRefusedError):
                tcp.connect((veth.peer_addr, 8080))


@pytest.mark.parametrize("tc_object", ["tc_classifier", "tc_classifier_direct"])
def test_xdp_and_tc_count_exactly_what_was_sent(net, tc_object):
    if tc_object == "tc_classifier_direct" and not features.has_kern_ctx():
        pytest.skip("TC programs cannot call bpf_cast_to_kern_ctx on this kernel (Linux 6.3+)")
    net.objects = dict(net.objects, tc_classifier=net.objects[tc_object])  # the variant, under its catalogue name
    veth = net.veth
    for name in NETWORK:
        net.load(name)
    write_rules(net, CLASSES)
    net.attach("xdp_counter", "xdp_counter")
    net.attach("tc_classifier", "tc_classify_ingress", direction="ingress")  # B's end
    net.attach("tc_classifier", "tc_classify_egress", direction="egress", ifname=veth.ifname)  # A's end
    send_traffic(veth, N)

    def xdp():
        return series(net.metrics("xdp_counter", netns=veth.peer_ns), "xdp_packets_total")
    want_xdp = {(("ethertype", "ipv4"), ("interface", veth.peer_ifname), ("l4proto", "udp")): 3 * N,
                (("ethertype", "ipv4"), ("interface", veth.peer_ifname), ("l4proto", "tcp")): N}
    assert wait_for(lambda: xdp() == want_xdp), xdp()
    samples = net.metrics("xdp_counter", netns=veth.peer_ns)
    assert value(samples, "xdp_bytes_total", interface=veth.peer_ifname, ethertype="ipv4", l4proto="udp") == 3 * N * UDP_FRAME

    def tc():
        return series(net.metrics("tc_classifier", config_hook=class_names), "tc_class_packets_total")
    want = dict(((("class", cls), ("direction", direction)), N)
                for cls in ("dns", "web", "marked", "default") for direction in ("ingress", "egress"))
    assert wait_for(lambda: tc() == want), tc()  # nothing in any other class
    samples = net.metrics("tc_classifier", config_hook=class_names)
    for direction in ("ingress", "egress"):
        assert value(samples, "tc_class_bytes_total", **{"class": "dns", "direction": direction}) == N * UDP_FRAME
    time.sleep(0.05)
    assert xdp() == want_xdp and tc() == want  # and nothing arrives later


def test_new_rules_apply_at_once(net):
    """Rules are data: a rewrite takes effect without a reload, in one step (the selector)."""
    veth = net.veth
    net.load("tc_classifier")
    net.attach("tc_classifier", "tc_classify_egress", direction="egress", ifname=veth.ifname)
    write_rules(net, CLASSES)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(UDP_PAYLOAD, (veth.peer_addr, 5353))
        write_rules(net, [{"name": "all", "id": 9}])
        udp.sendto(UDP_PAYLOAD, (veth.peer_addr, 5353))
        write_rules(net, [])
        udp.sendto(UDP_PAYLOAD, (veth.peer_addr, 5353))
    got = series(net.metrics("tc_classifier"), "tc_class_packets_total")
    assert got == {(("class", "1"), ("direction", "egress")): 1, (("class", "9"), ("direction", "egress")): 1,
                   (("class", "default"), ("direction", "egress")): 1}


# ------------------------------------------------------------------------------ tagged frames

def frame(tags, ethertype, l3):
    """An Ethernet frame with 802.1Q/802.1ad tags [(tpid, vid)] before ``ethertype``."""
    out = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"
    for tpid, vid in tags:
        out += struct.pack("!HH", tpid, vid)
    return out + struct.pack("!H", ethertype) + l3


def ipv4(proto, payload):
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                       socket.inet_aton("198.51.100.1"), socket.inet_aton("198.51.100.2")) + payload


def ipv6(nexthdr, payload):
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nexthdr, 64, b"\xfd" + b"\0" * 15, b"\xfd" + b"\0" * 14 + b"\1") + payload


UDP = struct.pack("!HHHH", 1000, 53, 12, 0) + b"abcd"
TCP = struct.pack("!HHIIBBHHH", 1000, 80, 1, 0, 5 << 4, 2, 1024, 0, 0)
ARP = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, b"\2" * 6, b"\x0a\0\0\1", b"\0" * 6, b"\x0a\0\0\2")
TAGGED = [
    ("802.1Q ipv4 udp", frame([(0x8100, 10)], 0x0800, ipv4(17, UDP)), ("ipv4", "udp")),
    ("802.1ad+802.1Q ipv4 tcp", frame([(0x88A8, 100), (0x8100, 10)], 0x0800, ipv4(6, TCP)), ("ipv4", "tcp")),
    ("802.1ad+802.1Q ipv6 udp", frame([(0x88A8, 100), (0x8100, 10)], 0x86DD, ipv6(17, UDP)), ("ipv6", "udp")),
    ("802.1Q ipv6 hop-by-hop icmpv6", frame([(0x8100, 10)], 0x86DD, ipv6(0, struct.pack("!BB6x", 58, 0) + b"\x80\0\0\0")),
     ("ipv6", "icmpv6")),
    ("802.1Q arp", frame([(0x8100, 10)], 0x0806, ARP), ("arp", "none")),
    ("3 tags: too deep, other", frame([(0x88A8, 1), (0x8100, 2), (0x8100, 3)], 0x0800, ipv4(17, UDP)), ("other", "none")),
    ("802.1Q truncated ipv4", frame([(0x8100, 10)], 0x0800, ipv4(17, UDP)[:12]), ("ipv4", "none")),
    ("ipv4 gre: another IP protocol", frame([], 0x0800, ipv4(47, b"\0" * 8)), ("ipv4", "other")),
    ("ipv6, 5 extension headers: protocol 0 is another", frame([], 0x86DD, ipv6(0, struct.pack("!BB6x", 0, 0) * 5)),
     ("ipv6", "other")),
    ("ipv4 icmp", frame([], 0x0800, ipv4(1, b"\x08\0\0\0\0\0\0\0")), ("ipv4", "icmp")),
    ("ethertype 0x88cc (LLDP): other", frame([], 0x88CC, b"\0" * 46), ("other", "none")),
]


def test_xdp_counts_tagged_frames_through_test_run(deploy):
    """This host has no 8021q module: tagged frames are run through BPF_PROG_TEST_RUN, which
    hands them to the program as received on the loopback device."""
    deploy.load("xdp_counter")
    repeat = 7
    with sc.obj_get(os.path.join(deploy.pin_root, "xdp_counter", "progs", "xdp_counter")) as prog:
        for index, (_what, data, _labels) in enumerate(TAGGED):
            for _run in range(index + 1):  # a distinct count per frame kind
                assert sc.prog_test_run(prog, data, repeat=repeat)["retval"] == 2  # XDP_PASS
    got = series(deploy.metrics("xdp_counter"), "xdp_packets_total")
    want = {}
    for index, (_what, _data, (ethertype, l4proto)) in enumerate(TAGGED):
        key = (("ethertype", ethertype), ("interface", "lo"), ("l4proto", l4proto))
        want[key] = want.get(key, 0) + (index + 1) * repeat
    assert got == want


# ------------------------------------------------------------------------------ syscalls

@pytest.mark.parametrize("obj", ["syscall_latency", "syscall_latency_hash"])
def test_syscall_latency_counts_getpid_and_errors(deploy, obj):
    deploy.load(obj)
    deploy.attach_all(obj)
    calls = 3000
    for _call in range(calls):
        _LIBC.syscall(NUMBERS["getpid"])
    for _call in range(N):
        assert _LIBC.syscall(NUMBERS["close"], -1) == -1
    deploy.attach_all(obj, state="absent")
    time.sleep(0.05)  # a syscall exit already in the program when its link went
    samples = deploy.metrics(obj, "syscall_latency")
    count = value(samples, "syscalls_total", syscall="getpid")
    assert count >= calls
    assert value(samples, "syscall_latency_seconds_count", syscall="getpid") == count
    assert value(samples, "syscall_latency_seconds_bucket", syscall="getpid", le="+Inf") == count
    assert 0 < value(samples, "syscall_latency_seconds_sum", syscall="getpid") < count * 0.01
    assert value(samples, "syscall_errors_total", syscall="close", errno="EBADF") >= N
    assert value(samples, "syscall_errors_total", syscall="getpid", errno="EBADF") == 0
    assert samples == deploy.metrics(obj, "syscall_latency")  # detached: nothing moves


# ------------------------------------------------------------------------------ net tracepoints

NET_OBJECTS = ["net_tracepoints", "raw_net_tracepoints", "btf_net_tracepoints"]


@pytest.mark.parametrize("obj", NET_OBJECTS)
def test_udp_to_a_closed_port_is_a_no_socket_drop(net, obj):
    veth = net.veth
    net.load(obj)
    for program in ("skb_kfree", "net_rx", "net_tx"):
        net.attach(obj, program)
    before = net.metrics(obj, "net_tracepoints")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for _i in range(N):
            udp.sendto(UDP_PAYLOAD, (veth.peer_addr, 9999))

    def moved(name, **labels):
        return value(net.metrics(obj, "net_tracepoints"), name, **labels) - value(before, name, **labels)
    assert wait_for(lambda: moved("skb_drops_total", reason="NO_SOCKET") >= N), net.metrics(obj, "net_tracepoints")
    assert moved("net_tx_packets_total", interface=veth.ifname) >= N
    assert moved("net_rx_packets_total", interface=veth.peer_ifname) >= N


@pytest.mark.parametrize("obj", NET_OBJECTS)
def test_forced_tcp_retransmit_is_counted(net, obj):
    """B's ACKs are dropped on B's egress by a two-instruction TC program: A retransmits."""
    veth = net.veth
    net.load(obj)
    for program in ("tcp_retransmit", "tcp_set_state"):
        net.attach(obj, program)
    before = net.metrics(obj, "net_tracepoints")
    server = socket_in(veth.peer_ns, socket.SOCK_STREAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    drop = sc.prog_load(sc.BPF_PROG_TYPE_SCHED_CLS, bpf_insn.mov64_imm(0, TC_ACT_SHOT) + bpf_insn.exit_insn(), "GPL", "ebpft_bp_drop")
    try:
        server.bind((veth.peer_addr, 8080))
        server.listen(1)
        client.connect((veth.peer_addr, 8080))
        conn, _addr = server.accept()
        with netns_entered(veth.peer_ns), Netlink() as nl:
            index = nl.ifindex(veth.peer_ifname)
            nl.ensure_clsact(index, "egress")
            nl.tc_attach(index, "egress", drop, 1, 1, "ebpft_bp_drop")
        client.send(b"lost ack")

        def moved(name, **labels):
            return value(net.metrics(obj, "net_tracepoints"), name, **labels) - value(before, name, **labels)
        assert wait_for(lambda: moved("tcp_retransmits_total", family="ipv4", state="established") >= 1)
        assert moved("tcp_state_transitions_total", old_state="syn_sent", new_state="established") >= 1
        conn.close()
    finally:
        client.close()
        server.close()
        drop.close()
