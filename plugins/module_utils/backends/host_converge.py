# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's kernel state converged to its plan (host_plan) in one process: the engine behind the
ebpf_host module and the restore command (host_apply).

One run reads what the kernel has under the pin root (InfoBackend), then, through the same
backends the single-purpose modules use and with the same decisions from kernel truth:

1. unloads the objects the plan no longer has (``prune``), detaching them first;
2. detaches the attachments of declared objects that the plan no longer has;
3. loads and pins every object (ProgramBackend), installs the traffic classes (TcRulesBackend)
   and attaches every program (AttachBackend, which counts its failures in the event file);
4. detaches what still runs an earlier version of a program this run reloaded and attached anew at
   another hook (another variant of the object): after the new attachment, so that the program
   counts at both for a moment, never at neither.

Every step is one item of the result: what it did (``action``), whether it changed anything, and
its before/after. ``on_failure`` says what a failed step means:

* ``rollback`` (the module): stop, undo what this run did (detach what it attached, unload what
  it loaded new; objects loaded before keep their new version), and raise BpfError naming the
  step, the kernel's answer and the rollback;
* ``continue`` (the restore command at boot): count the failure in the event file, skip the
  failed object's later steps, and apply the rest (a missing interface does not keep the tracing
  programs from running).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach import AttachBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import unpin_link
from ansible_collections.ebpf.observability.plugins.module_utils.backends.host_plan import (
    ebpf_programs_rollback, ebpf_programs_stale,
)
from ansible_collections.ebpf.observability.plugins.module_utils.backends.info import InfoBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.tc_rules import TcRulesBackend
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.state import attach_events

ATTACH_OPTIONS = ("name", "program", "hook", "interface", "mode", "mode_fallback", "multiprog", "chain_call_actions", "direction",
                  "tc_api", "tcx_position", "tcx_relative_to", "priority", "handle", "target", "force", "require_up")
DETACH_OPTIONS = ("name", "program", "hook", "interface", "direction", "target")


class StepFailed(Exception):
    """A step failed under on_failure=rollback (carries the BpfError)."""

    def __init__(self, item, error):
        Exception.__init__(self, str(error))
        self.item = item
        self.error = error


def where(params):
    """``object/program hook [on interface] [direction]`` of an attachment's parameters."""
    text = "%s/%s %s" % (params.get("name"), params.get("program"), params.get("hook") or "auto")
    if params.get("interface"):
        text += " on " + params["interface"]
    if params.get("direction"):
        text += " " + params["direction"]
    return text


