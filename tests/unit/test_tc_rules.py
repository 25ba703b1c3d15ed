"""tc_rules: class lists checked, compiled into tc_classifier's match tables, and the tables
evaluated the way the BPF program does against a plain first-match reading of the rules."""
import os
import random
import re
import struct

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.backends import tc_rules_encoding as tr
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

CLASSES = [
    {"name": "voice", "id": 1, "proto": "udp", "dport": "10000-20000", "dscp": "ef"},
    {"name": "web", "id": 2, "proto": "tcp", "dport": [80, 443]},
    {"name": "dns", "id": 3, "dport": 53},
    {"id": 0, "proto": 6, "dport": 22},
    {"name": "tcp", "id": 4, "proto": "TCP"},
    {"name": "marked", "id": 5, "dscp": 10},
    {"name": "web", "id": 2, "proto": "sctp", "dport": "8080"},
]


def test_parse_rules():
    rules = tr.parse_rules(CLASSES)
    assert rules[0] == tr.TcRule("voice", 1, 17, 10000, 20000, 46)
    assert rules[1] == tr.TcRule("web", 2, 6, 80, 443, None)
    assert rules[2] == tr.TcRule("dns", 3, None, 53, 53, None)
    assert rules[3] == tr.TcRule("default", 0, 6, 22, 22, None)
    assert rules[4] == tr.TcRule("tcp", 4, 6, None, None, None)
    assert rules[5] == tr.TcRule("marked", 5, None, None, None, 10)
    assert rules[6] == tr.TcRule("web", 2, 132, 8080, 8080, None)
    assert tr.parse_rules(None) == () and tr.parse_rules([]) == ()


def test_class_names():
    assert tr.class_names(CLASSES) == {0: "default", 1: "voice", 2: "web", 3: "dns", 4: "tcp", 5: "marked"}
    assert tr.class_names([]) == {0: "default"}


def test_dscp_names():
    assert tr.DSCP_NAMES["ef"] == 46 and tr.DSCP_NAMES["af41"] == 34 and tr.DSCP_NAMES["cs6"] == 48
    assert tr.parse_rules([{"name": "x", "id": 1, "dscp": "AF11"}])[0].dscp == 10


@pytest.mark.parametrize("classes, message", [
    ({"name": "x"}, r"tc classes must be a list of rules, got dict"),
    ([{"name": "c%d" % i, "id": 1} for i in range(65)], r"65 rules given, at most 64"),
    (["web"], r"tc classes\[0\]: expected a mapping, got str"),
    ([{"name": "x", "id": 1, "port": 80}], r"tc classes\[0\]: unknown key\(s\) port; expected name, id, proto, dport, dscp"),
    ([{"name": "x"}], r"tc classes\[0\]: id is required"),
    ([{"name": "x", "id": 256}], r"tc classes\[0\]: id must be a number from 0 to 255, got 256"),
    ([{"name": "x", "id": True}], r"id must be a number from 0 to 255, got True"),
    ([{"id": 1}], r"tc classes\[0\]: name is required"),
    ([{"name": " ", "id": 1}], r"name is required"),
    ([{"name": "x", "id": 0}], r"class id 0 is named 'x' here and 'default' elsewhere"),
    ([{"name": "x", "id": 1}, {"name": "y", "id": 1}], r"tc classes\[1\]: class id 1 is named 'y' here and 'x'"),
    ([{"name": "x", "id": 1, "proto": "tcpp"}], r"tc classes\[0\]: unknown protocol 'tcpp'"),
    ([{"name": "x", "id": 1, "proto": 0}], r"proto must be a number from 1 to 255"),
    ([{"name": "x", "id": 1, "proto": 300}], r"proto must be a number from 1 to 255"),
    ([{"name": "x", "id": 1, "dport": "90-80"}], r"dport: range 90-80 is empty"),
    ([{"name": "x", "id": 1, "dport": [1, 2, 3]}], r"dport: a list must hold 2 ports"),
    ([{"name": "x", "id": 1, "dport": 70000}], r"dport must be a number from 0 to 65535, got 70000"),
    ([{"name": "x", "id": 1, "dport": "http"}], r"dport must be a number from 0 to 65535, got 'http'"),
    ([{"name": "x", "id": 1, "proto": "icmp", "dport": 80}], r"protocol 1 has no ports, so a dport condition never matches"),
    ([{"name": "x", "id": 1, "dscp": 64}], r"dscp must be a number from 0 to 63"),
    ([{"name": "x", "id": 1, "dscp": "gold"}], r"unknown DSCP name 'gold'"),
])
def test_errors(classes, message):
    with pytest.raises(BpfError, match=message):
        tr.parse_rules(classes)


# -- the tables, evaluated like tc_classifier.bpf.c --------------------------------------------

def first_match(rules, packet):
    """The class of the first rule that matches, read straight from the rule list."""
    is_ip, proto, dscp, dport = packet
    for rule in rules:
        if rule.proto is not None and (not is_ip or rule.proto != proto):
            continue
        if rule.dscp is not None and (not is_ip or rule.dscp != dscp):
            continue
        if rule.dport_lo is not None and (dport is None or not rule.dport_lo <= dport <= rule.dport_hi):
            continue
        return rule.class_id
    return 0


