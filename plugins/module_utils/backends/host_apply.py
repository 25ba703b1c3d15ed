# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ebpf-observability-restore: re-apply the declared eBPF state at boot (bpffs starts empty).

The ebpf_programs role writes the plan it applied (the declared programs expanded for this
host) as JSON and installs this command with a systemd oneshot unit. The command runs the
engine of the ebpf_host module (host_converge: the same backends as the single-purpose
modules), under the host lock. Every step is idempotent, so running it on a host that is
already in the declared state changes nothing.

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
import sys

from ansible_collections.ebpf.observability.plugins.module_utils.backends.host_converge import HostConverge
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.state.host_lock import HostLock

PLAN_FORMAT = 1
DEFAULT_PLAN = "/etc/ebpf_observability/restore.json"


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


def restore(plan, check_mode=False):
    """Apply a plan (read_plan()) through the converge engine, going on past a failed step;
    returns {changed, failed, items, steps, failures, warnings}."""
    return HostConverge(plan, plan["pin_root"], plan["events_dir"], check_mode=check_mode,
                        on_failure="continue").run()


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
