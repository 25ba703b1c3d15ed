"""The ebpf_programs role's filters: the declared list expanded per host against the role's own
catalog (roles/ebpf_programs/vars/main.yml), variants picked from feature facts, input errors,
stale attachments, rollback lists and the status summary."""
import os

import pytest
import yaml

from ansible_collections.ebpf.observability.plugins.filter import ebpf_programs as f
from ansible_collections.ebpf.observability.plugins.module_utils.backends import host_plan

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
with open(os.path.join(REPO, "roles", "ebpf_programs", "vars", "main.yml")) as _f:
    CATALOG = yaml.safe_load(_f)["_ebpf_programs_builtin"]

ALL = {"btf": True, "xdp": True, "tc": True, "tcx": True, "tracepoints": True, "raw_tracepoints": True,
       "perf_link": True, "kprobes": True, "task_storage": True}
NO_KPROBES = dict(ALL, kprobes=False)
DIR = "/usr/local/lib/ebpf_observability"


def plan(declared, features=None, arch="x86_64"):
    return f.ebpf_programs_plan(declared, CATALOG, NO_KPROBES if features is None else features, arch, DIR)


DECLARED = [
    {"name": "xdp_counter", "attach": [{"hook": "xdp", "interface": "eth0", "mode": "auto"}]},
    {"name": "syscall_latency"},
    {"name": "tc_classifier", "rules": [{"name": "web", "id": 1, "proto": "tcp", "dport": [80, 443]}],
     "attach": [{"hook": "tc", "interface": "eth0", "direction": "ingress"},
                {"hook": "tc", "interface": "eth0", "direction": "egress", "tc_api": "netlink"}]},
    {"name": "net_tracepoints", "programs": ["net_rx", "net_tx"]},
]


def test_plan_expands_the_declared_list():
    p = plan(DECLARED)
    assert p["errors"] == [] and p["warnings"] == []
    assert p["objects"] == ["xdp_counter", "syscall_latency", "tc_classifier", "net_tracepoints"]
    assert p["loads"][0] == {"name": "xdp_counter", "object": "xdp_counter", "variant": "xdp", "file": "xdp_counter.bpf.o",
                             "src": DIR + "/xdp_counter.bpf.o", "programs": None, "replace_maps": False}
    assert p["loads"][3]["programs"] == ["net_rx", "net_tx"]
    assert p["attachments"] == [
        {"name": "xdp_counter", "hook": "xdp", "interface": "eth0", "program": "xdp_counter", "mode": "auto"},
        {"name": "syscall_latency", "hook": "auto", "program": "syscall_enter_tp"},
        {"name": "syscall_latency", "hook": "auto", "program": "syscall_exit_tp"},
        {"name": "tc_classifier", "hook": "tc", "interface": "eth0", "direction": "ingress", "program": "tc_classify_ingress"},
        {"name": "tc_classifier", "hook": "tc", "interface": "eth0", "direction": "egress", "program": "tc_classify_egress",
         "tc_api": "netlink"},
        {"name": "net_tracepoints", "hook": "auto", "program": "net_rx"},
        {"name": "net_tracepoints", "hook": "auto", "program": "net_tx"},
    ]
    assert p["tc_rules"] == [{"name": "tc_classifier", "classes": DECLARED[2]["rules"]}]
    assert p["interfaces"] == ["eth0"] and p["device_units"] == ["sys-subsystem-net-devices-eth0.device"]
    assert p["files"] == ["net_tracepoints.bpf.o", "syscall_latency.bpf.o", "tc_classifier.bpf.o", "xdp_counter.bpf.o"]
    # the exporter names tc_classifier's classes (its class label), the default class included
    assert p["exporter_programs"] == [{"name": n} for n in p["objects"][:2]] + [
        {"name": "tc_classifier", "static_maps": {"class": {"0": "default", "1": "web"}}}] + [
        {"name": n} for n in p["objects"][3:]]
    restore = f.ebpf_programs_restore_plan(p, "/sys/fs/bpf/x", "/var/lib/x")
    assert sorted(restore) == ["attachments", "events_dir", "format", "loads", "pin_root", "tc_rules"]


def test_tc_classifier_without_rules_installs_an_empty_class_list():
    p = plan([{"name": "tc_classifier", "attach": [{"hook": "tc", "interface": "eth1"}]}])
    assert p["tc_rules"] == [{"name": "tc_classifier", "classes": []}]
    assert p["attachments"][0]["program"] == "tc_classify_ingress"
    assert p["exporter_programs"] == [{"name": "tc_classifier", "static_maps": {"class": {"0": "default"}}}]


