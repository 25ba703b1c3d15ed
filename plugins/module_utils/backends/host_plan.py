# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's plan: the declared list of programs expanded, per host, into the flat lists of
loads, class lists and attachments the modules apply (host_apply re-applies them at boot);
what is stale or to roll back. Every function is pure: it reads its arguments (the
declaration, the role's catalog, what ebpf_info reported) and returns data; the ebpf_programs
filters are these functions. Input problems come back as ``errors`` (one sentence each,
saying what to change) so the role's preflight can assert on them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.ebpf.observability.plugins.module_utils.backends import tc_rules_encoding as tc_rules
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.libxdp import ACTIONS as XDP_ACTIONS
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_xdp_multi import MULTIPROG

PLAN_FORMAT = 1
XDP_MODES = ("auto", "hw", "drv", "skb")
TC_DIRECTIONS = ("ingress", "egress")
TC_APIS = ("auto", "tcx", "netlink")
TRACING_HOOKS = ("auto", "tracepoint", "raw_tracepoint", "kprobe", "kretprobe", "uprobe", "uretprobe", "tp_btf", "fentry",
                 "fexit", "fmod_ret", "lsm", "perf_event", "usdt", "kprobe_multi", "kretprobe_multi", "uprobe_multi",
                 "uretprobe_multi")
DECLARED_KEYS = ("name", "attach", "rules", "variant", "programs", "replace_maps")
ATTACH_KEYS = {
    "xdp": ("hook", "interface", "mode", "mode_fallback", "multiprog", "priority", "chain_call_actions", "program", "force", "require_up"),
    "tc": ("hook", "interface", "direction", "tc_api", "tcx_position", "tcx_relative_to", "priority", "handle", "program",
           "force", "require_up"),
    "tracing": ("hook", "program", "target"),
}
_SYSTEMD_PLAIN = re.compile(r"[A-Za-z0-9:_.]")


def _listed(value):
    return ", ".join(str(v) for v in value)


def systemd_escape(text):
    """A string as one systemd unit name component (``systemd-escape``)."""
    out = []
    for index, char in enumerate(text):
        if _SYSTEMD_PLAIN.match(char) and not (index == 0 and char == "."):
            out.append(char)
        else:
            out.extend("\\x%02x" % byte for byte in char.encode("utf-8"))
    return "".join(out)


def device_unit(interface):
    """The systemd device unit of a network interface (what a unit orders itself after)."""
    return "sys-subsystem-net-devices-%s.device" % systemd_escape(interface)


_RELEASE = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?")
_CONSTRAINT = re.compile(r"^\s*(>=|<=|==|>|<)\s*(\d+(?:\.\d+){0,2})\s*$")
_COMPARE = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, "==": lambda a, b: a == b,
            ">": lambda a, b: a > b, "<": lambda a, b: a < b}


def _version(text):
    m = _RELEASE.match(text or "")
    return tuple(int(part or 0) for part in m.groups()) if m else None


def kernel_fits(release, constraint):
    """Whether kernel ``release`` (``6.1.0-28-amd64``) meets ``constraint``: comparisons joined by
    commas (``>=5.10,<5.16``); ValueError for a constraint that is not one."""
    have = _version(release)
    for part in str(constraint).split(","):
        m = _CONSTRAINT.match(part)
        if m is None:
            raise ValueError("kernel constraint %r: write comparisons such as >=5.16 or >=5.10,<5.16" % constraint)
        if have is not None and not _COMPARE[m.group(1)](have, _version(m.group(2))):
            return False
    return True


