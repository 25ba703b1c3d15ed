# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logic behind the ebpf_host module: one host converged in one run.

``present``: the declared programs are planned for this host from its probed features
(host_plan), checked (known programs, BTF, interfaces, objects built for this architecture), the
object files, unit files and the restore plan are written where their checksums differ
(host_files), bpffs is mounted, the kernel state is converged with rollback (host_converge) and
the units are enabled. ``absent``: everything the programs role put on the host is removed
(attachments, pins, units, plan, object and event files, the role's empty directories).

Nothing is written before every check has passed, and the run holds the host lock.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import platform

from ansible_collections.ebpf.observability.plugins.module_utils.backends.host_converge import HostConverge
from ansible_collections.ebpf.observability.plugins.module_utils.backends.host_account import converge_account, remove_account
from ansible_collections.ebpf.observability.plugins.module_utils.backends.host_files import HostFiles, systemd_runs
from ansible_collections.ebpf.observability.plugins.module_utils.backends.host_runtime import HostRuntime
from ansible_collections.ebpf.observability.plugins.module_utils.backends.host_plan import (
    ebpf_programs_plan, ebpf_programs_restore_plan,
)
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import capabilities
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.state import attach_events
from ansible_collections.ebpf.observability.plugins.module_utils.state.accounts import group_exists
from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_access import grant_pin_access

OBJECT_PATTERN = "*.bpf.o"
PLAN_NAME = "restore.json"


class HostBackend:
    """``params``: the ebpf_host module's options; ``contents``: {key: base64} sent so far."""

    def __init__(self, params, check_mode=False):
        self.p = params
        self.check_mode = check_mode
        self.files = HostFiles(check_mode=check_mode, contents=params.get("contents"))
        self.warnings = []
        self.plan = None
        self.engine = None

    @property
    def plan_path(self):
        return os.path.join(self.p["config_dir"], PLAN_NAME)

    def run(self):
        if os.geteuid() != 0:
            raise BpfError("loading and attaching BPF programs needs root; this runs as uid %d" % os.geteuid(),
                           hint="set become: true (the collection's playbooks do)")
        capabilities.require_bpf()
        if self.p["state"] == "absent":
            return self.absent()
        # What the host lacks of libbpf.so.1 and pyroute2 comes first: planning needs them.
        runtime = HostRuntime(self.p.get("runtime"), self.files)
        needs = runtime.needs()
        if needs:
            return {"changed": False, "needs": needs}
        runtime.apply()
        return self.present()

    # -- present ------------------------------------------------------------------------------

    def _planned(self):
        facts = features.facts()
        machine = platform.machine()
        plan = ebpf_programs_plan(self.p["programs"], self.p["catalog"], facts, machine, self.p["install_dir"])
        problems = list(plan["errors"])
        if self.p["programs"] and not facts["btf"]:
            problems.append("Linux %s runs without /sys/kernel/btf/vmlinux: the collection's programs are relocated "
                            "against the running kernel's BTF; use a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian's are)"
                            % facts["kernel_release"])
        names = set()
        if plan["interfaces"]:
            with Netlink() as nl:
                names = set(name for _index, name in nl.interfaces())
        missing = [i for i in plan["interfaces"] if i not in names]
        if missing:
            problems.append("no interface %s (this host has %s): fix the attach lists of ebpf_programs for this host" % (
                ", ".join(missing), ", ".join(sorted(names))))
        built = (self.p.get("objects") or {}).get(machine, {})
        unbuilt = [f for f in plan["files"] if f not in built]
        if unbuilt:
            problems.append("%s for %s are not among the objects on the controller: build them with the ebpf_build role "
                            "for this architecture (playbooks/site.yml does) or set ebpf_programs_objects_dir to where "
                            "they are" % (", ".join(unbuilt), machine))
        if problems:
            raise BpfError("; ".join(problems))
        self.warnings.extend(plan["warnings"])
        return plan, [dict(built[f], dest=os.path.join(self.p["install_dir"], f)) for f in plan["files"]]

    def present(self):
        if not self.p["kernel"]:
            return self.files_and_units()
        self.plan, objects = self._planned()
        specs = objects + list(self.p.get("files") or [])
        needs = self.files.missing_contents(specs)
        if needs:
            return {"changed": False, "needs": needs}
        if not self.check_mode:
            self.files.mount_bpffs(self.p["bpffs"], self.p["bpffs_options"])
        for path in (self.p["install_dir"], self.p["config_dir"]):
            self.files.directory(path)
        for spec in specs:
            self.files.file(spec)
        if self.p["prune"]:
            self.files.prune(self.p["install_dir"], OBJECT_PATTERN, self.plan["files"])
        unshipped = [os.path.basename(i["name"]) for i in self.files.items if i["step"] == "file" and i["changed"]]
        self.engine = HostConverge(self.plan, self.p["pin_root"], self.p["events_dir"], check_mode=self.check_mode,
                                   prune=self.p["prune"], unshipped=unshipped)
        if not self.check_mode or bpffs.is_bpffs(self.p["bpffs"]):
            self.engine.run()
        if self.p["restore_at_boot"]:
            restore = ebpf_programs_restore_plan(self.plan, self.p["pin_root"], self.p["events_dir"])
            self.files.text(self.plan_path, json.dumps(restore, indent=2, sort_keys=True) + "\n")
        else:
            self.files.remove(self.plan_path)
        for path in self.p.get("absent_files") or []:
            self.files.remove(path)
        self.units(enabled=self.p["restore_at_boot"])
        return self.result()

    def files_and_units(self):
        """kernel=false: the account, directories, files, pin access and units (the exporter role),
        nothing changed before the host has the content of every file that differs."""
        needs = self.files.missing_contents(self.p.get("files") or [])
        if needs:
            return {"changed": False, "needs": needs}
        if self.p.get("account"):
            converge_account(self.files, self.p["account"])
        for spec in self.p.get("directories") or []:
            if spec["create"]:
                self.files.directory(spec["path"], int(spec["mode"], 8), spec["owner"], spec["group"])
            else:
                self.files.existing_directory(spec["path"], spec["made_by"] or "the role that manages it")
        for spec in self.p.get("files") or []:
            self.files.file(spec)
        for path in self.p.get("absent_files") or []:
            self.files.remove(path)
        access = self.p.get("grant_access")
        if access and self.check_mode and not group_exists(access["group"]):
            self.files.item("access", access["pin_root"], True, "grant", changes=["group %s to be created" % access["group"]])
        elif access:
            changes = grant_pin_access(access["pin_root"], access["programs"], access["group"], self.check_mode)
            self.files.item("access", access["pin_root"], bool(changes), "grant", changes=changes)
        self.units(enabled=None)
        return self.result()

    def units(self, enabled):
        """Every unit of ``units`` enabled (``enabled``, or per unit when None), started, and
        restarted when a file of this run changed or ``restart`` says so."""
        changed = self.p["restart"] or any(i["changed"] for i in self.files.items if i["step"] in ("file", "remove"))
        for unit in self.p.get("units") or []:
            on = unit["enabled"] if enabled is None else (enabled or unit["always"])
            self.files.unit(unit["name"], enabled=on, start=on and unit["start"], stop=not on and unit["start"],
                            restart=on and unit["start"] and unit["restart"] and changed)

    # -- absent -------------------------------------------------------------------------------

    def absent(self):
        for unit in self.p.get("units") or []:
            self.files.unit(unit["name"], enabled=False, stop=unit["stop"])
        if not self.p["kernel"]:
            for path in [spec["dest"] for spec in self.p.get("files") or []] + list(self.p.get("absent_files") or []):
                self.files.remove(path)
            self.files.forget_units()
            for spec in self.p.get("directories") or []:
                if spec["create"]:
                    self.files.remove_empty_directory(spec["path"])
            if self.p.get("account"):
                remove_account(self.files, self.p["account"])
            return self.result()
        if bpffs.is_bpffs(self.p["bpffs"]) and os.path.isdir(self.p["pin_root"]):
            self.engine = HostConverge({"objects": [], "loads": [], "tc_rules": [], "attachments": []},
                                       self.p["pin_root"], self.p["events_dir"], check_mode=self.check_mode, prune=True,
                                       on_failure="continue")
            if self.engine.run()["failed"]:
                raise BpfError("cannot remove everything under %s: %s" % (self.p["pin_root"], "; ".join(self.engine.failures)))
        for spec in self.p.get("files") or []:
            self.files.remove(spec["dest"])
        for path in [self.plan_path, attach_events.events_path(self.p["events_dir"]),
                     attach_events.events_path(self.p["events_dir"]) + ".lock"] + list(self.p.get("absent_files") or []):
            self.files.remove(path)
        self.files.forget_units()
        self.files.prune(self.p["install_dir"], OBJECT_PATTERN, ())
        if self.p.get("runtime_dir"):
            HostRuntime(None, self.files).remove(self.p["runtime_dir"])
        for path in (self.p["install_dir"], self.p["config_dir"], self.p["events_dir"], self.p["pin_root"]):
            self.files.remove_empty_directory(path)
        return self.result()

    # -- result -------------------------------------------------------------------------------

    def result(self):
        items = self.files.items[:]
        if self.engine is not None:  # in the order of the run: files, the kernel steps, units
            self.warnings.extend(self.engine.warnings)
            units = [i for i in items if i["step"] == "unit"]
            items = [i for i in items if i["step"] != "unit"] + self.engine.items + units
        self.warnings.extend(self.files.warnings)
        res = {"changed": any(i["changed"] for i in items), "items": items, "systemd": systemd_runs(),
               "diff": [dict(i["diff"], before_header=i["name"], after_header=i["name"])
                        for i in items if i["changed"] and i.get("diff")]}
        if self.plan is not None:
            res["plan"] = dict((k, self.plan[k]) for k in ("objects", "loads", "tc_rules", "attachments", "interfaces",
                                                           "device_units", "files", "exporter_programs", "warnings"))
        return res
