"""The ebpf_exporter role and prometheus.prometheus.node_exporter on one textfile directory
(tests/playbooks/node_exporter_interop.yml, a stand-in for that role's tasks): with
ebpf_exporter_textfile_dir_manage=false and the node_exporter group as a supplementary group,
both are idempotent (a second run changes nothing, the directory stays node_exporter's), the
installed exporter writes there as its user, and node_exporter, as its own user, serves it."""
import grp
import os
import pwd
import shutil
import subprocess
import tempfile
import urllib.request

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend
from exporter_harness import build_programs, samples, value
from prometheus_harness import free_port, start, stop
from test_playbooks import run_playbook


@pytest.mark.playbook
def test_textfile_directory_shared_with_node_exporter(pin_root):
    ProgramBackend("xdp_counter", pin_root).present(build_programs()["xdp_counter"])
    work = tempfile.mkdtemp(prefix="rel-interop-")
    os.chmod(work, 0o755)
    user, node_user = "rel-ebpf-%d" % os.getpid(), "rel-node-%d" % os.getpid()
    extra = {"node_user": node_user, "ansible_python_interpreter": "/usr/bin/python3",
             "ebpf_exporter_programs": [{"name": "xdp_counter"}], "ebpf_exporter_pin_root": pin_root,
             "ebpf_exporter_user": user, "ebpf_exporter_group": user, "ebpf_exporter_packages": [],
             "ebpf_exporter_attach_events": os.path.join(work, "events", "attach_errors.json")}
    for var in ("textfile_dir", "bin_dir", "config_dir", "systemd_dir"):
        extra["ebpf_exporter_" + var] = os.path.join(work, var)
    for var in ("systemd_dir", "bin_dir"):
        os.makedirs(extra["ebpf_exporter_" + var])
    textfile_dir = extra["ebpf_exporter_textfile_dir"]
    node = None
    try:
        changed = []
        for _run in range(2):
            out, outcomes = run_playbook("node_exporter_interop.yml", extra)
            assert out.returncode == 0, out.stdout[-8000:] + out.stderr[-3000:]
            changed.append([o["task"] for o in outcomes if o["changed"]])
        assert changed[0] and changed[1] == [], changed
        st = os.stat(textfile_dir)
        assert (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, st.st_mode & 0o777) == (
            node_user, node_user, 0o775)
        with open(os.path.join(extra["ebpf_exporter_systemd_dir"], "ebpf-observability-exporter.service")) as f:
            assert "SupplementaryGroups=%s\n" % node_user in f.read()

        launcher = os.path.join(extra["ebpf_exporter_bin_dir"], "ebpf-observability-exporter")
        run = subprocess.run(["setpriv", "--reuid=" + user, "--regid=" + user, "--init-groups", "--inh-caps=-all,+bpf",
                              "--ambient-caps=+bpf", "--bounding-set=-all,+bpf", "--no-new-privs", launcher,
                              "--config", os.path.join(extra["ebpf_exporter_config_dir"], "exporter.yml"), "--once"],
                             capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stderr

        address = "127.0.0.1:%d" % free_port()
        node = start(["setpriv", "--reuid=" + node_user, "--regid=" + node_user, "--init-groups",
                      shutil.which("prometheus-node-exporter"), "--web.listen-address=" + address,
                      "--collector.disable-defaults", "--collector.textfile",
                      "--collector.textfile.directory=" + textfile_dir], "http://%s/metrics" % address, "node_exporter")
        scraped = samples(urllib.request.urlopen("http://%s/metrics" % address, timeout=5).read().decode())
        assert value(scraped, "node_textfile_scrape_error") == 0
        assert value(scraped, "ebpf_programs_loaded", program_type="xdp") == 1
    finally:
        if node is not None:
            stop(node)
        for name in (user, node_user):
            subprocess.run(["userdel", name], capture_output=True, check=False)
            subprocess.run(["groupdel", name], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