def table_class(table, packet):
    """classify() of tc_classifier.bpf.c on one generation's table."""
    is_ip, proto, dscp, dport = packet
    match = table[tr.GEN_PROTO + (proto if is_ip else tr.PROTO_NOT_IP)]
    match &= table[tr.GEN_DSCP + (dscp if is_ip else tr.DSCP_NOT_IP)]
    match &= table[tr.GEN_PORT + (dport if dport is not None else tr.PORT_NONE)]
    if not match:
        return 0
    return table[tr.GEN_CLASS + ((match & -match).bit_length() - 1)] & tr.MAX_CLASS_ID


def packets(rules, rng, count):
    """Packets near every rule's values and edges, plus random ones and non-IP ones."""
    out = [(False, 0, 0, None), (True, 1, 0, None), (True, 6, 46, 22), (True, 17, 46, 0), (True, 17, 63, 65535)]
    for rule in rules:
        for port in (rule.dport_lo, rule.dport_hi):
            if port is not None:
                for p in (port - 1, port, port + 1):
                    if 0 <= p <= 65535:
                        out.append((True, rule.proto or 17, rule.dscp or 0, p))
    for _packet in range(count):
        proto = rng.choice([1, 6, 17, 58, 132, 136, rng.randrange(256)])
        dport = rng.randrange(65536) if proto in tr.PORT_PROTOCOLS and rng.random() < 0.9 else None
        out.append((True, proto, rng.choice([0, 10, 46, rng.randrange(64)]), dport))
    return out


def random_classes(rng, count):
    classes = []
    for index in range(count):
        rule = {"name": "c%d" % (index % 9), "id": index % 9}
        if index % 9 == 0:
            del rule["name"]
        if rng.random() < 0.5:
            rule["proto"] = rng.choice(["tcp", "udp", "sctp", "udplite", "icmp", 58])
        if rng.random() < 0.5 and rule.get("proto") not in ("icmp", 58):
            low = rng.randrange(65536)
            rule["dport"] = [low, min(65535, low + rng.choice([0, 1, 100, 40000]))]
        if rng.random() < 0.3:
            rule["dscp"] = rng.choice([0, 10, 46, 63])
        classes.append(rule)
    return classes


@pytest.mark.parametrize("seed", range(6))
def test_tables_agree_with_first_match(seed):
    rng = random.Random(seed)
    classes = CLASSES if seed == 0 else random_classes(rng, rng.choice([1, 16, 64]))
    rules = tr.parse_rules(classes)
    table = tr.compile_tables(rules)
    assert len(table) == tr.GEN_SIZE
    for packet in packets(rules, rng, 3000):
        assert table_class(table, packet) == first_match(rules, packet), packet


def test_no_rules_is_the_default_class():
    table = tr.compile_tables(())
    assert table == [0] * tr.GEN_SIZE
    assert table_class(table, (True, 6, 0, 80)) == 0


def test_update_plan_writes_the_other_generation_then_the_selector():
    items, selector = tr.update_plan(CLASSES, active=0)
    keys = [struct.unpack("=I", k)[0] for k, _v in items]
    assert keys == list(range(tr.generation_base(1), tr.generation_base(1) + tr.GEN_SIZE))
    assert keys[-1] == tr.MAP_ENTRIES - 1
    assert selector == (struct.pack("=I", 0), struct.pack("=Q", 1))
    values = [struct.unpack("=Q", v)[0] for _k, v in items]
    assert values == tr.compile_tables(tr.parse_rules(CLASSES))
    items, selector = tr.update_plan(CLASSES, active=1)
    assert struct.unpack("=I", items[0][0])[0] == tr.generation_base(0) == 1
    assert tr.active_generation(selector[1]) == 0
    assert tr.active_generation(struct.pack("=Q", 1)) == 1 and tr.active_generation(None) == 0


def test_layout_matches_the_bpf_program():
    """The constants tc_classifier.bpf.c defines are the ones the encoder uses."""
    source = os.path.join(os.path.dirname(__file__), "..", "..", "bpf", "tc_classifier.bpf.c")
    with open(source) as f:
        defines = dict(re.findall(r"^#define (\w+) (\d+)\b", f.read(), re.M))
    names = {"TC_MAX_RULES": tr.MAX_RULES, "TC_PROTO_NOT_IP": tr.PROTO_NOT_IP, "TC_DSCP_NOT_IP": tr.DSCP_NOT_IP,
             "TC_PORT_NONE": tr.PORT_NONE, "MAX_CLASS_ID": tr.MAX_CLASS_ID}
    assert dict((name, int(defines[name])) for name in names) == names
    assert (tr.GEN_DSCP, tr.GEN_PORT, tr.GEN_CLASS, tr.GEN_SIZE, tr.MAP_ENTRIES) == (257, 322, 65859, 65923, 131847)
