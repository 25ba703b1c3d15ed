"""tc_classifier's two objects classify every kind of packet alike: tc_classifier reads the headers
with bpf_skb_load_bytes_relative(), tc_classifier_direct (Linux 6.3+) reads them directly from
the linear data where the kernel's sk_buff says the network header starts. Frames go through
BPF_PROG_TEST_RUN, which hands them to the program as received, the Ethernet header pulled; the
class each one lands in is read back through the exporter's metrics code. Real traffic through
both objects: test_bpf_programs.py."""
import os
import struct

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.backends import tc_rules_encoding as tc_rules
from ansible_collections.ebpf.observability.plugins.module_utils.backends.tc_rules import TcRulesBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend
from test_bpf_programs import ARP, TCP, UDP, Deployment, frame, ipv4, ipv6, series
from bpf_objects import build_product_objects

RULES = [
    {"name": "dns", "id": 1, "proto": "udp", "dport": 53},
    {"name": "web", "id": 2, "proto": "tcp", "dport": [80, 443]},
    {"name": "voice", "id": 3, "dscp": "ef"},
    {"name": "icmp6", "id": 4, "proto": "icmpv6"},
    {"name": "udp", "id": 5, "proto": "udp"},  # UDP without a known port: later fragments, other ports
]
TCP_443 = TCP[:2] + struct.pack("!H", 443) + TCP[4:]


def ipv4_with(proto, payload, tos=0, frag_off=0, options=b""):
    ihl = 5 + len(options) // 4
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, ihl * 4 + len(payload), 1, frag_off, 64, proto, 0,
                       bytes([198, 51, 100, 1]), bytes([198, 51, 100, 2])) + options + payload


def fragment_header(nexthdr, offset):
    return struct.pack("!BBHI", nexthdr, 0, offset << 3, 7)


CASES = [
    ("ipv4 udp 53", frame([], 0x0800, ipv4(17, UDP)), "dns"),
    ("ipv4 tcp 443", frame([], 0x0800, ipv4_with(6, TCP_443)), "web"),
    ("ipv4 with options, tcp 80", frame([], 0x0800, ipv4_with(6, TCP, options=b"\x01\x01\x01\x00")), "web"),
    ("ipv4 later fragment of udp", frame([], 0x0800, ipv4_with(17, b"\0" * 16, frag_off=185)), "udp"),
    ("ipv4 dscp ef, udp 9999", frame([], 0x0800, ipv4_with(17, struct.pack("!HHHH", 1000, 9999, 8, 0), tos=46 << 2)),
     "voice"),
    ("ipv6 udp 53", frame([], 0x86DD, ipv6(17, UDP)), "dns"),
    ("ipv6 hop-by-hop, tcp 443", frame([], 0x86DD, ipv6(0, struct.pack("!BB6x", 6, 0) + TCP_443)), "web"),
    ("ipv6 first fragment of udp 53", frame([], 0x86DD, ipv6(44, fragment_header(17, 0) + UDP)), "dns"),
    ("ipv6 later fragment of udp", frame([], 0x86DD, ipv6(44, fragment_header(17, 100) + b"\0" * 16)), "udp"),
    ("ipv6 icmpv6", frame([], 0x86DD, ipv6(58, b"\x80\0\0\0\0\0\0\0")), "icmp6"),
    ("ipv4 ethertype, not an ipv4 header", frame([], 0x0800, b"\x65" + ipv4(17, UDP)[1:]), "default"),
    ("802.1Q tagged ipv4 udp 53 (not IP to TC)", frame([(0x8100, 10)], 0x0800, ipv4(17, UDP)), "default"),
    ("arp", frame([], 0x0806, ARP), "default"),
]
OBJECTS = ["tc_classifier", "tc_classifier_direct"]


def class_names(config):
    for counter in config["metrics"]["counters"]:
        counter["labels"][0]["decoders"][1]["static_map"] = tc_rules.class_names(RULES)


def classes_of(deploy, obj):
    """[class of each case], as the exporter shows tc_classifier's counters."""
    backend = TcRulesBackend("tc_classifier", deploy.pin_root)
    try:
        backend.apply_classes(RULES)
    finally:
        backend.close()
    got, before = [], {}
    with sc.obj_get(os.path.join(deploy.pin_root, "tc_classifier", "progs", "tc_classify_ingress")) as prog:
        for _what, data, _want in CASES:
            assert sc.prog_test_run(prog, data)["retval"] == -1  # TC_ACT_UNSPEC: observes only
            now = series(deploy.metrics("tc_classifier", config_hook=class_names), "tc_class_packets_total")
            grew = [dict(labels)["class"] for labels, v in now.items() if v != before.get(labels, 0)]
            got.append(grew[0] if len(grew) == 1 else grew)
            before = now
    return got


@pytest.fixture(scope="module")
def objects():
    return build_product_objects()


@pytest.mark.parametrize("obj", OBJECTS)
def test_each_packet_lands_in_its_class(objects, pin_root, tmp_path, obj):
    if obj == "tc_classifier_direct" and not features.has_kern_ctx():
        pytest.skip("TC programs cannot call bpf_cast_to_kern_ctx on this kernel (Linux 6.3+)")
    deploy = Deployment(dict(objects, tc_classifier=objects[obj]), pin_root, str(tmp_path / "events"))
    assert ProgramBackend("tc_classifier", pin_root).present(objects[obj])["changed"]
    assert list(zip([c[0] for c in CASES], classes_of(deploy, obj))) == [(c[0], c[2]) for c in CASES]
