"""The Prometheus rules and the Grafana dashboard the collection ships (monitoring/): promtool
(Debian's prometheus package) checks the rules and runs their unit tests
(tests/prometheus/ebpf_observability.rules_test.yml); every recorded series a panel reads is
recorded by the rules; the alerts are those monitoring/README.md lists.
tests/integration/test_prometheus_live.py runs them against a real server."""
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(REPO, "monitoring", "prometheus", "ebpf_observability.rules.yml")
RULES_TEST = os.path.join(REPO, "tests", "prometheus", "ebpf_observability.rules_test.yml")
DASHBOARD = os.path.join(REPO, "monitoring", "grafana", "ebpf_observability.json")
ALERTS = {"EbpfExporterStale", "EbpfExporterSourceErrors", "EbpfAttachErrors", "EbpfProgramNotAttached",
          "EbpfMapReadErrors", "EbpfProgramMisses", "EbpfSeriesLimitExceeded"}


def promtool(*args, cwd=REPO):
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed (scripts/setup.sh installs Debian's prometheus package)")
    out = subprocess.run([binary] + list(args), cwd=cwd, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def rules():
    with open(RULES, encoding="utf-8") as f:
        return [rule for group in yaml.safe_load(f)["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules():
    assert "SUCCESS: %d rules found" % len(rules()) in promtool("check", "rules", RULES)


def test_promtool_runs_the_rules_unit_tests():
    assert "SUCCESS" in promtool("test", "rules", os.path.basename(RULES_TEST), cwd=os.path.dirname(RULES_TEST))


def test_every_alert_is_there_and_unit_tested():
    alerts = set(rule["alert"] for rule in rules() if "alert" in rule)
    assert alerts == ALERTS
    with open(RULES_TEST, encoding="utf-8") as f:
        tested = set(case["alertname"] for test in yaml.safe_load(f)["tests"] for case in test.get("alert_rule_test", ()))
    assert tested == ALERTS - {"EbpfSeriesLimitExceeded"}
    with open(os.path.join(REPO, "monitoring", "README.md"), encoding="utf-8") as f:
        assert set(re.findall(r"^\| `(Ebpf[A-Za-z]+)` \|", f.read(), re.M)) == ALERTS


def test_the_dashboard_reads_what_the_rules_record():
    with open(DASHBOARD, encoding="utf-8") as f:
        dashboard = json.load(f)
    recorded = set(rule["record"] for rule in rules() if "record" in rule)
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 15 and len(set(p["id"] for p in dashboard["panels"])) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert 'instance=~"$instance"' in target["expr"], panel["title"]
            for name in re.findall(r"\b[a-z_]+:[a-z_0-9]+:[a-z_0-9]+\b", target["expr"]):
                assert name in recorded, (panel["title"], name)
