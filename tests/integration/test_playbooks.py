"""The modules through ansible-playbook against localhost (each playbook asserts its cases)."""
import json
import os
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOKS = os.path.join(REPO, "tests", "playbooks")


def run_playbook(playbook, extra_vars, *options):
    """ansible-playbook against localhost; returns (process, [task outcomes])."""
    with tempfile.NamedTemporaryFile(suffix=".json") as outcomes:
        env = dict(os.environ,
                   ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "build", "collections"),
                   ANSIBLE_CALLBACK_PLUGINS=os.path.join(REPO, "tests", "callback_plugins"),
                   ANSIBLE_CALLBACKS_ENABLED="task_outcomes", TASK_OUTCOMES_PATH=outcomes.name,
                   ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCALHOST_WARNING="0",
                   ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
        cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
               "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable,
               "-e", json.dumps(extra_vars)] + list(options) + [os.path.join(PLAYBOOKS, playbook)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, check=False)
        with open(outcomes.name) as f:
            text = f.read()
    return out, json.loads(text) if text else []


def four_runs(playbook, extra_vars):
    """Check mode, real, check again, real again: the changed tasks of each run."""
    changed = []
    for options in (["--check"], [], ["--check"], []):
        out, outcomes = run_playbook(playbook, extra_vars, *options)
        assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
        changed.append([o["task"] for o in outcomes if o["changed"]])
    return changed


@pytest.mark.playbook
@pytest.mark.parametrize("playbook", ["ebpf_program.yml", "ebpf_map.yml"])
def test_module_playbook(bpf_objects, playbook):
    out, _outcomes = run_playbook(playbook, {"objects": bpf_objects})
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]


@pytest.mark.parametrize("module", ["ebpf_program", "ebpf_map", "ebpf_attach", "ebpf_info"])
def test_ansible_doc_renders(module):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "build", "collections"), ANSIBLE_NOCOLOR="1")
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "ebpf.observability." + module],
                         env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "OPTIONS" in out.stdout and "RETURN VALUES" in out.stdout and "EXAMPLES" in out.stdout


@pytest.mark.playbook
def test_ebpf_build_role(tmp_path):
    extra = {"ebpf_build_output_dir": str(tmp_path / "objects")}
    check, real, check_again, real_again = four_runs("role_ebpf_build.yml", extra)
    assert check and real, "a first build reports changed, in check mode too"
    assert check_again == [] and real_again == [], (check_again, real_again)
    objects = sorted(p.name for p in (tmp_path / "objects" / os.uname().machine).glob("*.bpf.o"))
    assert {"xdp_counter.bpf.o", "tc_classifier.bpf.o", "syscall_latency.bpf.o", "net_tracepoints.bpf.o"} <= set(objects)


@pytest.mark.playbook
def test_ebpf_attach_playbook(bpf_objects, veth_pair, tmp_path):
    # ansible-playbook inherits this thread's network namespace (the veth pair's first one)
    out, _outcomes = run_playbook("ebpf_attach.yml", {"objects": bpf_objects, "interface": veth_pair.ifname,
                                                      "events_dir": str(tmp_path / "events")})
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
