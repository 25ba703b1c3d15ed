"""ebpf_attach's tcx_position against the running kernel's TCX order (Linux 6.6+), inside private
namespaces (ebpft-at-*): last, first, after and before another tool's TCX program, each checked
on the next run from the order BPF_PROG_QUERY reports, kept by an upgrade, and refused clearly
against a program that is not on the hook."""
import os
import socket

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import AttachError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.info import InfoBackend
from test_attach_tc import OURS_SLOT, four_runs, packets, send

pytestmark = pytest.mark.skipif(not features.has_tcx(), reason="TCX needs Linux 6.6")


def chain(veth_pair):
    """The program ids on the ingress TCX hook, in the order they run."""
    return sc.prog_query(socket.if_nametoindex(veth_pair.ifname), sc.BPF_TCX_INGRESS)["prog_ids"]


def test_tcx_position_is_kept_from_the_kernels_order(attach, veth_pair):
    obj = attach.obj
    foreign_pin = obj["pin_dir"] + "/progs/foreign_tc"
    with sc.obj_get(foreign_pin) as foreign:
        foreign_id = sc.prog_info(foreign)["id"]
        # another tool's TCX program, held by this test
        with sc.link_create(foreign, socket.if_nametoindex(veth_pair.ifname), sc.BPF_TCX_INGRESS, flags=sc.BPF_F_BEFORE):
            ours = dict(program="tc_udp", interface=veth_pair.ifname, direction="ingress", tc_api="tcx")
            runs = four_runs(attach, tcx_position="last", **ours)
            assert [r["changed"] for r in runs] == [True, True, False, False]
            our_id = runs[1]["attachment"]["prog_id"]
            assert chain(veth_pair) == [foreign_id, our_id] and runs[3]["attachment"]["tcx_position"] == 1

            for position, relative, want in (("first", None, [our_id, foreign_id]),
                                             ("after", str(foreign_id), [foreign_id, our_id]),
                                             ("before", "att/foreign_tc", [our_id, foreign_id]),
                                             ("before", foreign_pin, [our_id, foreign_id])):
                res = attach(tcx_position=position, tcx_relative_to=relative, **ours)
                assert chain(veth_pair) == want, (position, relative)
                assert res["attachment"]["tcx_chain"] == want
                assert res["changed"] == (relative != foreign_pin)  # the pin names the same place as att/foreign_tc
                assert not attach(tcx_position=position, tcx_relative_to=relative, **ours)["changed"]

            info = InfoBackend(obj["pin_root"], gather=("attachments",)).run()["attachments"]
            assert sorted((a["program"], a["tcx_position"]) for a in info if a.get("link_type") == "tcx") == [
                ("foreign_tc", 1), ("tc_udp", 0)]  # the other tool's program is one of the test object's
            before = packets(obj, OURS_SLOT)
            send(veth_pair, "ingress")
            assert packets(obj, OURS_SLOT) - before == 40

            # an upgrade swaps the program in its place
            obj["load"]("attach_v2")
            res = attach(tcx_position="before", tcx_relative_to=str(foreign_id), **ours)
            assert res["action"] == "replace" and chain(veth_pair) == [res["attachment"]["prog_id"], foreign_id]

            with pytest.raises(AttachError, match="tcx_relative_to: program id 999999 is not attached to TC ingress"):
                attach(tcx_position="after", tcx_relative_to="999999", **ours)
            with pytest.raises(AttachError, match="tcx_relative_to goes with tcx_position before or after"):
                attach(tcx_position="first", tcx_relative_to="1", **ours)
        assert not os.path.exists(obj["pin_dir"] + "/links/foreign_tc")
