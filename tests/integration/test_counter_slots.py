"""Counters in slots on the real kernel: the first interface whose ifindex % 64 is a slot claims
it and is counted in an array; another interface of the same slot is counted in the hash; the
exporter gives both the same labels, and every event is counted once.
- xdp_counter (one slot table for all CPUs): frames run through BPF_PROG_TEST_RUN with the
  ingress interface set, in a namespace of the test's own whose veths have colliding indexes.
- btf_net_tracepoints' net_tx (a slot table per CPU): datagrams sent over two veth pairs with
  colliding indexes, from one CPU."""
import json
import os
import struct
import subprocess
import uuid

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from test_bpf_programs import UDP, TCP, Deployment, frame, ipv4, ipv6, series, value  # noqa: F401 (fixtures below)
from test_bpf_programs import objects  # noqa: F401  pylint: disable=unused-import
from netns import ip, netns_entered, socket_in

XDP_PASS = 2
# Two interfaces of slot 3 (3 % 64 == 67 % 64) and one of slot 4, each a veth whose peer has an
# index no frame is run with.
INTERFACES = {"ebpft-s3": (3, 10), "ebpft-s67": (67, 11), "ebpft-s4": (4, 12)}


@pytest.fixture
def slots_netns():
    name = "ebpft-slots-%s" % uuid.uuid4().hex[:8]
    ip("netns", "add", name)
    try:
        for ifname, (index, peer) in INTERFACES.items():
            ip("-n", name, "link", "add", ifname, "index", str(index), "type", "veth", "peer", "name", ifname + "p",
               "index", str(peer))
        yield name
    finally:
        ip("netns", "delete", name)


def run(fd, data, ifindex, times):
    ctx = struct.pack("=6I", 0, len(data), 0, ifindex, 0, 0)  # struct xdp_md: the frame, its interface
    out = sc.prog_test_run(fd, data, repeat=times, ctx=ctx)
    assert out["retval"] == XDP_PASS


def test_colliding_interfaces_are_counted_exactly_with_the_same_labels(objects, pin_root, tmp_path,  # noqa: F811
                                                                      slots_netns):
    deploy = Deployment(objects, pin_root, str(tmp_path / "events"))
    deploy.load("xdp_counter")
    udp4, tcp6 = frame([], 0x0800, ipv4(17, UDP)), frame([], 0x86DD, ipv6(6, TCP))
    with sc.obj_get("%s/xdp_counter/progs/xdp_counter" % pin_root) as fd, netns_entered(slots_netns):
        run(fd, udp4, 3, 5)     # claims slot 3
        run(fd, udp4, 67, 7)    # slot 3 is held: the hash
        run(fd, tcp6, 67, 2)
        run(fd, udp4, 3, 11)
        run(fd, tcp6, 4, 13)    # claims slot 4
    with deploy.map_fd("xdp_counter", "xdp_slots") as slots:
        owners = dict((i, struct.unpack_from("=I", sc.map_lookup(slots, struct.pack("=I", i), 8), 4)[0])
                      for i in (3, 4, 5))
    assert owners == {3: 3, 4: 4, 5: 0}
    with deploy.map_fd("xdp_counter", "xdp_traffic") as hashed:
        keys = [struct.unpack("=IHH", key) for key, _value in
                sc.map_lookup_batch(hashed, 8, sc.percpu_value_size(16), 4096)]
    assert sorted(keys) == [(67, 0x0800, 17), (67, 0x86DD, 6)]  # only the interface without a slot

    samples = deploy.metrics("xdp_counter", netns=slots_netns)
    assert series(samples, "xdp_packets_total") == {
        (("ethertype", "ipv4"), ("interface", "ebpft-s3"), ("l4proto", "udp")): 16,
        (("ethertype", "ipv4"), ("interface", "ebpft-s67"), ("l4proto", "udp")): 7,
        (("ethertype", "ipv6"), ("interface", "ebpft-s67"), ("l4proto", "tcp")): 2,
        (("ethertype", "ipv6"), ("interface", "ebpft-s4"), ("l4proto", "tcp")): 13,
    }
    assert value(samples, "xdp_bytes_total", interface="ebpft-s3", ethertype="ipv4", l4proto="udp") == 16 * len(udp4)
    assert value(samples, "xdp_bytes_total", interface="ebpft-s67", ethertype="ipv6", l4proto="tcp") == 2 * len(tcp6)


