"""A real Prometheus server (Debian's prometheus package) and node_exporter, run by a test on
127.0.0.1 with a configuration and data directory of its own: scrape and rule evaluation every
second, and the collection's rules (monitoring/prometheus/) with their minutes read as seconds
(or a few seconds each), so that what takes minutes on a fleet takes seconds here. The dashboard's
queries (monitoring/grafana/) with Grafana's variables set to every host."""
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import yaml

from bpf_objects import REPO

RULES = os.path.join(REPO, "monitoring", "prometheus", "ebpf_observability.rules.yml")
DASHBOARD = os.path.join(REPO, "monitoring", "grafana", "ebpf_observability.json")
GRAFANA_VARIABLES = {"$instance": ".*"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def minutes_as_seconds(text, scale=1):
    """A rule's durations (``5m``, ``for: 1m``) read as ``scale`` seconds a minute."""
    return re.sub(r"\b(\d+)m\b", lambda m: "%ds" % (int(m.group(1)) * scale), text)


def scaled_rules(path, scale=1):
    """The collection's rules with every minute made ``scale`` seconds, written to ``path``."""
    with open(RULES, encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["expr"] = minutes_as_seconds(rule["expr"], scale)
            if "for" in rule:
                rule["for"] = minutes_as_seconds(rule["for"], scale)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(rules, f)
    return path


def dashboard_queries(rate_interval="5s"):
    """[(panel title, PromQL)] of every panel, Grafana's variables replaced."""
    with open(DASHBOARD, encoding="utf-8") as f:
        panels = json.load(f)["panels"]
    out = []
    for panel in panels:
        for target in panel.get("targets", ()):
            expr = target["expr"]
            for variable, value in dict(GRAFANA_VARIABLES, **{"$__rate_interval": rate_interval}).items():
                expr = expr.replace(variable, value)
            out.append((panel["title"], expr))
    return out


def wait_http(url, proc, what, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(url, timeout=1).read()
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("%s did not come up: %s" % (what, proc.stderr.read().decode()[-3000:]))
            time.sleep(0.1)


def start(argv, url, what):
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_http(url, proc, what)
    except AssertionError:
        stop(proc)
        raise
    return proc


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Monitoring:
    """Prometheus under ``work`` scraping a node_exporter of its own that reads ``textfile_dir``,
    or the node_exporters at ``targets`` ({instance label: host:port}) when given."""

    def __init__(self, work, textfile_dir=None, targets=None, scale=1):
        for tool in ("prometheus",) + (() if targets else ("prometheus-node-exporter",)):
            if shutil.which(tool) is None:
                raise AssertionError("%s is not installed (scripts/setup.sh installs it)" % tool)
        self.procs = []
        prom_port = free_port()
        self.node = None if targets else "127.0.0.1:%d" % free_port()
        self.url = "http://127.0.0.1:%d" % prom_port
        static = [{"targets": [address], "labels": {"instance": name}} for name, address in sorted((targets or {}).items())]
        scrape = {"job_name": "node", "static_configs": static or [{"targets": [self.node]}]}
        if targets:  # node_exporters of emulated guests, behind SSH: their textfile collector only, time to answer
            scrape.update(params={"collect[]": ["textfile"]}, scrape_interval="%ds" % scale, scrape_timeout="%ds" % scale)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [scaled_rules(os.path.join(work, "rules.yml"), scale)],
            "scrape_configs": [scrape],
        }
        with open(os.path.join(work, "prometheus.yml"), "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f)
        try:
            if self.node:
                self.procs.append(start(
                    ["prometheus-node-exporter", "--web.listen-address=" + self.node, "--collector.disable-defaults",
                     "--collector.textfile", "--collector.textfile.directory=" + textfile_dir],
                    "http://%s/metrics" % self.node, "node_exporter"))
            self.procs.append(start(
                ["prometheus", "--config.file=" + os.path.join(work, "prometheus.yml"),
                 "--storage.tsdb.path=" + os.path.join(work, "data"), "--web.listen-address=127.0.0.1:%d" % prom_port],
                self.url + "/-/ready", "prometheus"))
        except AssertionError:
            self.close()
            raise

    def close(self):
        for proc in reversed(self.procs):
            stop(proc)

    def api(self, path, **params):
        url = "%s/api/v1/%s?%s" % (self.url, path, urllib.parse.urlencode(params))
        answer = json.loads(urllib.request.urlopen(url, timeout=10).read())
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def alert_state(self, name):
        """'firing', 'pending' or None of the alert ``name`` (any labels)."""
        states = [a["state"] for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name]
        return "firing" if "firing" in states else (states[0] if states else None)

    def wait(self, what, predicate, timeout=60):
        """Poll ``predicate`` every 0.5 s until it returns something true; that value."""
        deadline = time.monotonic() + timeout
        while True:
            found = predicate()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for " + what)
            time.sleep(0.5)
