"""The restore command's logic (module_utils/backends/host_apply.py) against the running kernel: a plan
expanded by the role's filter for this host is applied, applied again without a change, and
applied again after every object was unloaded (bpffs as a reboot leaves it); a failing step is
counted in the event file and the other steps still apply."""
import json
import os

import pytest
import yaml

from ansible_collections.ebpf.observability.plugins.module_utils.backends.host_plan import (
    ebpf_programs_plan, ebpf_programs_restore_plan,
)
from ansible_collections.ebpf.observability.plugins.module_utils.state import attach_events
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.backends import host_apply as restore
from ansible_collections.ebpf.observability.plugins.module_utils.backends import tc_rules_encoding as tc_rules
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.info import InfoBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.tc_rules import TcRulesBackend
from netns import veth_netns_pair
from exporter_harness import build_programs
from test_playbooks import REPO

PREFIX = "ebpft-ro"
CLASSES = [{"name": "web", "id": 1, "proto": "tcp", "dport": [80, 443]}, {"name": "dns", "id": 2, "dport": 53}]


@pytest.fixture(scope="module")
def objects_dir():
    built = build_programs()
    return os.path.dirname(built["xdp_counter"])


@pytest.fixture
def veth():
    with veth_netns_pair(PREFIX) as pair:
        yield pair


def make_plan(declared, objects_dir, pin_root, events_dir):
    with open(os.path.join(REPO, "roles", "ebpf_programs", "vars", "main.yml")) as f:
        catalog = yaml.safe_load(f)["_ebpf_programs_builtin"]
    plan = ebpf_programs_plan(declared, catalog, features.facts(), os.uname().machine, objects_dir)
    assert plan["errors"] == []
    return json.loads(json.dumps(ebpf_programs_restore_plan(plan, pin_root, events_dir)))  # as the file holds it


def attached(pin_root):
    info = InfoBackend(pin_root, gather=("objects", "attachments")).run()
    found = set((a["object"], a["program"], a.get("interface")) for a in info["attachments"])
    return sorted(o["name"] for o in info["objects"]), sorted(found, key=str)


def test_restore_after_an_emptied_pin_root(veth, pin_root, objects_dir, tmp_path):
    plan = make_plan([
        {"name": "xdp_counter", "attach": [{"hook": "xdp", "interface": veth.ifname, "mode": "skb"}]},
        {"name": "tc_classifier", "rules": CLASSES, "attach": [{"hook": "tc", "interface": veth.ifname}]},
        {"name": "syscall_latency"},
    ], objects_dir, pin_root, str(tmp_path / "events"))
    first = restore.restore(plan)
    assert first["changed"] and not first["failed"], first
    state = attached(pin_root)
    assert state[0] == ["syscall_latency", "tc_classifier", "xdp_counter"]
    assert ("tc_classifier", "tc_classify_ingress", veth.ifname) in state[1]
    assert ("syscall_latency", "syscall_exit_tp", None) in state[1] and len(state[1]) == 4

    again = restore.restore(plan)
    assert not again["changed"] and not again["failed"], again
    assert all(step.endswith("(unchanged)") for step in again["steps"])

    for name in state[0]:  # a reboot: nothing pinned, nothing attached
        ProgramBackend(name, pin_root).absent(force=True)
    assert attached(pin_root) == ([], [])
    check = restore.restore(plan, check_mode=True)
    assert check["changed"] and attached(pin_root) == ([], [])
    after_boot = restore.restore(plan)
    assert after_boot["changed"] and not after_boot["failed"], after_boot
    assert attached(pin_root) == state
    rules = TcRulesBackend("tc_classifier", pin_root)
    try:
        assert rules.active()[1] == tc_rules.compile_tables(tc_rules.parse_rules(CLASSES))
    finally:
        rules.close()
    assert not os.path.exists(attach_events.events_path(plan["events_dir"]))  # no failure was counted


def test_a_failing_step_is_counted_and_the_rest_applies(veth, pin_root, objects_dir, tmp_path, capsys):
    plan = make_plan([
        {"name": "xdp_counter", "attach": [{"hook": "xdp", "interface": "ebpft-ro-gone"}]},
        {"name": "syscall_latency"},
    ], objects_dir, pin_root, str(tmp_path / "events"))
    plan["loads"].append({"name": "net_tracepoints", "src": str(tmp_path / "missing.bpf.o")})
    plan["attachments"].append({"name": "net_tracepoints", "program": "net_rx", "hook": "auto"})
    path = tmp_path / "restore.json"
    path.write_text(json.dumps(plan))

    assert restore.main(["--plan", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "attach syscall_latency/syscall_enter_tp auto: attach" in out
    assert "failed: attach xdp_counter/xdp_counter xdp on ebpft-ro-gone: interface ebpft-ro-gone does not exist" in err
    assert "failed: load net_tracepoints from %s" % (tmp_path / "missing.bpf.o") in err
    assert attached(pin_root)[0] == ["syscall_latency", "xdp_counter"]
    counts = attach_events.counts(attach_events.events_path(plan["events_dir"]))
    assert counts == {("ebpft-ro-gone", "interface_missing"): 1, ("", "program_missing"): 1}, counts

    assert restore.main(["--plan", str(path), "--json"]) == 1  # still failing, nothing else to do
    result = json.loads(capsys.readouterr()[0])
    assert not result["changed"] and len(result["failures"]) == 2
    assert sum(attach_events.counts(attach_events.events_path(plan["events_dir"])).values()) == 4


def test_an_unusable_plan(tmp_path, capsys):
    with pytest.raises(BpfError, match="cannot read the restore plan"):
        restore.read_plan(str(tmp_path / "none.json"))
    (tmp_path / "old.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(BpfError, match="not a restore plan of format 1"):
        restore.read_plan(str(tmp_path / "old.json"))
    (tmp_path / "bad.json").write_text("{")
    assert restore.main(["--plan", str(tmp_path / "bad.json")]) == 2
    assert "is not JSON" in capsys.readouterr()[1]
