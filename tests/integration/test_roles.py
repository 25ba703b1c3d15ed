"""playbooks/site.yml, remove.yml and status.yml against localhost, inside network namespaces
of the test's own (ansible-playbook inherits this thread's namespace), with every path the
roles write redirected into a temporary directory: site, site again (no task changed), restore
after an emptied pin root through the installed command, site in check mode (nothing to change),
status, remove, remove again; and a host whose attach fails is rolled back."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
import yaml

from ansible_collections.ebpf.observability.plugins.module_utils.state import attach_events
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.backends.info import InfoBackend
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend
from netns import veth_netns_pair
from test_playbooks import REPO, run_playbook
from tiny_programs import load_xdp, prog_id

PREFIX = "ebpft-ro"
SITE = os.path.join(REPO, "playbooks", "site.yml")
REMOVE = os.path.join(REPO, "playbooks", "remove.yml")
STATUS = os.path.join(REPO, "playbooks", "status.yml")
TAIL = 8000


@pytest.fixture
def veth():
    with veth_netns_pair(PREFIX, addresses=True) as pair:
        yield pair


@pytest.fixture
def work():
    path = tempfile.mkdtemp(prefix=PREFIX + "-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def settings(work, pin_root, build_dir, programs, exporter=False):
    """Extra vars: every path under ``work``, the test's pin root, no package installs."""
    extra = {
        "ebpf_programs": programs,
        "ebpf_programs_pin_root": pin_root,
        "ebpf_programs_python": sys.executable,  # has pyroute2, as python3-pyroute2 gives a target
        "ebpf_programs_manage_packages": False,
        "ebpf_build_output_dir": build_dir,
        "ebpf_site_exporter": exporter,
        "ansible_pipelining": True,
    }
    for var in ("install_dir", "events_dir", "config_dir", "bin_dir", "systemd_dir"):
        extra["ebpf_programs_" + var] = os.path.join(work, "programs", var)
    if exporter:
        user = "ebpft-ro-%d" % os.getpid()
        extra.update(ebpf_exporter_user=user, ebpf_exporter_group=user, ebpf_exporter_packages=[],
                     ebpf_exporter_python="/usr/bin/python3")
        for var in ("textfile_dir", "bin_dir", "config_dir", "systemd_dir"):
            extra["ebpf_exporter_" + var] = os.path.join(work, "exporter", var)
        for var in ("systemd_dir", "bin_dir"):  # as /etc/systemd/system and /usr/local/sbin always are
            os.makedirs(extra["ebpf_exporter_" + var], exist_ok=True)
    os.makedirs(extra["ebpf_programs_systemd_dir"], exist_ok=True)
    os.makedirs(extra["ebpf_programs_bin_dir"], exist_ok=True)
    return extra


def play(playbook, extra, *options):
    out, outcomes = run_playbook(playbook, extra, *options)
    assert out.returncode == 0, out.stdout[-TAIL:] + out.stderr[-3000:]
    return out, outcomes


def changed(outcomes):
    return [o["task"] for o in outcomes if o["changed"]]


def kernel_state(pin_root):
    """{object: sorted attachment descriptions} as ebpf_info reports them (this namespace)."""
    info = InfoBackend(pin_root, gather=("objects", "attachments")).run()
    state = dict((o["name"], []) for o in info["objects"])
    for attachment in info["attachments"]:
        if attachment["kind"] == "link" and attachment.get("link_type") == "xdp":
            continue
        state[attachment["object"]].append((attachment["program"], attachment["kind"], attachment.get("interface"),
                                            attachment.get("direction") or attachment.get("attach_type_name")))
    return dict((name, sorted(found, key=str)) for name, found in state.items())


def declared(ifname):
    return [
        {"name": "xdp_counter", "attach": [{"hook": "xdp", "interface": ifname, "mode": "skb"}]},
        {"name": "tc_classifier",
         "rules": [{"name": "web", "id": 1, "proto": "tcp", "dport": [80, 443]}, {"name": "dns", "id": 2, "dport": 53}],
         "attach": [{"hook": "tc", "interface": ifname, "direction": "ingress"},
                    {"hook": "tc", "interface": ifname, "direction": "egress", "tc_api": "netlink"}]},
        {"name": "syscall_latency", "variant": "kprobe"},  # no kprobes here: raw tracepoints, with a warning
    ]