@pytest.mark.parametrize("features, arch, variant, warned", [
    (ALL, "x86_64", "kprobe", False),
    (NO_KPROBES, "x86_64", "raw_tracepoint", True),
    (ALL, "aarch64", "raw_tracepoint", True),
])
def test_kprobe_variant_only_where_it_works(features, arch, variant, warned):
    p = plan([{"name": "syscall_latency", "variant": "kprobe"}], features, arch)
    assert p["errors"] == []
    assert p["loads"][0]["variant"] == variant
    assert p["loads"][0]["src"].endswith(("kprobe_syscall_latency.bpf.o" if variant == "kprobe" else "/syscall_latency.bpf.o"))
    assert [a["program"] for a in p["attachments"]] == (
        ["syscall_enter_kp", "syscall_exit_kp"] if variant == "kprobe" else ["syscall_enter_tp", "syscall_exit_tp"])
    assert bool(p["warnings"]) == warned
    if warned:
        assert "using variant raw_tracepoint" in p["warnings"][0]


def test_auto_never_picks_kprobes():
    assert plan([{"name": "syscall_latency"}], ALL)["loads"][0]["variant"] == "raw_tracepoint"


def test_a_program_no_variant_of_which_runs_is_an_error():
    p = plan([{"name": "net_tracepoints"}], dict(ALL, perf_link=False, raw_tracepoints=False))
    assert p["loads"] == [] and p["errors"][0] == ("net_tracepoints cannot run on this host: tp_btf needs the kernel feature "
                                                   "'tp_btf'; tracepoint needs the kernel feature 'perf_link'; raw_tracepoint "
                                                   "needs the kernel feature 'raw_tracepoints'")


def test_tracing_programs_can_be_loaded_unattached():
    p = plan([{"name": "net_tracepoints", "attach": []}])
    assert p["attachments"] == [] and p["loads"][0]["name"] == "net_tracepoints"


@pytest.mark.parametrize("declared, message", [
    ([{"name": "nope"}], "unknown program nope; the catalogue has net_tracepoints, syscall_latency, tc_classifier, xdp_counter"),
    ([{"name": "xdp_counter"}, {"name": "xdp_counter"}], "xdp_counter is declared twice"),
    ([{"name": "xdp_counter", "colour": 1}], "unknown key(s) colour"),
    ([{"attach": []}], "needs a name"),
    ("xdp_counter", "must be a list"),
    ([{"name": "xdp_counter", "attach": [{"hook": "xdp"}]}], "the xdp hook needs an interface"),
    ([{"name": "xdp_counter", "attach": [{"hook": "tc", "interface": "eth0"}]}], "hook tc does not fit this program; use xdp"),
    ([{"name": "xdp_counter", "attach": [{"interface": "eth0", "mode": "fast"}]}], "mode must be one of auto, hw, drv, skb"),
    ([{"name": "xdp_counter", "attach": [{"interface": "eth0", "multiprog": "yes"}]}], "multiprog one of auto, always, never"),
    ([{"name": "xdp_counter", "attach": [{"interface": "eth0", "chain_call_actions": ["bounce"]}]}],
     "chain_call_actions of aborted, drop, pass, tx, redirect"),
    ([{"name": "xdp_counter", "attach": [{"interface": "eth0", "direction": "egress"}]}], "unknown key(s) direction for the xdp hook"),
    ([{"name": "tc_classifier", "attach": [{"interface": "eth0", "direction": "up"}]}], "direction must be ingress or egress"),
    ([{"name": "tc_classifier", "programs": ["tc_classify_egress"], "attach": [{"interface": "eth0"}]}],
     "program tc_classify_ingress is not loaded"),
    ([{"name": "net_tracepoints", "programs": ["net_rx", "nope"]}], "unknown program(s) nope"),
    ([{"name": "syscall_latency", "variant": "ebpf"}], "unknown variant 'ebpf'"),
    ([{"name": "syscall_latency", "rules": []}], "takes no rules"),
    ([{"name": "tc_classifier", "rules": [{"name": "x", "id": 300}]}], "tc_classifier: tc classes[0]: id must be a number"),
    ([{"name": "tc_classifier", "attach": [{"interface": "eth0"}, {"interface": "eth0", "direction": "ingress"}]}],
     "both attach to tc eth0 ingress"),
    ([{"name": "net_tracepoints", "attach": [{"program": "net_rx", "interface": "eth0"}]}], "unknown key(s) interface"),
])
def test_input_errors_say_what_to_change(declared, message):
    p = plan(declared)
    assert any(message in e for e in p["errors"]), p["errors"]