class HostConverge:
    """Converges one plan ({objects, loads, tc_rules, attachments}); run() returns the result."""

    def __init__(self, plan, pin_root, events_dir, check_mode=False, prune=False, on_failure="rollback",
                 unshipped=()):
        self.plan = plan
        self.pin_root = pin_root
        self.events_dir = events_dir
        self.check_mode = check_mode
        self.prune = prune
        self.on_failure = on_failure
        self.unshipped = set(unshipped)  # object files check mode cannot load yet (not written)
        self.items = []
        self.failures = []
        self.warnings = []
        self.failed_objects = set()
        self.before = None

    # -- steps --------------------------------------------------------------------------------

    def _item(self, step, name, res, **extra):
        item = dict(step=step, name=name, changed=bool(res.get("changed")), action=res.get("action") or
                    ("none" if not res.get("changed") else step), diff=res.get("diff") or {}, **extra)
        self.items.append(item)
        return item

    def _failed(self, step, name, err, error_type=None, interface="", **extra):
        item = dict(step=step, name=name, changed=False, action="failed", failed=True, msg=str(err), **extra)
        self.items.append(item)
        self.failed_objects.add(name)
        if self.on_failure == "rollback":
            raise StepFailed(item, err)
        self.failures.append("%s %s: %s" % (step, extra.get("where") or name, err))
        if error_type and not self.check_mode:  # attach steps count their own failures
            try:
                attach_events.record(self.events_dir, interface, error_type, "restore", "%s %s: %s" % (step, name, err))
            except BpfError as e:
                self.failures.append("the attachment event file was not updated: %s" % e)

    def detach(self, params, step="detach"):
        params = dict((k, params[k]) for k in DETACH_OPTIONS if params.get(k) is not None)
        params.update(pin_root=self.pin_root, events_dir=self.events_dir, state="absent")
        backend = AttachBackend(params, check_mode=self.check_mode)
        try:
            res = backend.run()
        except BpfError as e:
            self._failed(step, params["name"], e, where=where(params))
            return None
        self.warnings.extend(backend.warnings)
        return self._item(step, params["name"], res, where=where(params), program=params.get("program"))

    def unload(self, name, step="unload"):
        try:
            backend = ProgramBackend(name, self.pin_root, check_mode=self.check_mode)
            res = backend.absent(force=True)
        except BpfError as e:
            self._failed(step, name, e)
            return None
        return self._item(step, name, res, detached=res.get("detached", []))

    def load(self, load):
        name = load["name"]
        text = "%s from %s" % (name, load["src"])
        if self.check_mode and os.path.basename(load["src"]) in self.unshipped:
            return self._item("load", name, {"changed": True, "action": "load"}, src=load["src"], where=text,
                              note="the object file is not on the host yet")
        try:
            backend = ProgramBackend(name, self.pin_root, check_mode=self.check_mode)
            res = backend.present(load["src"], programs=load.get("programs"), replace_maps=bool(load.get("replace_maps")))
        except BpfError as e:
            missing = not os.path.exists(load["src"])
            self._failed("load", name, e, "program_missing" if missing else "kernel_error", src=load["src"], where=text)
            return None
        self.warnings.extend(backend.warnings)
        return self._item("load", name, res, src=load["src"], where=text, programs=[p["name"] for p in res["programs"]])

    def _new_in_check_mode(self, name):
        """An object this check run would load first: its maps and programs are not pinned yet."""
        return self.check_mode and name not in set(o["name"] for o in self.before["objects"])

    def install_classes(self, item):
        name = item["name"]
        if name in self.failed_objects:
            return None
        if self._new_in_check_mode(name):
            return self._item("classes", name, {"changed": True, "action": "install"}, rules=len(item.get("classes") or []))
        try:
            backend = TcRulesBackend(name, self.pin_root, check_mode=self.check_mode)
            try:
                res = backend.apply_classes(item.get("classes") or [])
            finally:
                backend.close()
        except BpfError as e:
            self._failed("classes", name, e, "kernel_error")
            return None
        return self._item("classes", name, res, rules=res["rules"], generation=res["generation"],
                          class_names=res["class_names"])

    def attach(self, attachment):
        name = attachment["name"]
        if name in self.failed_objects:
            return None
        params = dict((k, attachment[k]) for k in ATTACH_OPTIONS if attachment.get(k) is not None)
        if self._new_in_check_mode(name):
            return self._item("attach", name, {"changed": True, "action": "attach"}, where=where(params),
                              program=params.get("program"), attachment={})
        params.update(pin_root=self.pin_root, events_dir=self.events_dir, state="present")
        backend = AttachBackend(params, check_mode=self.check_mode)
        try:
            res = backend.run()  # counts its own failures in the event file
        except BpfError as e:
            self._failed("attach", name, e, where=where(params), program=params.get("program"), params=params)
            return None
        self.warnings.extend(backend.warnings)
        attached = res.get("attachment") or {}
        return self._item("attach", name, res, where=where(params), program=params.get("program"), params=params,
                          hook=res.get("hook"), attachment=attached,
                          xdp_mode=attached.get("mode"), tc_api=attached.get("tc_api"))

    # -- the run ------------------------------------------------------------------------------

    def _steps(self):
        declared = list(self.plan.get("objects") or [load["name"] for load in self.plan.get("loads", [])])
        if self.prune:
            gone = [o["name"] for o in self.before["objects"] if o["name"] not in declared]
            for params in ebpf_programs_stale({"objects": gone, "attachments": []}, self.before):
                self.detach(params, step="prune_detach")
            for name in gone:
                self.unload(name, step="prune_unload")
        for params in ebpf_programs_stale(dict(self.plan, objects=declared), self.before):
            self.detach(params)
        for load in self.plan.get("loads", []):
            self.load(load)
        for item in self.plan.get("tc_rules", []):
            self.install_classes(item)
        for attachment in self.plan.get("attachments", []):
            self.attach(attachment)
        self.detach_other_hooks()

    def detach_other_hooks(self):
        """Step 4: the links of reloaded objects that run an earlier version of a program attached
        in this run (an attachment at the same hook replaces its link; one at another hook does not)."""
        reloaded = set(i["name"] for i in self.items if i["step"] == "load" and i["changed"] and not i.get("failed"))
        attached = set((i["name"], i.get("program")) for i in self.items if i["step"] == "attach" and not i.get("failed"))
        if self.check_mode or not reloaded:
            return
        info = InfoBackend(self.pin_root, gather=("objects",))
        owners = info.owners()
        for obj in info.run()["objects"]:
            current = dict((p["name"], p["id"]) for p in obj["programs"])
            for link in obj["links"] if obj["name"] in reloaded else []:
                owner, program = owners.get(link["prog_id"], (None, None))
                if owner != obj["name"] or current.get(program, link["prog_id"]) == link["prog_id"] \
                        or (owner, program) not in attached:
                    continue
                where = "%s %s: %s link %s" % (owner, program, link["type"], link["name"])
                try:
                    unpin_link(link["pin"], "the %s link of the earlier %s" % (link["type"], program))
                except BpfError as e:
                    self._failed("detach", owner, e, where=where, program=program)
                    continue
                self._item("detach", owner, {"changed": True, "action": "detach"}, where=where, program=program,
                           attachment={})

    def run(self):
        self.before = InfoBackend(self.pin_root, gather=("objects", "attachments")).run()
        try:
            self._steps()
        except StepFailed as failed:
            self.rollback(failed)
        return self.result()

    def rollback(self, failed):
        """Undo this run's attachments and new loads, then raise the failure with what was undone."""
        results = [{"action": "attach", "item": i["params"], "hook": i.get("hook")}
                   for i in self.items if i["step"] == "attach" and i["changed"] and not i.get("failed")]
        undo = ebpf_programs_rollback(self.plan, self.before, results) if not self.check_mode else {"unload": [], "detach": []}
        self.on_failure = "continue"  # a problem while undoing is reported, not raised
        problems = []
        for params in undo["detach"]:
            if self.detach(params, step="rollback_detach") is None:
                problems.append(self.failures[-1])
        for name in undo["unload"]:
            if os.path.isdir(os.path.join(self.pin_root, name)) and self.unload(name, step="rollback_unload") is None:
                problems.append(self.failures[-1])
        item = failed.item
        err = BpfError(
            "%s %s failed: %s. Rolled back to the state before this run: detached %d attachment(s) made by it, "
            "unloaded %s (objects that were loaded before keep their new version)%s" % (
                item["step"], item.get("where") or item["name"], failed.error, len(undo["detach"]),
                ", ".join(undo["unload"]) or "nothing",
                (". Rollback problems: " + "; ".join(problems)) if problems else ""),
            log=failed.error.log)
        err.items = self.items
        raise err

    def result(self):
        return {"changed": any(i["changed"] for i in self.items), "failed": bool(self.failures),
                "items": self.items, "failures": self.failures, "warnings": self.warnings,
                "steps": [self.line(i) for i in self.items]}

    @staticmethod
    def line(item):
        """One readable line of an item (the restore command prints them)."""
        text = "%s %s: %s" % (item["step"], item.get("where") or item["name"], item["action"])
        return text + ("" if item["changed"] or item.get("failed") else " (unchanged)")
