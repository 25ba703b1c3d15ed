"""make demo-local and make demo-clean as a user runs them, inside a network namespace of the
test's own (entered with nsenter, so bpffs stays visible) and with every path the roles write
redirected into a temporary directory: the table counts exactly the pings and datagrams the
demo sent, per TC class, with latency percentiles; demo-clean leaves nothing."""
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from test_playbooks import REPO
from test_roles import ensure_user_deleted, settings

NAME = "fhdl"
SENT = 100  # pings, and datagrams to port 53: playbooks/demo_local.yml
NO_SYSTEMD = "systemd is not running on this host"


def make(target, host_ns, extra, records):
    vars_file = os.path.join(records + ".vars.json")
    with open(vars_file, "w") as f:
        json.dump(extra, f)
    out = subprocess.run(["nsenter", "--net=/run/netns/" + host_ns, "make", "-s", target,
                          "DEMO_LOCAL_VARS=-e @" + vars_file, "DEMO_LOCAL_DIR=" + records],
                         capture_output=True, text=True, cwd=REPO, check=False)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-8000:]
    warnings = [line for line in text.splitlines() if re.search(r"\[(DEPRECATION )?WARNING\]|\w+Warning\b", line)]
    if not os.path.isdir("/run/systemd/system"):
        warnings = [line for line in warnings if NO_SYSTEMD not in line]
    assert warnings == [], text[-8000:]
    assert "\x1b[" not in text  # not a terminal: no colours
    return out.stdout


def row(table, name):
    """The cell of row ``name`` (one host)."""
    found = re.search(r"^%s +(\S.*?)\s*$" % re.escape(name), table, re.M)
    assert found, table
    return found.group(1)


def in_out(cell):
    return tuple(int(v.replace(",", "")) for v in cell.split(" / "))


@pytest.mark.playbook
def test_demo_local_shows_this_runs_traffic_and_demo_clean_leaves_nothing(build_dir):
    host_ns, peer_ns = "%s-%d" % (NAME, os.getpid()), "%s-peer-%d" % (NAME, os.getpid())
    work = tempfile.mkdtemp(prefix=NAME + "-")
    os.chmod(work, 0o755)
    pin_root = os.path.join(bpffs.DEFAULT_MOUNT, "fh_demo_%d" % os.getpid())
    extra = settings(work, pin_root, build_dir, None, exporter=True)
    del extra["ebpf_programs"]  # the demo inventory's, on the demo's veth
    user = "%s-%d" % (NAME, os.getpid())
    extra.update(demo_veth=NAME, demo_netns=peer_ns, ebpf_site_exporter=True, ebpf_exporter_user=user,
                 ebpf_exporter_group=user)
    records = os.path.join(work, "records")
    subprocess.run(["ip", "netns", "add", host_ns], check=True)
    try:
        table = make("demo-local", host_ns, extra, records)
        assert in_out(row(table, "TC class icmp in / out"))[0] == SENT, table
        assert in_out(row(table, "TC class icmp in / out"))[1] >= SENT, table  # the replies
        assert in_out(row(table, "TC class dns in / out"))[0] == SENT, table
        assert int(row(table, "XDP frames into %s0" % NAME).replace(",", "")) >= 2 * SENT, table
        assert in_out(row(table, "programs loaded / attachments"))[1] >= 5, table
        assert re.match(r"[\d.]+ (ns|us|ms|s)$", row(table, "syscall latency p99")), table
        assert row(table, "sent: pings / datagrams") == "%d / %d" % (SENT, SENT), table
        assert os.listdir(records) == ["localhost.json"]
        assert re.search(r"^make demo-local took \d+ s$", table, re.M), table

        make("demo-clean", host_ns, extra, records)
        assert not os.path.exists(pin_root) and not os.path.exists("/run/netns/" + peer_ns)
        link = subprocess.run(["ip", "-n", host_ns, "link", "show", "dev", NAME + "0"], capture_output=True, check=False)
        assert link.returncode != 0, "the demo's veth is left"
        left = [os.path.join(d, f) for d, _dirs, files in os.walk(work) for f in files if not f.endswith(".vars.json")]
        assert left == [], left
        assert subprocess.run(["getent", "passwd", user], capture_output=True, check=False).returncode == 2
    finally:
        subprocess.run(["ip", "netns", "del", peer_ns], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", host_ns], capture_output=True, check=False)
        ensure_user_deleted(extra)
        bpffs.remove_tree(pin_root)
        shutil.rmtree(work, ignore_errors=True)
