"""xdp_counter's interface slots on the real kernel: the first interface whose ifindex % 64 is a
slot claims it and is counted in the array; another interface of the same slot is counted in
the hash; the exporter gives both the same labels, and every frame is counted once. Frames run
through BPF_PROG_TEST_RUN with the ingress interface set, in a namespace of the test's own whose
dummy interfaces have the colliding indexes."""
import struct
import uuid

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from test_bpf_programs import UDP, TCP, Deployment, frame, ipv4, ipv6, series, value  # noqa: F401 (fixtures below)
from test_bpf_programs import objects  # noqa: F401  pylint: disable=unused-import
from netns import ip, netns_entered

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
