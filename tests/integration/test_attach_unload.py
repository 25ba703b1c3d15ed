"""ebpf_program state=absent with ebpf_attach's attachments: it refuses while anything is
attached, naming where, and force detaches everything (pinned links included)."""
import os
import subprocess
import time

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import link_alive
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.info import InfoBackend
from netns import netns_path_entered


def test_unload_refuses_while_attached_and_force_detaches(attach, veth_pair):
    obj = attach.obj
    attach(program="xdp_udp", interface=veth_pair.ifname, mode="skb")
    attach(program="tc_udp", interface=veth_pair.ifname, tc_api="netlink")
    tcx = attach(program="tc_udp", interface=veth_pair.ifname, direction="egress", tc_api="tcx")["attachment"]
    tp = attach(program="tp_getpid", hook="tracepoint", target="syscalls/sys_enter_getpid")["attachment"]
    with pytest.raises(BpfError, match="att is still attached: xdp \\(skb\\) on ebpft-at0; tc ingress on ebpft-at0 prio 256"):
        ProgramBackend("att", obj["pin_root"]).absent()
    assert os.path.exists(tp["link_pin"])
    res = ProgramBackend("att", obj["pin_root"]).absent(force=True)
    assert res["changed"] and len(res["detached"]) == 4
    assert not os.path.exists(obj["pin_dir"])
    assert not link_alive(tcx["link_id"]) and not link_alive(tp["link_id"])
    with Netlink() as nl:
        idx = nl.ifindex(veth_pair.ifname)
        assert nl.xdp_query(idx)["mode"] is None
        assert nl.tc_filters(idx, "ingress") == [] and nl.tc_filters(idx, "egress") == []


def test_versions_attached_before_upgrades_that_replaced_the_maps_stay_ours(attach, veth_pair, bpf_objects):
    """An upgrade with replace_maps leaves the earlier version running where it was attached
    over netlink, on maps no longer pinned: the load record keeps it, so ebpf_attach replaces it
    as ours and state=absent refuses, then detaches it."""
    obj = attach.obj
    first = attach(program="xdp_udp", interface=veth_pair.ifname, mode="skb")["attachment"]["prog_id"]
    upgrades = []
    for variant in ("attach_v2_maps", "attach"):
        res = ProgramBackend("att", obj["pin_root"]).present(bpf_objects[variant], replace_maps=True)
        upgrades.append(dict((p["name"], p["id"]) for p in res["programs"])["xdp_udp"])
    assert len({first} | set(upgrades)) == 3
    with Netlink() as nl:
        assert nl.xdp_query(nl.ifindex(veth_pair.ifname))["skb_prog_id"] == first
    with pytest.raises(BpfError, match="att is still attached: xdp \\(skb\\) on ebpft-at0"):
        ProgramBackend("att", obj["pin_root"]).absent()
    predicted = attach(check_mode=True, program="xdp_udp", interface=veth_pair.ifname, mode="skb")
    assert predicted["action"] == "replace" and predicted["diff"]["before"]["prog_id"] == first
    res = ProgramBackend("att", obj["pin_root"]).absent(force=True)
    assert res["changed"] and res["detached"] == ["xdp (skb) on ebpft-at0"]
    assert not os.path.exists(obj["pin_dir"])
    with Netlink() as nl:
        assert nl.xdp_query(nl.ifindex(veth_pair.ifname))["mode"] is None


@pytest.fixture
def unnamed_netns():
    """A network namespace without a name, held by a process of its own (killed afterwards)."""
    proc = subprocess.Popen(["unshare", "--net", "sleep", "120"])
    path = "/proc/%d/ns/net" % proc.pid
    try:
        deadline = time.monotonic() + 5
        while os.stat(path).st_ino == os.stat("/proc/self/ns/net").st_ino:
            assert time.monotonic() < deadline, "unshare did not make a namespace"
            time.sleep(0.01)
        yield path
    finally:
        proc.kill()
        proc.wait()


def _xdp_on_lo(path):
    with netns_path_entered(path), Netlink() as nl:
        return nl.xdp_query(nl.ifindex("lo"))


def test_attachments_in_other_network_namespaces_are_found_shown_and_detached(attach, veth_pair, unnamed_netns):
    """XDP on lo and a TC filter inside a named namespace and inside a process's unnamed one,
    attached over netlink (no bpf_link): state=absent refuses naming them, ebpf_info lists them
    with their namespace, force detaches them."""
    obj = attach.obj
    named = "/run/netns/" + veth_pair.peer_ns
    for path in (named, unnamed_netns):
        with netns_path_entered(path):
            attach(program="xdp_udp", interface="lo", mode="skb")
            attach(program="tc_udp", interface="lo", tc_api="netlink")
    with pytest.raises(BpfError) as err:
        ProgramBackend("att", obj["pin_root"]).absent()
    for path in (named, unnamed_netns):
        assert "xdp (skb) on lo in network namespace %s" % path in str(err.value)
        assert "tc ingress on lo in network namespace %s prio 256" % path in str(err.value)
    found = InfoBackend(obj["pin_root"], gather=("attachments",)).run()["attachments"]
    elsewhere = sorted((a["kind"], a["netns"], a["object"], a["program"]) for a in found if a.get("netns"))
    assert elsewhere == sorted([("xdp", p, "att", "xdp_udp") for p in (named, unnamed_netns)]
                               + [("tc", p, "att", "tc_udp") for p in (named, unnamed_netns)])
    assert all(a["netns_inode"] == os.stat(a["netns"]).st_ino for a in found if a.get("netns"))

    res = ProgramBackend("att", obj["pin_root"]).absent(force=True)
    assert res["changed"] and len(res["detached"]) == 4
    for path in (named, unnamed_netns):
        assert _xdp_on_lo(path)["mode"] is None
        with netns_path_entered(path), Netlink() as nl:
            assert nl.tc_filters(nl.ifindex("lo"), "ingress") == []