@pytest.mark.parametrize("name, escaped", [
    ("eth0", "eth0"), ("veth-a", "veth\\x2da"), ("br0.100", "br0.100"), (".hidden", "\\x2ehidden"), ("wg@x", "wg\\x40x"),
])
def test_systemd_escape(name, escaped):
    assert host_plan.systemd_escape(name) == escaped


INFO = {
    "objects": [
        {"name": "xdp_counter", "programs": [{"name": "xdp_counter"}]},
        {"name": "tc_classifier", "programs": [{"name": "tc_classify_ingress"}, {"name": "tc_classify_egress"}]},
        {"name": "net_tracepoints", "programs": [{"name": "net_rx"}, {"name": "net_tx"}]},
        {"name": "old_thing", "programs": [{"name": "p"}]},
    ],
    "attachments": [
        {"kind": "xdp", "object": "xdp_counter", "program": "xdp_counter", "interface": "eth0", "mode": "drv"},
        {"kind": "xdp", "object": "xdp_counter", "program": "xdp_counter", "interface": "eth1", "mode": "skb", "link_id": 4},
        {"kind": "link", "link_type": "xdp", "object": "xdp_counter", "program": "xdp_counter", "interface": "eth1"},
        {"kind": "link", "link_type": "tcx", "attach_type_name": "tcx_egress", "object": "tc_classifier",
         "program": "tc_classify_egress", "interface": "eth0"},
        {"kind": "tc", "direction": "ingress", "object": "tc_classifier", "program": "tc_classify_ingress", "interface": "eth0"},
        {"kind": "link", "link_type": "perf_event", "object": "net_tracepoints", "program": "net_rx"},
        {"kind": "link", "link_type": "perf_event", "object": "net_tracepoints", "program": "net_tx"},
        {"kind": "link", "link_type": "raw_tracepoint", "object": "old_thing", "program": "p"},
        {"kind": "tc", "direction": "ingress", "object": "tc_classifier", "program": "tc_classify_ingress", "interface": None},
    ],
}


def test_stale_attachments_of_declared_objects():
    p = plan([
        {"name": "xdp_counter", "attach": [{"interface": "eth0"}]},
        {"name": "tc_classifier", "attach": [{"interface": "eth0", "direction": "ingress"}]},
        {"name": "net_tracepoints", "programs": ["net_rx"]},
    ])
    assert f.ebpf_programs_stale(p, INFO) == [
        {"name": "xdp_counter", "program": "xdp_counter", "hook": "xdp", "interface": "eth1"},
        {"name": "tc_classifier", "program": "tc_classify_egress", "hook": "tc", "interface": "eth0", "direction": "egress"},
        {"name": "net_tracepoints", "program": "net_tx", "hook": "auto"},
    ]
    assert f.ebpf_programs_stale(plan([]), INFO) == []  # undeclared objects are pruned whole instead


def test_stale_with_nothing_planned_lists_every_attachment_once():
    names = [o["name"] for o in INFO["objects"]]
    stale = f.ebpf_programs_stale({"objects": names, "attachments": []}, INFO)
    assert len(stale) == 7 and {"name": "old_thing", "program": "p", "hook": "auto"} in stale


def test_rollback_undoes_only_what_the_run_added():
    p = plan([{"name": "syscall_latency"}, {"name": "net_tracepoints"}, {"name": "xdp_counter", "attach": [{"interface": "eth0"}]}])
    before = {"objects": [{"name": "syscall_latency"}]}
    results = [
        {"action": "attach", "hook": "raw_tracepoint", "item": {"name": "syscall_latency", "program": "syscall_enter_tp", "hook": "auto"}},
        {"action": "none", "item": {"name": "syscall_latency", "program": "syscall_exit_tp", "hook": "auto"}},
        {"action": "attach", "hook": "tracepoint", "item": {"name": "net_tracepoints", "program": "net_rx", "hook": "auto"}},
        {"failed": True, "msg": "foreign program", "item": {"name": "xdp_counter", "program": "xdp_counter", "hook": "xdp"}},
        {"skipped": True, "item": {"name": "x"}},
    ]
    assert f.ebpf_programs_rollback(p, before, results) == {
        "unload": ["net_tracepoints", "xdp_counter"],
        "detach": [{"name": "syscall_latency", "program": "syscall_enter_tp", "hook": "raw_tracepoint"}],
    }
    assert f.ebpf_programs_rollback(p, before)["detach"] == []