# Two veth pairs whose ends in namespace 1 share slot 3: (name, index, peer index, address, peer address)
PAIRS = [("ebpft-n3", 3, 10, "198.51.100.1", "198.51.100.2"), ("ebpft-n67", 67, 11, "198.51.100.5", "198.51.100.6")]


@pytest.fixture
def colliding_pairs():
    tag = "ebpft-nslots-%s" % uuid.uuid4().hex[:8]
    spaces = [tag + "-1", tag + "-2"]
    try:
        for ns in spaces:
            ip("netns", "add", ns)
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                            "net.ipv6.conf.default.disable_ipv6=1"], check=True, capture_output=True)
        for name, index, peer_index, addr, peer_addr in PAIRS:
            ip("-n", spaces[0], "link", "add", name, "index", str(index), "type", "veth", "peer", "name", name + "p",
               "index", str(peer_index), "netns", spaces[1])
            ip("-n", spaces[0], "addr", "add", addr + "/30", "dev", name)
            ip("-n", spaces[1], "addr", "add", peer_addr + "/30", "dev", name + "p")
            ip("-n", spaces[0], "link", "set", name, "up")
            ip("-n", spaces[1], "link", "set", name + "p", "up")
            peer_mac = ip("-n", spaces[1], "-br", "link", "show", name + "p").split()[2]
            ip("-n", spaces[0], "neigh", "add", peer_addr, "lladdr", peer_mac, "dev", name, "nud", "permanent")
        yield spaces
    finally:
        for ns in spaces:
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)


def _tx_packets(ns, ifname):
    """The kernel's count of packets the device sent (its statistics, through netlink)."""
    return json.loads(ip("-n", ns, "-s", "-j", "link", "show", "dev", ifname))[0]["stats64"]["tx"]["packets"]


def test_net_tx_counts_colliding_devices_exactly_by_name(objects, pin_root, tmp_path, colliding_pairs):  # noqa: F811
    """Each device's count moves exactly as the kernel's own transmit statistics do."""
    deploy = Deployment(objects, pin_root, str(tmp_path / "events"))
    deploy.load("btf_net_tracepoints")
    sent = {"ebpft-n3": 7, "ebpft-n67": 11}
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})  # one CPU: one slot table, the first device claims slot 3
    try:
        deploy.attach("btf_net_tracepoints", "net_tx")
        before = dict((n, _tx_packets(colliding_pairs[0], n)) for n in sent)
        with socket_in(colliding_pairs[0]) as udp:
            for (name, _index, _peer, _addr, peer_addr) in PAIRS:
                for _i in range(sent[name]):
                    udp.sendto(b"slots", (peer_addr, 9))
        deploy.attach("btf_net_tracepoints", "net_tx", state="absent")
        kernel = dict((n, _tx_packets(colliding_pairs[0], n) - before[n]) for n in sent)
    finally:
        os.sched_setaffinity(0, affinity)
    samples = deploy.metrics("btf_net_tracepoints", "net_tracepoints")
    assert dict((n, value(samples, "net_tx_packets_total", interface=n)) for n in sent) == kernel
    assert all(kernel[n] >= sent[n] for n in sent), kernel
    with deploy.map_fd("btf_net_tracepoints", "net_tx_packets_total") as hashed:
        names = [key.rstrip(b"\0").decode() for key, _v in sc.map_lookup_batch(hashed, 16, sc.percpu_value_size(8), 1024)]
    assert "ebpft-n67" in names and "ebpft-n3" not in names  # the second device of slot 3 is in the hash
