"""The collection's Prometheus rules and Grafana dashboard against a real Prometheus server
scraping a real node_exporter whose textfile the exporter writes, on this host (the lab VMs'
kernels are covered by the exporter's own tests; the rules only see metric names and labels).

The collection's four objects are loaded and attached inside a network namespace of the test's
own, traffic crosses its veth pair (UDP to a closed port: packets per interface and class, and
drops by reason), one attach fails on purpose, the exporter runs every second, and then: every
dashboard panel's query returns data, the stale-exporter alert fires when the exporter stops
and resolves when it runs again."""
import os
import subprocess
import tempfile
import shutil
import threading

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach import AttachBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.tc_rules import TcRulesBackend
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from exporter_harness import REPO, Deployment, build_programs, load, send_udp
from netns import ip, veth_netns_pair
from prometheus_harness import Monitoring, dashboard_queries, stop

OBJECTS = ("xdp_counter", "tc_classifier", "syscall_latency", "net_tracepoints")


def deploy(deployment, veth):
    """The objects loaded and attached, a traffic class, and one failed attach (an event)."""
    built = build_programs()
    for name in OBJECTS:
        load(deployment, built, name)
    for params in ({"name": "xdp_counter", "program": "xdp_counter", "interface": veth.ifname, "mode": "skb"},
                   {"name": "tc_classifier", "program": "tc_classify_egress", "interface": veth.ifname,
                    "direction": "egress"},
                   {"name": "syscall_latency", "program": "syscall_enter_tp"},
                   {"name": "syscall_latency", "program": "syscall_exit_tp"},
                   {"name": "net_tracepoints", "program": "skb_kfree"},
                   {"name": "net_tracepoints", "program": "net_rx"},
                   {"name": "net_tracepoints", "program": "net_tx"}):
        assert AttachBackend(dict(params, pin_root=deployment.pin_root, events_dir=deployment.events_dir)).run()["changed"]
    TcRulesBackend("tc_classifier", deployment.pin_root).apply_classes([{"name": "icmp", "id": 1, "proto": "icmp"}])
    with pytest.raises(BpfError):  # loopback has no offload: counted in the event file
        AttachBackend({"name": "xdp_counter", "program": "xdp_counter", "interface": "lo", "mode": "hw",
                       "pin_root": deployment.pin_root, "events_dir": deployment.events_dir}).run()
    deployment.configure([{"name": name, "metrics_file": os.path.join(REPO, "bpf", name + ".yaml")}
                          for name in OBJECTS])


def traffic(veth, done):
    while not done.wait(0.2):
        send_udp(veth, 5)


@pytest.mark.playbook
def test_dashboard_and_alerts_against_a_real_prometheus(pin_root):
    work = tempfile.mkdtemp(prefix="rel-prom-")
    os.chmod(work, 0o755)
    done = threading.Event()
    exporter = monitoring = None
    try:
        with veth_netns_pair("rel-pm", addresses=True) as veth:  # this thread's namespace meanwhile
            ip("-n", veth.ns, "link", "set", "lo", "up")
            deployment = Deployment(pin_root, work)
            deploy(deployment, veth)
            sender = threading.Thread(target=traffic, args=(veth, done), daemon=True)
            sender.start()
            exporter = subprocess.Popen(deployment.command("--interval", "1"), stderr=subprocess.PIPE)
            monitoring = Monitoring(work, deployment.textfile_dir)

            queries = dashboard_queries()
            assert len(queries) >= 15
            for title, expr in queries:
                monitoring.wait("data for the panel %r (%s)" % (title, expr), lambda e=expr: monitoring.query(e))
            # The alert's window is 5 s here (5 min on a fleet): a series that has just appeared has
            # one sample, no change yet, so the alert may be pending (or, a pass delayed on a loaded
            # host, firing) for a moment; while the exporter runs it must clear.
            monitoring.wait("EbpfExporterStale clear while the exporter runs",
                            lambda: monitoring.alert_state("EbpfExporterStale") is None)
            assert monitoring.wait("the failed attach alert", lambda: monitoring.alert_state("EbpfAttachErrors")) == "firing"

            stop(exporter)
            monitoring.wait("EbpfExporterStale firing", lambda: monitoring.alert_state("EbpfExporterStale") == "firing")
            exporter = subprocess.Popen(deployment.command("--interval", "1"), stderr=subprocess.PIPE)
            monitoring.wait("EbpfExporterStale resolved", lambda: monitoring.alert_state("EbpfExporterStale") is None)
            version = monitoring.query("ebpf_observability_exporter_build_info")[0]["metric"]["version"]
            assert version and monitoring.query("ebpf_exporter_ebpf_program_attached == 1")
    finally:
        done.set()
        for proc in (exporter,):
            if proc is not None:
                stop(proc)
        if monitoring is not None:
            monitoring.close()
        shutil.rmtree(work, ignore_errors=True)
