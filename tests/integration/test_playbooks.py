"""The modules through ansible-playbook against localhost (each playbook asserts its cases)."""
import json
import os
import subprocess
import sys
import tempfile

import pytest

from bpf_objects import build_product_objects

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


@pytest.mark.playbook
def test_ebpf_tc_rules_playbook():
    out, _outcomes = run_playbook("ebpf_tc_rules.yml", {"tc_classifier": build_product_objects()["tc_classifier"]})
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]


@pytest.mark.parametrize("module", ["ebpf_program", "ebpf_map", "ebpf_attach", "ebpf_info", "ebpf_tc_rules", "ebpf_host"])
def test_ansible_doc_renders(module):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "build", "collections"), ANSIBLE_NOCOLOR="1")
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "ebpf.observability." + module],
                         env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "OPTIONS" in out.stdout and "RETURN VALUES" in out.stdout and "EXAMPLES" in out.stdout


def test_ebpf_program_doc_states_the_name_rules():
    """What ansible-doc says of names and programs is what the module enforces."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "build", "collections"), ANSIBLE_NOCOLOR="1")
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "--json",
                          "ebpf.observability.ebpf_program"], env=env, capture_output=True, text=True, check=True)
    options = json.loads(out.stdout)["ebpf.observability.ebpf_program"]["doc"]["options"]
    name_doc = " ".join(options["name"]["description"])
    assert "at most 128 characters" in name_doc and "No C(.)" in name_doc
    assert "C(_), C(.)" not in name_doc
    assert "omit it to load all" in " ".join(options["programs"]["description"])


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


@pytest.mark.playbook
def test_ebpf_exporter_role(pin_root):
    """The role in the four-run pattern, every path under a temporary directory; the installed
    command then runs as the role's user (with only CAP_BPF) and reads the maps."""
    import shutil  # pylint: disable=import-outside-toplevel
    import yaml  # pylint: disable=import-outside-toplevel
    from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend
    from exporter_harness import build_programs, samples, series, value  # pylint: disable=import-outside-toplevel

    built = build_programs()
    for name in ("xdp_counter", "syscall_latency", "net_tracepoints"):
        ProgramBackend(name, pin_root).present(built[name])
    work = tempfile.mkdtemp(prefix="ebpft-ex-role-")
    os.chmod(work, 0o755)
    user = "ebpft-ex-%d" % os.getpid()
    with open(os.path.join(REPO, "bpf", "syscall_latency.yaml")) as f:
        inline = yaml.safe_load(f)
    extra = {
        "ansible_python_interpreter": "/usr/bin/python3",  # the hosts' Python, as on a target
        "ebpf_exporter_programs": [
            {"name": "xdp_counter"},  # the collection's bpf/xdp_counter.yaml
            {"name": "syscall_latency", "metrics": inline},
            {"name": "net_tracepoints", "metrics_file": os.path.join(REPO, "bpf", "net_tracepoints.yaml")},
        ],
        "ebpf_exporter_pin_root": pin_root,
        "ebpf_exporter_user": user, "ebpf_exporter_group": user,
        "ebpf_exporter_packages": ["python3-yaml"],
        "ebpf_exporter_node_exporter_install": True,  # its package is installed by scripts/setup.sh
        "ebpf_exporter_node_exporter_defaults_file": os.path.join(work, "default", "prometheus-node-exporter"),
    }
    for var in ("textfile_dir", "bin_dir", "config_dir", "systemd_dir"):
        extra["ebpf_exporter_" + var] = os.path.join(work, var)
    extra["ebpf_exporter_attach_events"] = os.path.join(work, "events", "attach_errors.json")
    for var in ("systemd_dir", "bin_dir"):  # as /etc/systemd/system and /usr/local/sbin always are
        os.makedirs(extra["ebpf_exporter_" + var])
    launcher = os.path.join(extra["ebpf_exporter_bin_dir"], "ebpf-observability-exporter")
    units = os.path.join(extra["ebpf_exporter_systemd_dir"], "ebpf-observability-exporter")
    try:
        changed = []
        for options in (["--check"], []):
            out, outcomes = run_playbook("ebpf_exporter.yml", extra, *options)
            assert out.returncode == 0, out.stdout[-8000:] + out.stderr[-3000:]
            changed.append([o["task"] for o in outcomes if o["changed"]])
        assert changed[0] and changed[1], changed
        if not os.path.isdir("/run/systemd/system"):
            assert "systemd is not running" in out.stdout + out.stderr

        with open(launcher) as f:
            assert f.readline() == "#!/usr/bin/python3\n"
        with open(os.path.join(extra["ebpf_exporter_config_dir"], "exporter.yml")) as f:
            config = yaml.safe_load(f)
        assert [p["name"] for p in config["programs"]] == ["xdp_counter", "syscall_latency", "net_tracepoints"]
        assert config["programs"][1]["metrics"] == inline
        assert [c["name"] for c in config["programs"][0]["metrics"]["metrics"]["counters"]] == [
            "xdp_packets_total", "xdp_bytes_total"]
        with open(extra["ebpf_exporter_node_exporter_defaults_file"]) as f:
            assert 'ARGS="--collector.textfile.directory=%s"\n' % extra["ebpf_exporter_textfile_dir"] in f.read()
        if shutil.which("systemd-analyze"):
            verify = subprocess.run(["systemd-analyze", "verify", units + ".service", units + "-access.service",
                                     units + "-access.path"], capture_output=True, text=True, check=False)
            assert verify.returncode == 0, verify.stdout + verify.stderr

        # The installed command, as the role's user with only CAP_BPF, as its unit runs it.
        run = subprocess.run(["setpriv", "--reuid=" + user, "--regid=" + user, "--init-groups", "--inh-caps=-all,+bpf",
                              "--ambient-caps=+bpf", "--bounding-set=-all,+bpf", "--no-new-privs",
                              launcher, "--config", config_path(extra), "--once"],
                             capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stderr
        with open(os.path.join(extra["ebpf_exporter_textfile_dir"], "ebpf_observability.prom")) as f:
            parsed = samples(f.read())
        assert not series(parsed, "ebpf_exporter_map_errors_total"), run.stderr
        assert value(parsed, "ebpf_programs_loaded", program_type="xdp") == 1
        assert value(parsed, "ebpf_programs_loaded", program_type="raw_tracepoint") == 2

        for options in (["--check"], []):
            out, outcomes = run_playbook("ebpf_exporter.yml", extra, *options)
            assert out.returncode == 0, out.stdout[-8000:] + out.stderr[-3000:]
            assert [o["task"] for o in outcomes if o["changed"]] == [], out.stdout[-8000:]
    finally:
        subprocess.run(["userdel", user], capture_output=True, check=False)
        subprocess.run(["groupdel", user], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)


def config_path(extra):
    return os.path.join(extra["ebpf_exporter_config_dir"], "exporter.yml")
