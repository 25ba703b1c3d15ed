# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ebpf-observability-restore: re-apply the declared eBPF state at boot (bpffs starts empty).

The ebpf_programs role writes the plan it applied (the declared programs expanded for this
host) as JSON and installs this command with a systemd oneshot unit. The command goes through
the same backends as the modules: ProgramBackend loads and pins (ebpf_program),
TcRulesBackend installs tc_classifier's classes (ebpf_tc_rules), AttachBackend attaches
(ebpf_attach). Every step is idempotent, so running it on a host
that is already in the declared state changes nothing.

A step that fails does not stop the others (an interface that is missing does not keep the
tracing programs from running). Each failure is counted in the attachment event file, which the
exporter publishes as ``ebpf_attachment_errors_total``, and the command exits with status 1, so
the unit shows as failed in ``systemctl status``.

Plan format (``format`` 1)::

    {"format": 1, "pin_root": "/sys/fs/bpf/ebpf_observability",
     "events_dir": "/var/lib/ebpf_observability",
     "loads": [{"name": "xdp_counter", "src": "/usr/local/lib/ebpf_observability/xdp_counter.bpf.o",
                "programs": null, "replace_maps": false}],
     "tc_rules": [{"name": "tc_classifier", "classes": [{"name": "web", "id": 1, "proto": "tcp"}]}],
     "attachments": [{"name": "xdp_counter", "program": "xdp_counter", "hook": "xdp",
                      "interface": "eth0", "mode": "auto"}]}
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import json
import os
import sys

from ansible_collections.ebpf.observability.plugins.module_utils.state import attach_events
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach import AttachBackend
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.tc_rules import TcRulesBackend
from ansible_collections.ebpf.observability.plugins.module_utils.state.host_lock import HostLock

PLAN_FORMAT = 1
DEFAULT_PLAN = "/etc/ebpf_observability/restore.json"
ATTACH_OPTIONS = ("name", "program", "hook", "interface", "mode", "mode_fallback", "direction", "tc_api",
                  "priority", "handle", "target", "force", "require_up")


def read_plan(path):
    """The plan at ``path``, checked; BpfError when it is missing or not a plan."""
    try:
        with open(path) as f:
            plan = json.load(f)
    except (IOError, OSError) as e:
        raise BpfError("cannot read the restore plan %s" % path, errno=e.errno,
                       hint="the ebpf_programs role writes it; run the playbook again")
    except ValueError as e:
        raise BpfError("the restore plan %s is not JSON: %s" % (path, e), hint="run the playbook again to rewrite it")
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise BpfError("%s is not a restore plan of format %d" % (path, PLAN_FORMAT),
                       hint="the command and the plan come from different versions; run the playbook again")
    for key in ("pin_root", "events_dir"):
        if not isinstance(plan.get(key), str):
            raise BpfError("the restore plan %s has no %s" % (path, key))
    for key in ("loads", "tc_rules", "attachments"):
        if not isinstance(plan.get(key, []), list):
            raise BpfError("the restore plan %s: %s must be a list" % (path, key))
    return plan