class _Planner:
    """Expands one host's declaration; collects errors and warnings instead of stopping at
    the first problem, so the operator sees every one at once."""

    def __init__(self, catalog, features, architecture, install_dir):
        self.catalog = catalog or {}
        self.features = features or {}
        self.architecture = architecture
        self.install_dir = install_dir
        self.errors = []
        self.warnings = []

    # -- variants -------------------------------------------------------------------------

    def _missing(self, variant):
        """Why a variant cannot run on this host ([] when it can)."""
        missing = ["the kernel feature '%s'" % need for need in variant.get("needs", []) if not self.features.get(need)]
        if variant.get("kernel"):
            try:
                if not kernel_fits(self.features.get("kernel_release"), variant["kernel"]):
                    missing.append("Linux %s (this host runs %s)" % (variant["kernel"], self.features.get("kernel_release")))
            except ValueError as e:
                missing.append(str(e))
        arches = variant.get("architectures")
        if arches and self.architecture not in arches:
            missing.append("a %s host (this one is %s)" % (" or ".join(arches), self.architecture))
        return missing

    def variant(self, name, entry, asked):
        """(variant name, variant) for this host, or (None, None) after recording an error."""
        variants = entry["variants"]
        asked = asked or "auto"
        if asked != "auto" and asked not in variants:
            self.errors.append("%s: unknown variant %r; choose auto or one of %s" % (name, asked, _listed(sorted(variants))))
            return None, None
        candidates = list(entry.get("auto") or sorted(variants))
        if asked != "auto":
            candidates = [asked] + [c for c in candidates if c != asked]
        reasons = []
        for candidate in candidates:
            missing = self._missing(variants[candidate])
            if not missing:
                if asked not in ("auto", candidate):
                    self.warnings.append("%s: variant %s needs %s, which this host lacks; using variant %s"
                                         % (name, asked, " and ".join(self._missing(variants[asked])), candidate))
                return candidate, variants[candidate]
            reasons.append("%s needs %s" % (candidate, " and ".join(missing)))
        self.errors.append("%s cannot run on this host: %s" % (name, "; ".join(reasons)))
        return None, None

    # -- attachments ----------------------------------------------------------------------

    def _attach_items(self, name, entry, declared, programs):
        attach = declared.get("attach")
        if attach is None:
            hooks = entry.get("program_hooks")
            if entry.get("interface") and not hooks:
                return []
            # each program at the hook its section names; network programs need an interface, which
            # an xdp/<interface> section names (one attachment per interface)
            named = entry.get("program_interfaces") or {}
            items = []
            for program in programs:
                if (hooks or {}).get(program, "auto") not in ("xdp", "tc"):
                    items.append({"program": program})
                items.extend({"program": program, "interface": ifname} for ifname in named.get(program, []))
            return items
        if not isinstance(attach, list):
            self.errors.append("%s: attach must be a list of attachments, got %r" % (name, attach))
            return []
        return attach

    def _program_for(self, name, entry, item, programs, hook):
        program = item.get("program")
        if program is None:
            if hook == "tc":
                program = entry.get("direction_programs", {}).get(item.get("direction") or "ingress")
            elif len(programs) == 1:
                program = programs[0]
        if program is None:
            self.errors.append("%s: attach item %r: name its program (one of %s)" % (name, item, _listed(programs)))
        elif program not in programs:
            self.errors.append("%s: attach item %r: program %s is not loaded; the loaded programs are %s"
                               % (name, item, program, _listed(programs)))
            program = None
        return program

    def attachment(self, name, entry, item, programs):
        """One attach item as ebpf_attach parameters, or None after recording an error."""
        if not isinstance(item, dict):
            self.errors.append("%s: attach item %r is not a mapping" % (name, item))
            return None
        hooks = entry.get("hooks") or ["auto"]
        hook = item.get("hook") or (entry.get("program_hooks") or {}).get(item.get("program")) or hooks[0]
        family = hook if hook in ("xdp", "tc") else "tracing"
        if hook not in hooks and not (family == "tracing" and "auto" in hooks and hook in TRACING_HOOKS):
            self.errors.append("%s: attach item %r: hook %s does not fit this program; use %s" % (name, item, hook, _listed(hooks)))
            return None
        unknown = sorted(set(item) - set(ATTACH_KEYS[family]))
        if unknown:
            self.errors.append("%s: attach item %r: unknown key(s) %s for the %s hook; allowed: %s"
                               % (name, item, _listed(unknown), hook, _listed(ATTACH_KEYS[family])))
            return None
        out = {"name": name, "hook": hook}
        if family in ("xdp", "tc"):
            if not item.get("interface"):
                self.errors.append("%s: attach item %r: the %s hook needs an interface" % (name, item, hook))
                return None
            out["interface"] = str(item["interface"])
        if family == "xdp" and (item.get("mode", "auto") not in XDP_MODES or item.get("multiprog", "auto") not in MULTIPROG
                                or not set(item.get("chain_call_actions") or []) <= set(XDP_ACTIONS)):
            self.errors.append("%s: attach item %r: mode must be one of %s, multiprog one of %s, chain_call_actions of %s"
                               % (name, item, _listed(XDP_MODES), _listed(MULTIPROG), _listed(XDP_ACTIONS)))
            return None
        if family == "tc":
            if item.get("direction", "ingress") not in TC_DIRECTIONS or item.get("tc_api", "auto") not in TC_APIS:
                self.errors.append("%s: attach item %r: direction must be ingress or egress, tc_api one of %s"
                                   % (name, item, _listed(TC_APIS)))
                return None
            out["direction"] = item.get("direction") or "ingress"
        program = self._program_for(name, entry, item, programs, hook)
        if program is None:
            return None
        out["program"] = program
        for key in ATTACH_KEYS[family]:
            if key not in out and item.get(key) is not None:
                out[key] = item[key]
        return out

    # -- one declared item ----------------------------------------------------------------

    def expand(self, declared, plan):
        if not isinstance(declared, dict) or not declared.get("name"):
            self.errors.append("every ebpf_programs item needs a name, got %r" % (declared,))
            return
        name = declared["name"]
        unknown = sorted(set(declared) - set(DECLARED_KEYS))
        if unknown:
            self.errors.append("%s: unknown key(s) %s; allowed: %s" % (name, _listed(unknown), _listed(DECLARED_KEYS)))
        if name in plan["objects"]:
            self.errors.append("%s is declared twice; declare each program once" % name)
            return
        entry = self.catalog.get(name)
        if entry is None:
            self.errors.append("unknown program %s; the catalogue has %s (the user's programs come from ebpf_build_sources "
                               "and ebpf_programs_catalog)" % (name, _listed(sorted(self.catalog))))
            return
        plan["objects"].append(name)
        variant_name, variant = self.variant(name, entry, declared.get("variant"))
        if variant is None:
            return
        programs = list(variant["programs"])
        subset = declared.get("programs")
        if subset is not None:
            strange = [p for p in subset if p not in programs]
            if strange or not subset:
                self.errors.append("%s (variant %s): %s; it has %s" % (name, variant_name, "unknown program(s) " + _listed(strange)
                                                                       if strange else "programs is empty (omit it to load all)", _listed(programs)))
                return
            programs = [p for p in programs if p in subset]
        filename = variant["object"] + ".bpf.o"
        plan["loads"].append({
            "name": name, "object": variant["object"], "variant": variant_name, "file": filename,
            "src": os.path.join(self.install_dir, filename),
            "programs": programs if subset is not None else None,
            "replace_maps": bool(declared.get("replace_maps", False)),
        })
        exporter = {"name": name}
        if entry.get("metrics_file"):
            exporter["metrics_file"] = entry["metrics_file"]
        if entry.get("rules"):
            class_names = self._rules(name, declared, plan)
            if class_names:
                exporter["static_maps"] = {"class": class_names}
        elif declared.get("rules") is not None:
            self.errors.append("%s takes no rules (only tc_classifier does)" % name)
        for item in self._attach_items(name, entry, declared, programs):
            att = self.attachment(name, entry, item, programs)
            if att is not None:
                plan["attachments"].append(att)
        plan["exporter_programs"].append(exporter)

    def _rules(self, name, declared, plan):
        """Adds the object's class list to the plan; returns {class id (text): name} for the
        exporter's ``class`` label, or None when the list is invalid."""
        rules = declared.get("rules") or []
        try:
            names = tc_rules.class_names(rules)
        except BpfError as e:
            self.errors.append("%s: %s" % (name, e))
            return None
        plan["tc_rules"].append({"name": name, "classes": rules})
        return dict((str(class_id), class_name) for class_id, class_name in sorted(names.items()))

    def check_attachments(self, attachments):
        """One program per hook: an interface's XDP hook, a TC direction, a tracing program."""
        seen = {}
        for att in attachments:
            key = attachment_key(att)
            if key in seen:
                self.errors.append("%s/%s and %s/%s both attach to %s; each hook takes one program of the collection"
                                   % (seen[key]["name"], seen[key]["program"], att["name"], att["program"],
                                      " ".join(str(k) for k in key if k)))
            seen[key] = att


