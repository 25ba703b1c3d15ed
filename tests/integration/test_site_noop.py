"""The shortest whole run of the collection against localhost: playbooks/site.yml (programs and
exporter, whose config must pass the exporter's own check), then site again (no task changes).
`make matrix` runs it, with the unit tests, on the older ansible-core releases meta/runtime.yml
admits; make integration leaves it out (test_roles runs site twice on the newest)."""
import os

import pytest
import yaml

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from test_roles import SITE, changed, declared, ensure_user_deleted, kernel_state, play, settings


@pytest.mark.playbook
@pytest.mark.matrix
def test_site_then_no_op_then_remove(veth, pin_root, work, tmp_path):
    extra = settings(work, pin_root, str(tmp_path / "objects"), declared(veth.ifname), exporter=True)
    try:
        play(SITE, extra)
        assert sorted(kernel_state(pin_root)) == ["syscall_latency", "tc_classifier", "xdp_counter"]
        with open(os.path.join(extra["ebpf_exporter_config_dir"], "exporter.yml"), encoding="utf-8") as f:
            assert [p["name"] for p in yaml.safe_load(f)["programs"]] == ["xdp_counter", "tc_classifier", "syscall_latency"]
        _out, outcomes = play(SITE, extra)
        assert changed(outcomes) == [], changed(outcomes)
    finally:
        bpffs.remove_tree(pin_root)
        ensure_user_deleted(extra)
