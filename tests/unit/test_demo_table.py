"""The demos' table (scripts/demo_table.py): differences, not totals; TC classes by name and any
other that counted; latency percentiles interpolated in the histogram's buckets."""
import math
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "scripts"))

import demo_table  # noqa: E402  pylint: disable=wrong-import-position


def bucket(syscall, le, value):
    return {"syscall": syscall, "le": le, "value": value}


def record(host, delta, after=None):
    return {"host": host, "kernel": "6.1.0", "interface": "eth0", "tc_api": "netlink", "xdp_mode": "drv",
            "attachments": 7, "reach": "", "probe": {"sent": {"ping": 100, "udp": 100, "calls": 0},
                                                     "after": after or delta, "delta": delta}}


def test_quantile_interpolates_inside_the_bucket_it_falls_in():
    buckets = [(1e-6, 50.0), (2e-6, 90.0), (4e-6, 100.0), (math.inf, 100.0)]
    assert demo_table.quantile(0.5, buckets) == 1e-6
    assert math.isclose(demo_table.quantile(0.7, buckets), 1.5e-6)
    assert math.isclose(demo_table.quantile(0.99, buckets), 3.8e-6)
    assert demo_table.quantile(0.5, [(1e-6, 0.0), (math.inf, 0.0)]) is None
    assert demo_table.quantile(0.99, [(1e-6, 1.0), (math.inf, 10.0)]) == 1e-6  # in +Inf: its lower bound


def test_rows_are_differences_per_class_with_percentiles_of_every_syscall():
    delta = {
        demo_table.TC: [{"class": "icmp", "direction": "ingress", "value": 100.0},
                        {"class": "icmp", "direction": "egress", "value": 100.0},
                        {"class": "dns", "direction": "egress", "value": 0.0},
                        {"class": "7", "direction": "ingress", "value": 0.0},  # unnamed, idle: left out
                        {"class": "8", "direction": "ingress", "value": 3.0},  # unnamed, counted: shown
                        {"class": "default", "direction": "ingress", "value": 2.0}],
        demo_table.XDP: [{"interface": "eth0", "ethertype": "ipv4", "value": 101.0},
                         {"interface": "lo", "ethertype": "ipv4", "value": 9.0}],
        demo_table.LATENCY: [bucket("read", "1e-06", 80.0), bucket("read", "+Inf", 100.0),
                             bucket("futex", "1e-06", 0.0), bucket("futex", "+Inf", 100.0)],
        demo_table.SYSCALLS: [{"syscall": "read", "value": 100.0}, {"syscall": "futex", "value": 100.0}],
    }
    after = dict(delta, ebpf_programs_loaded=[{"program_type": "xdp", "value": 1.0}, {"program_type": "sched_cls", "value": 2.0}])
    rows = dict(demo_table.rows([record("lab-61", delta, after)]))
    assert rows["XDP frames into eth0"] == ["101"]
    assert rows["TC class icmp in / out"] == ["100 / 100"]
    assert rows["TC class dns in / out"] == ["- / 0"]
    assert rows["TC class 8 in / out"] == ["3 / -"]
    assert "TC class 7 in / out" not in rows
    assert [name for name in rows if name and name.startswith("TC class")][-1] == "TC class default in / out"
    assert rows["programs loaded / attachments"] == ["3 / 7"]
    assert rows["syscalls (all processes)"] == ["200"]
    assert rows["syscall latency p50"] == ["1 us"]  # 80 of 200 calls at most 1 us, the rest in +Inf
    assert rows["net_rx / net_tx events"] == ["- / -"]
    lines = demo_table.render([record("lab-61", delta, after), record("lab-612", delta, after)])
    assert lines[0].split() == ["lab-61", "lab-612"]
    assert all("\x1b" not in line and '"' not in line for line in lines)
