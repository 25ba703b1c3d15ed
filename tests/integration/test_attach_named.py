"""Sections that name their target, as cloudflare/ebpf_exporter's programs write them
(tests/bpf/named_sections.bpf.c): ``xdp/<interface>`` attaches to that interface without being
told and counts every frame; ``perf_event/type=1,config=0,frequency=1000`` samples the software
CPU clock on every online CPU through one pinned link per CPU. Both check -> real -> check ->
real, detach cleanly, and malformed or absent events fail clearly leaving nothing behind."""
import os
import struct
import time

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import perf_event
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach import AttachBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import AttachError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend
from netns import UdpStream


def run(pin_root, tmp_path, check_mode=False, **options):
    params = dict(name="named", pin_root=pin_root, events_dir=str(tmp_path))
    params.update(options)
    return AttachBackend(params, check_mode=check_mode).run()


def four_runs(pin_root, tmp_path, **options):
    return [run(pin_root, tmp_path, check_mode=c, **options) for c in (True, False, True, False)]


def read_map(pin_root, name, key):
    with sc.obj_get(os.path.join(pin_root, "named", "maps", name)) as fd:
        raw = sc.map_lookup(fd, struct.pack("<I", key), 8)
    return struct.unpack("<Q", raw)[0] if raw else 0


def links_in(pin_root):
    links = os.path.join(pin_root, "named", "links")
    return sorted(os.listdir(links)) if os.path.isdir(links) else []


def test_xdp_section_names_its_interface(pin_root, bpf_objects, tmp_path, veth_pair):
    loaded = ProgramBackend("named", pin_root).present(bpf_objects["named"])
    assert dict((p["name"], p["type"]) for p in loaded["programs"]) == {"cpu_clock": "perf_event", "xdp_named": "xdp"}
    runs = four_runs(pin_root, tmp_path, program="xdp_named")
    assert [r["changed"] for r in runs] == [True, True, False, False]
    att = runs[1]["attachment"]
    assert (runs[1]["hook"], att["interface"], att["prog_id"]) == ("xdp", "ebpft-at0", runs[1]["program"]["id"])
    stream = UdpStream(veth_pair.peer_ns, veth_pair.ns, veth_pair.addr)
    try:
        before = read_map(pin_root, "frames", 0)
        assert stream.burst(200) == 200
        assert read_map(pin_root, "frames", 0) - before == 200
    finally:
        stream.stop()
    res = run(pin_root, tmp_path, program="xdp_named", state="absent")
    assert res["changed"] and res["attachment"] == {}
    with pytest.raises(AttachError, match="interface ebpft-zz0 does not exist"):
        run(pin_root, tmp_path, program="xdp_named", interface="ebpft-zz0")


def test_perf_event_section_samples_every_cpu(pin_root, bpf_objects, tmp_path):
    ProgramBackend("named", pin_root).present(bpf_objects["named"])
    cpus = perf_event.cpu_list()
    runs = four_runs(pin_root, tmp_path, program="cpu_clock")
    assert [r["changed"] for r in runs] == [True, True, False, False]
    att = runs[1]["attachment"]
    assert (runs[1]["hook"], att["target"], att["cpus"]) == ("perf_event", "type=1,config=0,frequency=1000", cpus)
    assert runs[0]["attachment"]["link_ids"] is None and len(set(att["link_ids"])) == len(cpus)
    assert len(links_in(pin_root)) == len(cpus)
    for link_id in att["link_ids"]:
        with sc.link_fd_by_id(link_id) as fd:
            info = sc.link_info(fd)
        assert (info["type_name"], info["prog_id"]) == ("perf_event", att["prog_id"])
        if "perf_event_type_name" in info:  # Linux 6.6+ reports the event
            assert (info["perf_event_type_name"], info["config"]) == ("event", 0)
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:  # keep this CPU busy: the clock samples it
        pass
    assert sum(read_map(pin_root, "samples", cpu) for cpu in cpus) > 0

    res = run(pin_root, tmp_path, program="cpu_clock", state="absent")
    assert res["changed"] and res["attachment"] == {} and links_in(pin_root) == []
    for link_id in att["link_ids"]:
        with pytest.raises(BpfError):
            sc.link_fd_by_id(link_id)


def test_perf_events_the_kernel_lacks_or_cannot_parse_fail_clearly(pin_root, bpf_objects, tmp_path):
    ProgramBackend("named", pin_root).present(bpf_objects["named"])
    with pytest.raises(AttachError, match=r"cannot open the perf event for type=99,config=0,frequency=10 on "
                                          r"CPU \d+.*This kernel or machine has no perf event type 99 config 0"):
        run(pin_root, tmp_path, program="cpu_clock", target="type=99,config=0,frequency=10")
    assert links_in(pin_root) == []
    with pytest.raises(AttachError, match="'frequency' is not one of type=, config=, frequency= or period="):
        run(pin_root, tmp_path, program="cpu_clock", target="type=1,config=0,frequency")
    with pytest.raises(BpfError, match=r"section perf_event/type=1,cfg=0: 'cfg=0' is not one of type=, config="):
        ProgramBackend("bad", pin_root).present(bpf_objects["named_bad"])
    assert not os.path.exists(os.path.join(pin_root, "bad"))