def ebpf_programs_device_units(declared):
    """The systemd device units of the interfaces the declaration's attach lists name (what the
    restore unit waits for); known from the declaration alone, before any host is probed."""
    interfaces = set()
    for item in declared or []:
        for att in (item.get("attach") or []) if isinstance(item, dict) else []:
            if isinstance(att, dict) and att.get("interface"):
                interfaces.add(str(att["interface"]))
    return [device_unit(i) for i in sorted(interfaces)]


def attachment_key(att):
    """What identifies a hook: (xdp, interface), (tc, interface, direction), (trace, object, program)."""
    if att.get("hook") == "xdp":
        return ("xdp", att["interface"], None)
    if att.get("hook") == "tc":
        return ("tc", att["interface"], att.get("direction") or "ingress")
    return ("trace", att["name"], att["program"])


def ebpf_programs_plan(declared, catalog, features=None, architecture="x86_64", install_dir="/usr/local/lib/ebpf_observability"):
    """Expand the declared list for one host: {objects, loads, tc_rules, attachments,
    interfaces, device_units, files, exporter_programs, warnings, errors}."""
    planner = _Planner(catalog, features, architecture, install_dir)
    plan = {"format": PLAN_FORMAT, "objects": [], "loads": [], "tc_rules": [], "attachments": [], "exporter_programs": []}
    if declared is None:
        declared = []
    if not isinstance(declared, list):
        planner.errors.append("ebpf_programs must be a list of programs, got %r" % (declared,))
        declared = []
    for item in declared:
        planner.expand(item, plan)
    planner.check_attachments(plan["attachments"])
    interfaces = sorted(set(a["interface"] for a in plan["attachments"] if a.get("interface")))
    plan.update(
        interfaces=interfaces,
        device_units=[device_unit(i) for i in interfaces],
        files=sorted(set(load["file"] for load in plan["loads"])),
        warnings=planner.warnings,
        errors=planner.errors,
    )
    return plan