def verify_units(paths):
    if not shutil.which("systemd-analyze"):
        return
    out = subprocess.run(["systemd-analyze", "verify"] + paths, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.playbook
def test_site_again_check_status_restore_remove(veth, pin_root, work, build_dir):
    extra = settings(work, pin_root, build_dir, declared(veth.ifname), exporter=False)
    programs = dict((k[len("ebpf_programs_"):], v) for k, v in extra.items() if k.startswith("ebpf_programs_"))
    try:
        out, outcomes = play(SITE, extra)
        assert "variant kprobe needs" in out.stdout + out.stderr  # the host lacks kprobes: warned, not failed
        state = kernel_state(pin_root)
        assert sorted(state) == ["syscall_latency", "tc_classifier", "xdp_counter"]
        assert state["xdp_counter"] == [("xdp_counter", "xdp", veth.ifname, None)]
        assert [a[0] for a in state["tc_classifier"]] == ["tc_classify_egress", "tc_classify_ingress"]
        assert [a[0] for a in state["syscall_latency"]] == ["syscall_enter_tp", "syscall_exit_tp"]
        with open(os.path.join(programs["config_dir"], "restore.json")) as f:
            plan = json.load(f)
        assert plan["pin_root"] == pin_root and [a["name"] for a in plan["loads"]] == [
            "xdp_counter", "tc_classifier", "syscall_latency"]
        units = os.path.join(programs["systemd_dir"])
        with open(os.path.join(units, "ebpf-observability-restore.service")) as f:
            unit = f.read()
        assert "After=ebpf-observability-bpffs.service sys-fs-bpf.mount network-online.target " \
            "sys-subsystem-net-devices-%s.device\n" \
            % veth.ifname.replace("-", "\\x2d") in unit
        verify_units([os.path.join(units, "ebpf-observability-bpffs.service"),
                      os.path.join(units, "ebpf-observability-restore.service")])

        _out, outcomes = play(SITE, extra)
        assert changed(outcomes) == [], changed(outcomes)
        assert kernel_state(pin_root) == state

        _out, outcomes = play(SITE, extra, "--check")
        assert changed(outcomes) == [] and not [o for o in outcomes if o["outcome"] == "failed"], changed(outcomes)

        status_file = os.path.join(work, "status.json")
        out, _outcomes = play(STATUS, dict(extra, ebpf_status_json=status_file))
        assert "xdp (skb) on %s" % veth.ifname in out.stdout
        with open(status_file) as f:
            status = json.load(f)["localhost"]
        assert sorted(o["name"] for o in status["objects"]) == sorted(state)

        # A reboot empties bpffs: the installed command loads and attaches everything again.
        for name in state:
            ProgramBackend(name, pin_root).absent(force=True)
        assert kernel_state(pin_root) == {}
        command = [sys.executable, os.path.join(programs["bin_dir"], "ebpf-observability-restore"),
                   "--plan", os.path.join(programs["config_dir"], "restore.json"), "--json"]
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stdout + run.stderr
        assert json.loads(run.stdout)["changed"] is True
        assert kernel_state(pin_root) == state
        again = subprocess.run(command, capture_output=True, text=True, check=False)
        assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False, again.stdout + again.stderr

        _out, outcomes = play(REMOVE, extra)
        assert changed(outcomes)
        assert not os.path.exists(pin_root)
        assert interface_hooks(veth) == ([], None)
        left = [os.path.join(d, f) for d, _dirs, files in os.walk(work) for f in files if not f.endswith("status.json")]
        assert left == [], left
        _out, outcomes = play(REMOVE, extra)
        assert changed(outcomes) == [], changed(outcomes)
    finally:
        bpffs.remove_tree(pin_root)


def ensure_user_deleted(extra):
    subprocess.run(["userdel", extra["ebpf_exporter_user"]], capture_output=True, check=False)
    subprocess.run(["groupdel", extra["ebpf_exporter_group"]], capture_output=True, check=False)


def interface_hooks(veth):
    """(XDP programs, hook qdisc) of the test's interface."""
    with Netlink() as nl:
        ifindex = nl.ifindex(veth.ifname)
        xdp = nl.xdp_query(ifindex)
        return [xdp[m + "_prog_id"] for m in ("drv", "skb", "hw") if xdp[m + "_prog_id"]], nl.hook_qdiscs().get(ifindex)


@pytest.mark.playbook
def test_failed_attach_rolls_the_host_back_and_remove_takes_the_exporter(veth, pin_root, work, build_dir):
    """A first site run (with the exporter, wired to what was deployed), then a run whose XDP
    attach meets a foreign program: the host is back to what it had, and says why; remove.yml
    then leaves nothing of the programs or the exporter."""
    extra = settings(work, pin_root, build_dir, [{"name": "syscall_latency", "attach": []}], exporter=True)
    foreign = load_xdp("ebpft_ro_other")
    try:
        play(SITE, extra)
        before = kernel_state(pin_root)
        assert before == {"syscall_latency": []}
        with open(os.path.join(extra["ebpf_exporter_config_dir"], "exporter.yml")) as f:
            assert [p["name"] for p in yaml.safe_load(f)["programs"]] == ["syscall_latency"]

        with Netlink() as nl:
            ifindex = nl.ifindex(veth.ifname)
            nl.xdp_set(ifindex, foreign.fd, "skb")
        extra["ebpf_programs"] = [
            {"name": "syscall_latency"},  # now attached: this run's attachments of an object loaded before
            {"name": "net_tracepoints", "programs": ["net_rx"]},  # loaded and attached by this run
            {"name": "xdp_counter", "attach": [{"hook": "xdp", "interface": veth.ifname}]},  # refused: foreign program
        ]
        out, _outcomes = run_playbook(SITE, extra)
        text = out.stdout + out.stderr
        assert out.returncode != 0
        assert "fatal: [localhost]" in text
        assert "attach xdp_counter/xdp_counter xdp on %s failed: program id %d (ebpft_ro_other) is attached to %s" % (
            veth.ifname, prog_id(foreign.fd), veth.ifname) in text, text[-TAIL:]
        assert "detached 2 attachment(s) made by it, unloaded net_tracepoints, xdp_counter" in text, text[-TAIL:]
        assert kernel_state(pin_root) == before
        with Netlink() as nl:
            assert nl.xdp_query(ifindex)["skb_prog_id"] == prog_id(foreign.fd)  # left alone
        counts = attach_events.counts(attach_events.events_path(extra["ebpf_programs_events_dir"]))
        assert counts == {(veth.ifname, "foreign_program"): 1}, counts

        _out, outcomes = play(REMOVE, extra)
        assert not os.path.exists(pin_root)
        left = [os.path.join(d, f) for d, _dirs, files in os.walk(work) for f in files]
        assert left == [], left
        assert subprocess.run(["getent", "passwd", extra["ebpf_exporter_user"]], capture_output=True, check=False).returncode == 2
    finally:
        foreign.close()
        ensure_user_deleted(extra)
