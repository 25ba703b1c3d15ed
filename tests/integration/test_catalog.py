"""The open catalogue: the user's programs in cloudflare/ebpf_exporter's layout (tests/bpf/catalog:
name.bpf.c beside name.yaml, a header of the directory, a file name with a '.') built by
ebpf_build, deployed by ebpf_programs by name, attached at the hooks their sections name,
exported with their own YAML, idempotent, and removed; and the catalogue entries themselves."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest
import yaml

from ansible_collections.ebpf.observability.plugins.module_utils.backends.host_catalog import (
    ebpf_programs_user_catalog, pin_name,
)
from test_playbooks import REPO
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import perf_event
from test_playbooks import run_playbook
from test_roles import REMOVE, SITE, changed, ensure_user_deleted, kernel_state, play, settings

SOURCES = os.path.join(REPO, "tests", "bpf", "catalog")
with open(os.path.join(REPO, "roles", "ebpf_programs", "vars", "main.yml")) as _f:
    BUILTIN = yaml.safe_load(_f)["_ebpf_programs_builtin"]


# one object per host: fentry where the kernel has BPF trampolines, a kprobe where it has kprobes
NANOSLEEP = {"nanosleep": {"variants": {"fentry": {"object": "nanosleep_fentry"}, "kprobe": {"object": "nanosleep_kprobe"}},
                           "auto": ["fentry", "kprobe"]}}


@pytest.fixture(scope="module")
def build_dir():
    path = tempfile.mkdtemp(prefix="ebpft-cat-build-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def work():
    path = tempfile.mkdtemp(prefix="ebpft-cat-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def build_catalog(bpf_objects, out):
    """The catalogue directory built as ebpf_build does (bpf/user.mk), for one architecture."""
    arch = os.path.join(out, os.uname().machine)
    subprocess.run(["make", "-s", "-f", os.path.join(REPO, "bpf", "user.mk"), "SRC=" + SOURCES, "O=" + arch,
                    "INCLUDES=" + os.path.dirname(bpf_objects["base"])], check=True)
    return out


def test_objects_become_entries_with_programs_hooks_needs_and_metrics(bpf_objects, tmp_path, built):
    out = build_catalog(bpf_objects, str(tmp_path))
    shutil.copy(built["xdp_counter"], os.path.join(out, os.uname().machine))  # a built-in: not the user's
    res = ebpf_programs_user_catalog({}, out, BUILTIN)
    assert res["errors"] == [] and sorted(res["catalog"]) == [
        "cpu_clock", "getpid-raw-1_0", "getpid_btf", "libc_getpid", "nanosleep_fentry", "nanosleep_kprobe", "python_gc"]
    btf = res["catalog"]["getpid_btf"]
    assert btf["variants"] == {"default": {"object": "getpid_btf", "programs": ["getpid_btf_enter"], "needs": ["tp_btf"]}}
    assert (btf["interface"], btf["program_hooks"], btf["metrics_file"]) == (
        False, {"getpid_btf_enter": "auto"}, os.path.join(out, os.uname().machine, "getpid_btf.yaml"))
    assert res["catalog"]["getpid-raw-1_0"]["variants"]["default"]["object"] == "getpid-raw-1.0"
    assert res["catalog"]["libc_getpid"]["variants"]["default"]["needs"] == ["perf_link", "uprobes"]
    assert res["catalog"]["cpu_clock"]["variants"]["default"]["needs"] == ["perf_link"]
    assert res["catalog"]["python_gc"]["variants"]["default"]["needs"] == ["perf_link", "uprobes"]
    assert pin_name("cachestat-pre-kernel-5.16") == "cachestat-pre-kernel-5_16"


def test_declared_entries_choose_variants_and_are_checked(bpf_objects, tmp_path):
    out = build_catalog(bpf_objects, str(tmp_path))
    res = ebpf_programs_user_catalog(NANOSLEEP, out, BUILTIN)
    assert res["errors"] == [] and "nanosleep_fentry" not in res["catalog"]  # the objects it claims are not entries too
    entry = res["catalog"]["nanosleep"]
    assert [(n, v["needs"]) for n, v in sorted(entry["variants"].items())] == [
        ("fentry", ["fentry"]), ("kprobe", ["kprobes", "perf_link"])]
    assert entry["metrics_file"] == os.path.join(out, os.uname().machine, "nanosleep.yaml")
    res = ebpf_programs_user_catalog({"xdp_counter": {}, "a.b": {}, "gone": {"object": "nope"}}, out, BUILTIN)
    assert res["errors"] == [
        "ebpf_programs_catalog: a.b cannot name pins (bpffs refuses '.'); call it a_b",
        "ebpf_programs_catalog: xdp_counter is one of the collection's programs; choose another name",
        "gone (variant default): no object nope.bpf.o in the objects directory; build it with ebpf_build_sources"]


def _series(text, metric):
    """{tgid: value} of a counter in the text format (ebpf_exporter's names: ebpf_exporter_<metric>)."""
    return dict((int(m.group(1)), float(m.group(2)))
                for m in re.finditer(r'^ebpf_exporter_%s\{tgid="(\d+)"\} (\S+)$' % metric, text, re.M))


@pytest.mark.playbook
def test_user_programs_run_through_the_roles_and_export_their_own_metrics(bpf_objects, pin_root, work, build_dir):
    names = ["getpid_btf", "getpid-raw-1_0", "libc_getpid", "cpu_clock", "python_gc"]
    extra = settings(work, pin_root, build_dir, [{"name": n} for n in names], exporter=True)
    extra["ebpf_build_sources"] = [{"dir": SOURCES, "include_dirs": [os.path.join(REPO, "bpf")]}]
    extra["ebpf_programs_catalog"] = NANOSLEEP
    programs = os.path.join(work, "programs")
    try:
        play(SITE, extra)
        state = kernel_state(pin_root)
        assert sorted(state) == sorted(names)
        cpus = len(perf_event.cpu_list())  # a perf_event link per online CPU
        assert [[a[0] for a in state[n]] for n in names] == [
            ["getpid_btf_enter"], ["getpid_raw_enter"], ["libc_getpid"], ["cpu_clock_sample"] * cpus, ["python_gc_start"]]
        _out, outcomes = play(SITE, extra)
        assert changed(outcomes) == [], changed(outcomes)

        command = [extra["ebpf_exporter_python"], os.path.join(extra["ebpf_exporter_bin_dir"], "ebpf-observability-exporter"),
                   "--config", os.path.join(extra["ebpf_exporter_config_dir"], "exporter.yml"), "--once", "--stdout"]
        metrics = ("getpid_calls_total", "getpid_raw_calls_total", "libc_getpid_calls_total")
        pid = os.getpid()
        before = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        for _call in range(100):
            os.getpid()
        gc_pid = int(subprocess.run(["/usr/bin/python3", "-c", "import gc, os\ngc.collect(2)\nprint(os.getpid())"],
                                    capture_output=True, text=True, check=True).stdout)
        after = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        assert [_series(after, m)[pid] - _series(before, m).get(pid, 0) for m in metrics] == [100, 100, 100], after[-4000:]
        samples = dict((int(m.group(1)), float(m.group(2))) for m in re.finditer(
            r'^ebpf_exporter_cpu_clock_samples_total\{cpu="(\d+)"\} (\S+)$', after, re.M))
        assert samples and sum(samples.values()) > 0, after[-4000:]
        assert re.search(r'^ebpf_exporter_python_gc_collections_total\{generation="2",tgid="%d"\} [1-9]' % gc_pid, after, re.M), after[-4000:]

        # A reboot empties bpffs: the restore command brings the user's programs back as well.
        bpffs.remove_tree(pin_root)
        run = subprocess.run([sys.executable, os.path.join(programs, "bin_dir", "ebpf-observability-restore"), "--plan",
                              os.path.join(programs, "config_dir", "restore.json"), "--json"], capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stdout + run.stderr
        assert kernel_state(pin_root) == state

        # One object per host: this kernel has neither trampolines nor kprobes, and the run says so.
        out, _outcomes = run_playbook(SITE, dict(extra, ebpf_programs=extra["ebpf_programs"] + [{"name": "nanosleep"}]))
        assert out.returncode != 0
        assert "nanosleep cannot run on this host: fentry needs the kernel feature 'fentry'; kprobe needs the kernel " \
               "feature 'kprobes'" in out.stdout, out.stdout[-3000:]
        assert kernel_state(pin_root) == state

        play(REMOVE, extra)
        assert not os.path.exists(pin_root)
    finally:
        play(REMOVE, extra)
        ensure_user_deleted(extra)
