"""The canary path of site.yml over simulated hosts (fleet_sim): with ``serial: [1, "10%",
"100%"]`` and ``max_fail_percentage: 0``, a canary whose attach fails stops the rollout, is
rolled back to what it had, and no other host is touched."""
import json
import os
import re
import shutil
import tempfile

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink
from fleet_sim import fleet, run_site


def xdp_programs(ifname):
    with Netlink() as nl:
        state = nl.xdp_query(nl.ifindex(ifname))
    return [state[m + "_prog_id"] for m in ("drv", "skb", "hw") if state[m + "_prog_id"]]


@pytest.mark.playbook
def test_a_failing_canary_stops_the_rollout_and_is_rolled_back():
    build_dir = tempfile.mkdtemp(prefix="ebpfcan-build-")
    try:
        with fleet(3, prefix="ebpfcan", tracing_hosts=0) as (inventory, hosts):
            canary = sorted(hosts)[0]
            # hw mode on a veth: the kernel refuses the attach (EINVAL), after the objects were loaded.
            hosts[canary]["ebpf_programs"][0]["attach"][0]["mode"] = "hw"
            with open(inventory, "w") as f:
                json.dump({"all": {"hosts": hosts}}, f)
            out = run_site(inventory, 3, build_dir, extra={"ebpf_serial": [1, "10%", "100%"], "ebpf_max_fail_percentage": 0})
            text = out.stdout + out.stderr
            assert out.returncode != 0, text[-6000:]
            assert "fatal: [%s]" % canary in text and "Rolled back to the state before this run" in text, text[-6000:]
            assert "unloaded xdp_counter, tc_classifier" in text, text[-6000:]
            for name, hvars in hosts.items():
                assert xdp_programs(name + "a") == [], name
                pins = hvars["ebpf_programs_pin_root"]
                assert not os.path.exists(pins) or os.listdir(pins) == [], (name, os.listdir(pins))
                if name != canary:  # never reached: not one file of the role was written
                    assert not os.path.exists(pins), name
                    for var in ("install_dir", "config_dir"):
                        assert os.listdir(hvars["ebpf_programs_" + var]) == [], (name, var)
            recap = text.split("PLAY RECAP", 1)[1]
            for name in sorted(hosts)[1:]:  # only the build play's architecture question ran there (raw, set_fact)
                assert re.search(r"%s\s+: ok=2\s+changed=0\s+unreachable=0\s+failed=0\s+skipped=0" % name, recap), recap
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