def test_status_summary_and_counters():
    info = {"pin_root": "/sys/fs/bpf/x", "objects": [
        {"name": "xdp_counter", "loaded": True, "maps": [{}, {}], "links": [],
         "programs": [{"name": "xdp_counter", "type": "xdp", "id": 7, "tag": "ab"}]}],
        "attachments": [{"kind": "xdp", "object": "xdp_counter", "program": "xdp_counter", "description": "xdp (skb) on eth0"},
                        {"kind": "link", "link_type": "xdp", "object": "xdp_counter", "program": "xdp_counter",
                         "description": "link 3 (xdp on eth0)"}]}
    text = ("# HELP ebpf_exporter_xdp_packets_total Packets\n# TYPE ebpf_exporter_xdp_packets_total counter\n"
            'ebpf_exporter_xdp_packets_total{interface="eth0"} 3\nebpf_exporter_xdp_packets_total{interface="eth1"} 4\n'
            "# TYPE lat histogram\nlat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 0.5\nlat_count 2\n")
    status = f.ebpf_programs_status(info, text, ["xdp_counter"])
    assert status["objects"][0]["programs"][0]["attached"] == ["xdp (skb) on eth0"]
    assert status["objects"][0]["declared"] is True and status["objects"][0]["maps"] == 2
    assert status["counters"] == {"ebpf_exporter_xdp_packets_total": 7, "lat": 2}
    assert status["lines"][:2] == ["xdp_counter: 1 program(s), 2 map(s)", "  xdp_counter (xdp, id 7): xdp (skb) on eth0"]
    assert "  ebpf_exporter_xdp_packets_total 7" in status["lines"]
    assert f.ebpf_programs_status({"pin_root": "/p", "objects": [], "attachments": []})["lines"] == ["no eBPF programs under /p"]


def test_a_user_xdp_program_is_attached_at_the_interfaces_its_section_names():
    """An ebpf_exporter program with SEC("xdp/eth0,lo") and a perf_event program, as
    host_catalog describes them, need no attach list."""
    catalog = dict(CATALOG, xdp_trace={
        "variants": {"default": {"object": "xdp_trace", "programs": ["cpu_sample", "xdp_trace"], "needs": ["perf_link", "xdp"]}},
        "program_hooks": {"xdp_trace": "xdp", "cpu_sample": "auto"}, "program_interfaces": {"xdp_trace": ["eth0", "lo"]},
        "auto": ["default"], "interface": True, "hooks": ["xdp", "auto"], "user": True})
    p = f.ebpf_programs_plan([{"name": "xdp_trace"}], catalog, ALL, "x86_64", DIR)
    assert p["errors"] == []
    assert p["attachments"] == [
        {"name": "xdp_trace", "hook": "auto", "program": "cpu_sample"},
        {"name": "xdp_trace", "hook": "xdp", "interface": "eth0", "program": "xdp_trace"},
        {"name": "xdp_trace", "hook": "xdp", "interface": "lo", "program": "xdp_trace"},
    ]
    assert p["interfaces"] == ["eth0", "lo"]


@pytest.mark.parametrize("release, chosen, error", [
    ("6.1.0-28-amd64", "current", None),
    ("5.16", "current", None),
    ("5.10.0-32-cloud-amd64", "older", None),
    ("4.19.0-27-amd64", None, "cachestat cannot run on this host: current needs Linux >=5.16 (this host runs 4.19.0-27-amd64); "
                              "older needs Linux >=5.10,<5.16 (this host runs 4.19.0-27-amd64)"),
])
def test_variants_chosen_by_kernel_release(release, chosen, error):
    variants = {"current": {"object": "cachestat", "programs": ["p"], "kernel": ">=5.16"},
                "older": {"object": "cachestat-pre-kernel-5.16", "programs": ["p"], "kernel": ">=5.10,<5.16"}}
    catalog = dict(CATALOG, cachestat={"variants": variants, "program_hooks": {"p": "auto"}, "auto": ["current", "older"],
                                       "interface": False, "hooks": ["auto"], "user": True})
    p = f.ebpf_programs_plan([{"name": "cachestat"}], catalog, dict(ALL, kernel_release=release), "x86_64", DIR)
    assert p["errors"] == ([error] if error else [])
    assert [load["variant"] for load in p["loads"]] == ([chosen] if chosen else [])


