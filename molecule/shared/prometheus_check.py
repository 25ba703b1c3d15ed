# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real Prometheus on the controller against the guests' node_exporters: the collection's
rules (monitoring/prometheus/, each minute read as a few seconds) and every panel of its Grafana
dashboard (monitoring/grafana/) on what the VMs export.

The lab's guests are reached only over SSH, so each guest's node_exporter (127.0.0.1:9100 in the
guest) comes through an SSH local forward to a port of this machine's loopback; Prometheus scrapes
those, each labelled with the instance's name. Passes when every panel's query has data for every
guest (from the guests whose kernel gives what the panel shows: KERNEL_METRICS; a panel no guest's
kernel feeds must be empty), no alert fires, and the exporter's build info comes from each.
Prints a JSON summary.

    prometheus_check.py --guest NAME:KERNEL:ADDRESS:PORT:USER:KEY [--guest ...]
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from prometheus_harness import Monitoring, dashboard_queries, free_port, stop  # noqa: E402

NODE_EXPORTER = "127.0.0.1:9100"
# The exporter writes every 5 s in the lab: a minute of the rules is 6 s here, so the 5-minute
# windows hold six passes and the stale alert's window is 30 s.
SCALE = 6
RATE_INTERVAL = "30s"
# Metrics the exporter gives only from a kernel version on: {metric: (major, minor)}.
KERNEL_METRICS = {"ebpf_program_misses_total": (5, 12)}  # bpf_prog_info.recursion_misses


def tunnel(address, port, user, key):
    """ssh -N -L <local>:NODE_EXPORTER to the guest; (process, local address)."""
    local = "127.0.0.1:%d" % free_port()
    proc = subprocess.Popen(
        ["ssh", "-N", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR", "-i", key, "-p", str(port),
         "-L", "%s:%s" % (local, NODE_EXPORTER), "%s@%s" % (user, address)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    host, lport = local.split(":")
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection((host, int(lport)), timeout=1).close()
            return proc, local
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(proc)
                raise SystemExit("no SSH forward to %s:%s: %s" % (address, port, proc.stderr.read().decode()[-2000:]))
            time.sleep(0.2)


def instances(result):
    return sorted(set(r["metric"].get("instance", "") for r in result))


def from_every(result, guests):
    """``result`` when it has series from every guest, else None."""
    return result if instances(result) == guests else None


def expected(expr, kernels):
    """The guests whose kernel gives every metric ``expr`` reads."""
    return sorted(name for name, release in kernels.items()
                  if all(metric not in expr or release >= since for metric, since in KERNEL_METRICS.items()))


def check(monitoring, kernels):
    guests = sorted(kernels)
    summary = {"panels": 0, "empty": []}
    empty = []
    for title, expr in dashboard_queries(RATE_INTERVAL):
        wanted = expected(expr, kernels)
        if not wanted:
            empty.append((title, expr))
            continue
        found = monitoring.wait("data from %s for the panel %r (%s)" % (", ".join(wanted), title, expr),
                                lambda e=expr, w=wanted: from_every(monitoring.query(e), w), timeout=120)
        summary["panels"] += 1
        summary.setdefault("series", {})[title] = len(found)
    for title, expr in empty:  # every guest's kernel lacks what it shows: no series at all
        assert monitoring.query(expr) == [], (title, monitoring.query(expr))
        summary["empty"].append(title)
    monitoring.wait("no alert firing", lambda: not [a for a in monitoring.api("alerts")["alerts"]
                                                    if a["state"] == "firing"], timeout=60)
    versions = monitoring.query("ebpf_observability_exporter_build_info")
    assert instances(versions) == guests, versions
    summary["versions"] = sorted(set(v["metric"]["version"] for v in versions))
    summary["alerts"] = sorted("%s %s" % (a["labels"]["alertname"], a["state"]) for a in monitoring.api("alerts")["alerts"])
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--guest", action="append", required=True,
                        help="NAME:KERNEL:ADDRESS:SSH_PORT:USER:KEY_FILE (KERNEL: the Linux series, such as 6.1)")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="lab-prom-")
    tunnels, monitoring = [], None
    try:
        targets, kernels = {}, {}
        for spec in args.guest:
            name, kernel, address, port, user, key = spec.split(":", 5)
            proc, local = tunnel(address, port, user, key)
            tunnels.append(proc)
            targets[name] = local
            kernels[name] = tuple(int(x) for x in kernel.split(".")[:2])
        monitoring = Monitoring(work, targets=targets, scale=SCALE)
        start = time.monotonic()
        summary = check(monitoring, kernels)
        summary["seconds"] = round(time.monotonic() - start, 1)
        print(json.dumps(summary, sort_keys=True))
    finally:
        if monitoring is not None:
            monitoring.close()
        for proc in tunnels:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
