# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's status for people: what ebpf_info reported, with the exporter's counter totals."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def _counter_totals(text):
    """{metric family: total} of a Prometheus text exposition (counters and histogram counts)."""
    try:
        from prometheus_client.parser import text_string_to_metric_families  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    totals = {}
    for family in text_string_to_metric_families(text or ""):
        if family.type not in ("counter", "histogram"):
            continue
        suffix = "_total" if family.type == "counter" else "_count"
        total = sum(s.value for s in family.samples if s.name.endswith(suffix))
        totals[family.name + ("_total" if family.type == "counter" else "")] = total
    return totals


def ebpf_programs_status(info, counters_text=None, declared_names=None):
    """A host's status from ebpf_info (and the exporter's textfile when given): {objects,
    counters, lines}; ``lines`` is the readable form of the rest."""
    attachments = {}
    for attachment in info.get("attachments", []):
        if attachment.get("kind") == "link" and attachment.get("link_type") == "xdp":
            continue  # listed as xdp too
        attachments.setdefault((attachment.get("object"), attachment.get("program")), []).append(attachment.get("description"))
    objects = []
    lines = []
    for obj in info.get("objects", []):
        programs = [{"name": p["name"], "type": p["type"], "id": p["id"], "tag": p["tag"],
                     "attached": attachments.get((obj["name"], p["name"]), [])} for p in obj.get("programs", [])]
        objects.append({"name": obj["name"], "loaded": obj.get("loaded", False), "programs": programs,
                        "maps": len(obj.get("maps", [])), "links": len(obj.get("links", [])),
                        "declared": None if declared_names is None else obj["name"] in declared_names})
        lines.append("%s: %d program(s), %d map(s)%s" % (obj["name"], len(programs), len(obj.get("maps", [])),
                                                         "" if obj.get("loaded") else " (no load record)"))
        for prog in programs:
            lines.append("  %s (%s, id %s): %s" % (prog["name"], prog["type"], prog["id"],
                                                   "; ".join(prog["attached"]) or "not attached"))
    if not objects:
        lines.append("no eBPF programs under %s" % info.get("pin_root"))
    counters = _counter_totals(counters_text) if counters_text is not None else None
    if counters:
        lines.append("counters:")
        lines.extend("  %s %s" % (name, _number(value)) for name, value in sorted(counters.items()))
    elif counters_text is not None and counters is None:
        lines.append("counters: install prometheus-client on the controller to read them")
    return {"objects": objects, "counters": counters or {}, "lines": lines}


def _number(value):
    return "%d" % value if float(value).is_integer() else "%g" % value
