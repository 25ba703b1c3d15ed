# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The user's programs as catalogue entries of the same form as the collection's own (the
ebpf_programs role's vars; host_plan expands both alike).

Every object in the objects directory that is not one of the collection's (``ebpf_build``
builds the user's ``name.bpf.c``, in cloudflare/ebpf_exporter's layout, beside them and copies
``name.yaml`` and prebuilt objects there) becomes the entry ``name``: one variant ``default``
loading all its programs, each attached at the hook its ELF section names (an XDP program at the
interfaces its ``xdp/<interface>`` section names, another network program where the user's
``attach`` says), what it needs from
the kernel derived from those sections, and its metrics from ``name.yaml`` (for an entry with
variants: the entry's ``name.yaml``, else its first variant object's). Entries of the
user's ``ebpf_programs_catalog`` override or complete these (variants chosen per host, such as
one object for fentry hosts and another for kprobe hosts), with programs and hooks read from
their objects where they leave them out. Read on the controller, from the objects' ELF symbols.

Object names become pin names: bpffs refuses '.', and ebpf_exporter's configs are named after
files that may hold one (``cachestat-pre-kernel-5.16``), so every character other than letters,
digits, '_' and '-' becomes '_' (``cachestat-pre-kernel-5_16``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import elf_symbols
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import named_sections
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

OBJECT_SUFFIX = ".bpf.o"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
# section prefix -> (hook the planner uses, kernel features it needs: ebpf_info's facts)
_SECTION_NEEDS = {
    "xdp": ("xdp", ["xdp"]), "tc": ("tc", ["tc"]), "classifier": ("tc", ["tc"]), "tcx": ("tc", ["tcx"]),
    "tracepoint": ("auto", ["tracepoints", "perf_link"]), "tp": ("auto", ["tracepoints", "perf_link"]),
    "raw_tracepoint": ("auto", ["raw_tracepoints"]), "raw_tp": ("auto", ["raw_tracepoints"]),
    "kprobe": ("auto", ["kprobes", "perf_link"]), "kretprobe": ("auto", ["kprobes", "perf_link"]),
    "uprobe": ("auto", ["uprobes", "perf_link"]), "uretprobe": ("auto", ["uprobes", "perf_link"]),
    "tp_btf": ("auto", ["tp_btf"]), "fentry": ("auto", ["fentry"]), "fexit": ("auto", ["fentry"]),
    "fmod_ret": ("auto", ["fentry"]), "lsm": ("auto", ["fentry"]), "perf_event": ("auto", ["perf_link"]),
    "usdt": ("auto", ["uprobes", "perf_link"]),
}


def pin_name(name):
    """The name an object is pinned (and its entry known) under: see the module docstring."""
    return _UNSAFE.sub("_", name)


def section_hook(section):
    """(hook for the planner, features needed) of a program's ELF section name."""
    head = (section or "").partition("/")[0].split(".")[0]
    hook, needs = _SECTION_NEEDS.get(head, ("auto", []))
    return hook, list(needs)


def _arch_dir(objects_dir, architecture):
    if not objects_dir or not os.path.isdir(objects_dir):
        return None
    if architecture and os.path.isdir(os.path.join(objects_dir, architecture)):
        return os.path.join(objects_dir, architecture)
    arches = sorted(d for d in os.listdir(objects_dir) if os.path.isdir(os.path.join(objects_dir, d)))
    return os.path.join(objects_dir, arches[0]) if arches else None


def _describe(path):
    """{programs: {name: section}} of an object, or an error sentence."""
    try:
        programs = elf_symbols.bpf_programs(path)
    except BpfError as e:
        return None, "%s: %s" % (path, e)
    if not programs:
        return None, "%s holds no BPF program (no function in a SEC(\"...\") section)" % path
    return programs, None


def _variant_entry(variant, arch_dir, errors, where):
    """A variant with its programs, program hooks and needs filled from its object."""
    variant = dict(variant)
    obj = variant.get("object")
    if not obj:
        errors.append("%s: a variant needs object (the name of a built or prebuilt name.bpf.o)" % where)
        return None, ({}, {})
    path = os.path.join(arch_dir or "", obj + OBJECT_SUFFIX)
    if not arch_dir or not os.path.isfile(path):
        errors.append("%s: no object %s%s in the objects directory; build it with ebpf_build_sources" % (where, obj, OBJECT_SUFFIX))
        return None, ({}, {})
    programs, problem = _describe(path)
    if problem:
        errors.append("%s: %s" % (where, problem))
        return None, ({}, {})
    hooks, needs, interfaces = {}, set(variant.get("needs") or []), {}
    for program, section in programs.items():
        hooks[program], extra = section_hook(section)
        named = named_sections.xdp_interfaces(section)
        if named:
            interfaces[program] = named
        if "needs" not in variant:
            needs.update(extra)
    variant.setdefault("programs", sorted(programs))
    variant["needs"] = sorted(needs)
    return variant, (hooks, interfaces)


def _entry(name, declared, arch_dir, errors):
    """One catalogue entry from the user's declaration ({} for an object found by name)."""
    variants = declared.get("variants") or {"default": {"object": declared.get("object", name)}}
    out = {"variants": {}, "program_hooks": {}, "program_interfaces": {}, "user": True}
    for variant_name, variant in sorted(variants.items()):
        filled, found = _variant_entry(variant, arch_dir, errors, "%s (variant %s)" % (name, variant_name))
        if filled is None:
            return None
        out["variants"][variant_name] = filled
        out["program_hooks"].update(found[0])
        out["program_interfaces"].update(found[1])
    out["auto"] = list(declared.get("auto") or sorted(out["variants"]))
    network = sorted(set(h for h in out["program_hooks"].values() if h in ("xdp", "tc")))
    out["interface"] = bool(network)
    out["hooks"] = network + ["auto"]
    first = out["variants"][out["auto"][0]]["object"]
    for metrics in (declared.get("metrics_file"), os.path.join(arch_dir, name + ".yaml"), os.path.join(arch_dir, first + ".yaml")):
        if metrics and os.path.isfile(metrics):
            out["metrics_file"] = metrics
            break
    return out


def ebpf_programs_user_catalog(user_catalog, objects_dir, builtin, architecture=None):
    """{catalog: {name: entry}, errors: [...]} of the user's programs (see the module docstring).
    ``builtin`` is the collection's catalogue, whose names and objects are never the user's."""
    arch_dir = _arch_dir(objects_dir, architecture)
    builtin = builtin or {}
    builtin_objects = set(v["object"] for e in builtin.values() for v in e["variants"].values())
    declared = dict(user_catalog or {})
    errors = []
    for name in sorted(declared):
        if name in builtin:
            errors.append("ebpf_programs_catalog: %s is one of the collection's programs; choose another name" % name)
            declared.pop(name)
        elif pin_name(name) != name:
            errors.append("ebpf_programs_catalog: %s cannot name pins (bpffs refuses '.'); call it %s" % (name, pin_name(name)))
            declared.pop(name)
    claimed = set(v.get("object") for d in declared.values() for v in (d.get("variants") or {}).values())
    for filename in sorted(os.listdir(arch_dir)) if arch_dir else []:
        obj = filename[:-len(OBJECT_SUFFIX)]
        if filename.endswith(OBJECT_SUFFIX) and obj not in builtin_objects and obj not in claimed:
            declared.setdefault(pin_name(obj), {"object": obj})
    catalog = {}
    for name, entry in sorted(declared.items()):
        made = _entry(name, entry or {}, arch_dir, errors)
        if made is not None:
            catalog[name] = made
    return {"catalog": catalog, "errors": errors}