def test_a_kernel_constraint_that_is_not_one_is_named():
    assert host_plan.kernel_fits("6.1.0", ">=5.4, <7")
    with pytest.raises(ValueError, match="kernel constraint '~5.4': write comparisons such as >=5.16"):
        host_plan.kernel_fits("6.1.0", "~5.4")


def test_kernels_without_task_storage_get_the_hash_variant():
    p = f.ebpf_programs_plan([{"name": "syscall_latency"}], CATALOG, dict(ALL, task_storage=False), "x86_64", DIR)
    assert p["errors"] == [] and [(load["variant"], load["object"]) for load in p["loads"]] == [
        ("raw_tracepoint_hash", "syscall_latency_hash")]
    assert [a["program"] for a in p["attachments"]] == ["syscall_enter_tp", "syscall_exit_tp"]


def test_kernels_whose_tc_programs_reach_the_sk_buff_get_the_direct_classifier():
    declared = [{"name": "tc_classifier", "attach": [{"hook": "tc", "interface": "eth1"}]}]
    p = f.ebpf_programs_plan(declared, CATALOG, dict(ALL, kern_ctx=True), "x86_64", DIR)
    assert p["errors"] == [] and [(load["variant"], load["object"]) for load in p["loads"]] == [
        ("direct", "tc_classifier_direct")]
    assert p["files"] == ["tc_classifier_direct.bpf.o"] and p["exporter_programs"][0]["name"] == "tc_classifier"
    p = f.ebpf_programs_plan([dict(declared[0], variant="tc")], CATALOG, dict(ALL, kern_ctx=True), "x86_64", DIR)
    assert [load["object"] for load in p["loads"]] == ["tc_classifier"]
    p = f.ebpf_programs_plan([dict(declared[0], variant="direct")], CATALOG, ALL, "x86_64", DIR)
    assert [load["object"] for load in p["loads"]] == ["tc_classifier"] and p["errors"] == []
    assert p["warnings"] == ["tc_classifier: variant direct needs the kernel feature 'kern_ctx', which this host lacks; "
                             "using variant tc"]


def test_kernels_with_btf_typed_tracepoints_get_the_cheapest_net_events():
    p = f.ebpf_programs_plan([{"name": "net_tracepoints"}], CATALOG, dict(ALL, tp_btf=True), "x86_64", DIR)
    assert p["errors"] == [] and [(load["variant"], load["object"]) for load in p["loads"]] == [
        ("tp_btf", "btf_net_tracepoints")]
    assert [a["program"] for a in p["attachments"]] == ["skb_kfree", "tcp_retransmit", "tcp_set_state", "net_rx", "net_tx"]


def test_kernels_without_perf_links_get_raw_tracepoint_net_events():
    p = f.ebpf_programs_plan([{"name": "net_tracepoints"}], CATALOG, dict(ALL, perf_link=False), "x86_64", DIR)
    assert p["errors"] == [] and [(load["variant"], load["object"]) for load in p["loads"]] == [
        ("raw_tracepoint", "raw_net_tracepoints")]
    assert [a["program"] for a in p["attachments"]] == ["skb_kfree", "tcp_retransmit", "tcp_set_state", "net_rx", "net_tx"]


def test_an_empty_program_list_is_refused_not_taken_for_all():
    p = plan([{"name": "net_tracepoints", "programs": []}], ALL)
    assert p["loads"] == [] and p["errors"] == [
        "net_tracepoints (variant tracepoint): programs is empty (omit it to load all); "
        "it has skb_kfree, tcp_retransmit, tcp_set_state, net_rx, net_tx"]


def test_a_dispatcher_component_is_the_xdp_attachment_of_its_interface():
    component = {"kind": "link", "link_type": "tracing", "dispatcher_id": 7, "mode": "drv", "ifindex": 3, "interface": "mpx0",
                 "prog_id": 11, "object": "xdp_counter", "program": "xdp_counter"}
    info = {"objects": [{"name": "xdp_counter", "programs": [{"name": "xdp_counter"}]}], "attachments": [component]}
    kept = plan([{"name": "xdp_counter", "attach": [{"interface": "mpx0", "priority": 10, "chain_call_actions": ["pass"]}]}])
    assert kept["attachments"][0]["priority"] == 10 and kept["attachments"][0]["chain_call_actions"] == ["pass"]
    assert f.ebpf_programs_stale(kept, info) == []
    moved = plan([{"name": "xdp_counter", "attach": [{"interface": "eth0"}]}])
    assert f.ebpf_programs_stale(moved, info) == [{"name": "xdp_counter", "program": "xdp_counter", "hook": "xdp", "interface": "mpx0"}]