def ebpf_programs_restore_plan(plan, pin_root, events_dir):
    """What the restore command reads: the plan's loads, class lists and attachments with the
    pin root and event directory they apply to."""
    return {"format": PLAN_FORMAT, "pin_root": pin_root, "events_dir": events_dir,
            "loads": plan["loads"], "tc_rules": plan["tc_rules"], "attachments": plan["attachments"]}


def _info_key(attachment, pinned):
    """attachment_key() of an ebpf_info attachment, or None when it cannot be told (another
    namespace's interface, an XDP link already listed as xdp, a program no longer pinned)."""
    program = attachment.get("program")
    if program not in pinned:
        return None
    kind = "xdp" if attachment.get("dispatcher_id") else attachment.get("kind")  # a component of libxdp's dispatcher
    if kind in ("xdp", "tc") or attachment.get("link_type") == "tcx":
        if not attachment.get("interface"):
            return None
        if kind == "xdp":
            return ("xdp", attachment["interface"], None)
        direction = attachment.get("direction") or (attachment.get("attach_type_name") or "").replace("tcx_", "")
        return ("tc", attachment["interface"], direction)
    if attachment.get("link_type") == "xdp":
        return None
    return ("trace", attachment.get("object"), program)


def ebpf_programs_stale(plan, info):
    """Attachments of declared objects that the plan no longer has (an interface dropped from
    an attach list, another variant's programs): ebpf_attach state=absent parameters."""
    declared = set(plan.get("objects", []))
    planned = set(attachment_key(a) for a in plan.get("attachments", []))
    pinned = dict((o["name"], set(p["name"] for p in o.get("programs", []))) for o in info.get("objects", []))
    out = []
    for attachment in info.get("attachments", []):
        name = attachment.get("object")
        if name not in declared:
            continue
        key = _info_key(attachment, pinned.get(name, set()))
        if key is None or key in planned:
            continue
        item = {"name": name, "program": attachment["program"], "hook": "auto"}
        if key[0] in ("xdp", "tc"):
            item.update(hook=key[0], interface=key[1])
        if key[0] == "tc":
            item["direction"] = key[2]
        if item not in out:
            out.append(item)
    return out


def ebpf_programs_rollback(plan, before, attach_results=None):
    """What undoes a failed run: {unload: objects this run loaded new (they go with everything
    attached to them), detach: attachments this run made for objects that were there before}."""
    existed = set(o["name"] for o in (before or {}).get("objects", []))
    unload = [name for name in plan.get("objects", []) if name not in existed]
    detach = []
    for result in attach_results or []:
        if result.get("action") != "attach" or result.get("failed"):
            continue
        item = dict(result.get("item") or {})
        if not item or item.get("name") in unload:
            continue
        params = dict((k, item[k]) for k in ("name", "program", "interface", "direction", "target") if item.get(k) is not None)
        params["hook"] = result.get("hook") or item.get("hook") or "auto"
        detach.append(params)
    return {"unload": unload, "detach": detach}
