"""The open catalogue: the user's programs in cloudflare/ebpf_exporter's layout (tests/bpf/catalog:
name.bpf.c beside name.yaml, a header of the directory, a file name with a '.') built by
ebpf_build, deployed by ebpf_programs by name, attached at the hooks their sections name,
exported with their own YAML, idempotent, and removed; and the catalogue entries themselves."""
import os
import re
import shutil
import subprocess
import tempfile

import pytest
import yaml

from ansible_collections.ebpf.observability.plugins.module_utils.backends.host_catalog import (
    ebpf_programs_user_catalog, pin_name,
)
from test_playbooks import REPO
from test_roles import REMOVE, SITE, changed, kernel_state, play, settings

SOURCES = os.path.join(REPO, "tests", "bpf", "catalog")
with open(os.path.join(REPO, "roles", "ebpf_programs", "vars", "main.yml")) as _f:
    BUILTIN = yaml.safe_load(_f)["_ebpf_programs_builtin"]


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


def built(bpf_objects, out):
    """The catalogue directory built as ebpf_build does (bpf/user.mk), for one architecture."""
    arch = os.path.join(out, os.uname().machine)
    subprocess.run(["make", "-s", "-f", os.path.join(REPO, "bpf", "user.mk"), "SRC=" + SOURCES, "O=" + arch,
                    "INCLUDES=" + os.path.dirname(bpf_objects["base"])], check=True)
    return out


def test_objects_become_entries_with_programs_hooks_needs_and_metrics(bpf_objects, tmp_path):
    out = built(bpf_objects, str(tmp_path))
    shutil.copy(os.path.join(REPO, "bpf", "xdp_counter.bpf.o"), os.path.join(out, os.uname().machine))  # a built-in: not the user's
    res = ebpf_programs_user_catalog({}, out, BUILTIN)
    assert res["errors"] == [] and sorted(res["catalog"]) == ["getpid-raw-1_0", "getpid_btf"]
    btf = res["catalog"]["getpid_btf"]
    assert btf["variants"] == {"default": {"object": "getpid_btf", "programs": ["getpid_btf_enter"], "needs": ["tp_btf"]}}
    assert (btf["interface"], btf["program_hooks"], btf["metrics_file"]) == (
        False, {"getpid_btf_enter": "auto"}, os.path.join(out, os.uname().machine, "getpid_btf.yaml"))
    assert res["catalog"]["getpid-raw-1_0"]["variants"]["default"]["object"] == "getpid-raw-1.0"
    assert pin_name("cachestat-pre-kernel-5.16") == "cachestat-pre-kernel-5_16"


def test_declared_entries_choose_variants_and_are_checked(bpf_objects, tmp_path):
    out = built(bpf_objects, str(tmp_path))
    declared = {"getpid": {"variants": {"btf": {"object": "getpid_btf"}, "raw": {"object": "getpid-raw-1.0"}},
                           "auto": ["btf", "raw"]}}
    res = ebpf_programs_user_catalog(declared, out, BUILTIN)
    assert res["errors"] == [] and sorted(res["catalog"]) == ["getpid"]  # the objects it claims are not entries too
    assert [v["needs"] for _n, v in sorted(res["catalog"]["getpid"]["variants"].items())] == [["tp_btf"], ["raw_tracepoints"]]
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
    extra = settings(work, pin_root, build_dir, [{"name": "getpid_btf"}, {"name": "getpid-raw-1_0"}], exporter=True)
    extra["ebpf_build_sources"] = [{"dir": SOURCES, "include_dirs": [os.path.dirname(bpf_objects["base"])]}]
    try:
        play(SITE, extra)
        state = kernel_state(pin_root)
        assert sorted(state) == ["getpid-raw-1_0", "getpid_btf"]
        assert [a[0] for a in state["getpid_btf"]] == ["getpid_btf_enter"]
        assert [a[0] for a in state["getpid-raw-1_0"]] == ["getpid_raw_enter"]
        _out, outcomes = play(SITE, extra)
        assert changed(outcomes) == [], changed(outcomes)

        pid = os.getpid()
        for _ in range(500):
            os.getpid()
        command = [extra["ebpf_exporter_python"], os.path.join(extra["ebpf_exporter_bin_dir"], "ebpf-observability-exporter"),
                   "--config", os.path.join(extra["ebpf_exporter_config_dir"], "exporter.yml"), "--once", "--stdout"]
        text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        btf, raw = _series(text, "getpid_calls_total"), _series(text, "getpid_raw_calls_total")
        assert pid in btf and pid in raw, text[-4000:]
        assert btf[pid] >= 500 and raw[pid] >= 500, text[-3000:]
        for _ in range(100):
            os.getpid()
        again = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        assert _series(again, "getpid_calls_total")[pid] - btf[pid] == 100
        assert _series(again, "getpid_raw_calls_total")[pid] - raw[pid] == 100

        play(REMOVE, extra)
        assert not os.path.exists(pin_root)
    finally:
        play(REMOVE, extra)
