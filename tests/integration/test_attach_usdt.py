"""ebpf_attach's usdt hook against the running kernel, with libbpf's semantics: CPython's USDT
probe python:gc__start (tests/bpf/catalog/python_gc.bpf.c, written with libbpf's usdt.bpf.h)
found in /usr/bin/python3's .note.stapsdt, its semaphore counted up while attached (CPython fires
the probe only then), its argument (the generation, a signed 4-byte stack slot) read through the
spec entry the link's BPF cookie names; counted exactly per process and generation; check ->
real -> check -> real; an upgrade moves to new spec entries; detach leaves nothing."""
import os
import struct
import subprocess

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import usdt_notes
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach import AttachBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import AttachError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend
from bpf_objects import build_program

PYTHON = "/usr/bin/python3"
TARGET = PYTHON + ":python:gc__start"


def run(pin_root, tmp_path, check_mode=False, **options):
    params = dict(name="pygc", pin_root=pin_root, events_dir=str(tmp_path), program="python_gc_start")
    params.update(options)
    return AttachBackend(params, check_mode=check_mode).run()


def collections(pin_root, pid, generation):
    with sc.obj_get(os.path.join(pin_root, "pygc", "maps", "python_gc_collections_total")) as fd:
        raw = sc.map_lookup(fd, struct.pack("<II", pid, generation), 8)
    return struct.unpack("<Q", raw)[0] if raw else 0


def collected_in_child(pin_root, count, generation):
    """[collections of generation 0, 1, 2] that a CPython process counted while it ran
    gc.collect(generation) ``count`` times (automatic collections off; those of its start and
    end fall outside the two reads)."""
    code = ("import gc, os, sys\ngc.disable()\nprint(os.getpid(), flush=True)\nsys.stdin.readline()\n"
            "for _i in range(%d):\n    gc.collect(%d)\nprint('done', flush=True)\nsys.stdin.readline()\n" % (count, generation))
    child = subprocess.Popen([PYTHON, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(child.stdout.readline())
        before = [collections(pin_root, pid, g) for g in (0, 1, 2)]
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "done"
        return [collections(pin_root, pid, g) - before[g] for g in (0, 1, 2)]
    finally:
        child.communicate("end\n", timeout=30)


def test_usdt_probe_counts_exactly_with_its_arguments(pin_root, bpf_objects, tmp_path):
    assert [p["args"] for p in usdt_notes.probes(os.path.realpath(PYTHON)) if p["name"] == "gc__start"] == ["-4@112(%rsp)"]
    ProgramBackend("pygc", pin_root).present(bpf_objects["usdt"])
    runs = [run(pin_root, tmp_path, check_mode=c) for c in (True, False, True, False)]
    assert [r["changed"] for r in runs] == [True, True, False, False]
    att = runs[1]["attachment"]
    assert (runs[1]["hook"], att["target"], att["path"]) == ("usdt", TARGET, PYTHON)
    assert len(att["link_ids"]) == len(att["spec_ids"]) == 1 and att["prog_id"] == runs[1]["program"]["id"]

    assert collected_in_child(pin_root, 7, 2) == [0, 0, 7]
    assert collected_in_child(pin_root, 3, 1) == [0, 3, 0]

    # a new version of the program: new spec entries and links, pinned before the old ones go
    ProgramBackend("pygc", pin_root).present(bpf_objects["usdt_v3"])
    res = run(pin_root, tmp_path)
    assert (res["changed"], res["action"]) == (True, "replace")
    new = res["attachment"]
    assert new["prog_id"] != att["prog_id"] and not set(new["spec_ids"]) & set(att["spec_ids"])
    assert len(os.listdir(os.path.join(pin_root, "pygc", "links"))) == 1
    assert collected_in_child(pin_root, 5, 0) == [5, 0, 0]
    assert not run(pin_root, tmp_path)["changed"]

    res = run(pin_root, tmp_path, state="absent")
    assert res["changed"] and res["attachment"] == {}
    assert os.listdir(os.path.join(pin_root, "pygc", "links")) == []
    assert collected_in_child(pin_root, 2, 2) == [0, 0, 0]


def test_usdt_targets_that_do_not_exist_fail_clearly(pin_root, bpf_objects, tmp_path):
    ProgramBackend("pygc", pin_root).present(bpf_objects["usdt"])
    with pytest.raises(AttachError, match=r"/usr/bin/python3.* has no USDT probe python:nope\. Its probes: .*python:gc__start"):
        run(pin_root, tmp_path, target=PYTHON + ":python:nope")
    with pytest.raises(AttachError, match="invalid usdt target 'python:gc__start'"):
        run(pin_root, tmp_path, target="python:gc__start")
    with pytest.raises(AttachError, match="usdt target file /nonexistent does not exist"):
        run(pin_root, tmp_path, target="/nonexistent:python:gc__start")
    links = os.path.join(pin_root, "pygc", "links")
    assert not os.path.isdir(links) or os.listdir(links) == []


@pytest.fixture(scope="module")
def usdt_binary():
    """tests/bpf/usdt_target.c: the USDT probe ebpft:tick, with a semaphore, in a binary built here."""
    return build_program("usdt_target.c", "usdt_target")


def test_usdt_probe_of_a_built_binary_reads_its_arguments(pin_root, bpf_objects, tmp_path, usdt_binary):
    probes = usdt_notes.probes(usdt_binary)
    assert [(p["provider"], p["name"], p["semaphore"] > 0, len(p["args"].split())) for p in probes] == [
        ("ebpft", "tick", True, 2)], probes
    ProgramBackend("ticks", pin_root).present(bpf_objects["usdt_args"])
    params = dict(name="ticks", program="usdt_tick", pin_root=pin_root, events_dir=str(tmp_path), hook="usdt",
                  target=usdt_binary + ":ebpft:tick")
    assert AttachBackend(params).run()["changed"]
    proc = subprocess.Popen([usdt_binary, "30"])
    proc.wait()
    with sc.obj_get(os.path.join(pin_root, "ticks", "maps", "calls_by_tgid")) as fd:
        assert struct.unpack("<Q", sc.map_lookup(fd, struct.pack("<I", proc.pid), 8))[0] == 30
    with sc.obj_get(os.path.join(pin_root, "ticks", "maps", "arg_sums")) as fd:
        sums = [struct.unpack("<Q", sc.map_lookup(fd, struct.pack("<I", i), 8))[0] for i in (0, 1)]
    assert sums == [sum(range(30)), sum(i * i for i in range(30))]