class Restore:
    """Applies one plan; ``steps`` and ``failures`` say what happened (one line each)."""

    def __init__(self, plan, check_mode=False):
        self.plan = plan
        self.pin_root = plan["pin_root"]
        self.events_dir = plan["events_dir"]
        self.check_mode = check_mode
        self.changed = False
        self.steps = []
        self.failures = []
        self.warnings = []
        self.failed_objects = set()

    def _fail(self, what, err, error_type="kernel_error", interface=""):
        """A load or class list step failed: report it and count it in the event file."""
        self.failures.append("%s: %s" % (what, err))
        if self.check_mode:
            return
        try:
            attach_events.record(self.events_dir, interface, error_type, "restore", "%s: %s" % (what, err))
        except BpfError as e:
            self.failures.append("the attachment event file was not updated: %s" % e)

    def _step(self, text, changed):
        self.changed = self.changed or changed
        self.steps.append("%s%s" % (text, "" if changed else " (unchanged)"))

    def load(self, load):
        name = load["name"]
        try:
            backend = ProgramBackend(name, self.pin_root, check_mode=self.check_mode)
            res = backend.present(load["src"], programs=load.get("programs"), replace_maps=bool(load.get("replace_maps")))
        except BpfError as e:
            self.failed_objects.add(name)
            missing = not os.path.exists(load["src"])
            self._fail("load %s from %s" % (name, load["src"]), e, "program_missing" if missing else "kernel_error")
            return
        self.warnings.extend(backend.warnings)
        self._step("load %s: %d program(s) pinned" % (name, len(res["programs"])), res["changed"])

    def install_classes(self, item):
        name = item["name"]
        if name in self.failed_objects:
            return
        try:
            backend = TcRulesBackend(name, self.pin_root, check_mode=self.check_mode)
            try:
                res = backend.apply_classes(item.get("classes") or [])
            finally:
                backend.close()
        except BpfError as e:
            self._fail("install the traffic classes of %s" % name, e)
            return
        self._step("classes of %s: %d rule(s), generation %d" % (name, res["rules"], res["generation"]), res["changed"])

    def attach(self, attachment):
        if attachment["name"] in self.failed_objects:
            return
        params = dict((k, attachment[k]) for k in ATTACH_OPTIONS if attachment.get(k) is not None)
        params.update(pin_root=self.pin_root, events_dir=self.events_dir, state="present")
        where = "%s/%s %s%s" % (attachment["name"], attachment["program"], attachment.get("hook") or "auto",
                                " on " + attachment["interface"] if attachment.get("interface") else "")
        backend = AttachBackend(params, check_mode=self.check_mode)
        try:
            res = backend.run()  # counts its own failures in the event file
        except BpfError as e:
            self.failures.append("attach %s: %s" % (where, e))
            return
        self.warnings.extend(backend.warnings)
        self._step("attach %s: %s" % (where, res["action"]), res["changed"])

    def run(self):
        for load in self.plan.get("loads", []):
            self.load(load)
        for item in self.plan.get("tc_rules", []):
            self.install_classes(item)
        for attachment in self.plan.get("attachments", []):
            self.attach(attachment)
        return self.result()

    def result(self):
        return {"changed": self.changed, "failed": bool(self.failures), "steps": self.steps,
                "failures": self.failures, "warnings": self.warnings}


def restore(plan, check_mode=False):
    """Apply a plan (read_plan()); returns {changed, failed, steps, failures, warnings}."""
    return Restore(plan, check_mode=check_mode).run()


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="ebpf-observability-restore",
        description="Load, pin and attach the eBPF programs the ebpf_programs role declared for this host "
                    "(run at boot by ebpf-observability-restore.service; idempotent).")
    parser.add_argument("--plan", default=DEFAULT_PLAN, help="the plan the role wrote (default %(default)s)")
    parser.add_argument("--check", action="store_true", help="only report what would change")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser.parse_args(argv)


def main(argv=None):
    """The command: 0 when every step succeeded, 1 when one failed, 2 when the plan is unusable."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        plan = read_plan(args.plan)
        if args.check:
            result = restore(plan, check_mode=True)
        else:
            with HostLock("ebpf-observability-restore"):
                result = restore(plan)
    except BpfError as e:
        sys.stderr.write("ebpf-observability-restore: %s\n" % e)
        return 2
    if args.json:
        sys.stdout.write(json.dumps(result, indent=1, sort_keys=True) + "\n")
    else:
        sys.stdout.write("".join("%s\n" % line for line in result["steps"]))
        sys.stderr.write("".join("warning: %s\n" % line for line in result["warnings"]))
        sys.stderr.write("".join("failed: %s\n" % line for line in result["failures"]))
        sys.stdout.write("ebpf-observability-restore: %d step(s), %d failure(s)%s\n" % (
            len(result["steps"]), len(result["failures"]), ", changes made" if result["changed"] and not args.check else ""))
    return 1 if result["failed"] else 0
