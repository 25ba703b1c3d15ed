# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Self metrics about the configured objects' programs, under this collection's names and under
cloudflare/ebpf_exporter's (its "Built-in metrics"), so that the dashboards and alerts of either
work unchanged. In ebpf_exporter a config is one object; here it is one configured program
(object) name.

==========================================================  =====================================
``ebpf_programs_loaded{program_type}``                      pinned programs, by type
``ebpf_program_run_count_total``,                           runs and run time per program while
``ebpf_program_run_time_seconds_total``                     ``kernel.bpf_stats_enabled`` is 1
{object, program, program_type}
``ebpf_program_misses_total{object, program,                runs the kernel skipped because the
program_type}``                                             program was already running on that
                                                            CPU (bpf_prog_info.recursion_misses,
                                                            Linux 5.12+; tracing programs)
``ebpf_exporter_enabled_configs{name}``                     1 per configured object found loaded
``ebpf_exporter_ebpf_program_info{config, id, program,      1 per program (join on ``id``)
tag}``
``ebpf_exporter_ebpf_program_attached{id}``                 1 when the program has an attachment,
                                                            0 when not (see attached_family)
``ebpf_exporter_ebpf_program_run_time_seconds{id}``,        the kernel's run statistics (0 while
``ebpf_exporter_ebpf_program_run_count_total{id}``          bpf_stats_enabled is 0)
==========================================================  =====================================
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import MetricFamily

_OBJECT_LABELS = ("object", "program", "program_type")


def program_families(programs, stats_enabled):
    """Families of the pinned programs: ``programs`` is [(object name, pin name, prog_info)]."""
    loaded = MetricFamily("ebpf_programs_loaded", "BPF programs pinned by the configured objects, by program type",
                          "gauge", ("program_type",))
    misses = MetricFamily("ebpf_program_misses_total",
                          "Runs of the program the kernel skipped because it was already running on that CPU",
                          "counter", _OBJECT_LABELS)
    enabled = MetricFamily("ebpf_exporter_enabled_configs", "The set of enabled configs", "gauge", ("name",))
    info_family = MetricFamily("ebpf_exporter_ebpf_program_info", "Info about ebpf programs", "gauge",
                               ("config", "id", "program", "tag"))
    run_time_by_id = MetricFamily("ebpf_exporter_ebpf_program_run_time_seconds",
                                  "How long has the program been executing", "counter", ("id",))
    run_count_by_id = MetricFamily("ebpf_exporter_ebpf_program_run_count_total",
                                   "How many times has the program been executed", "counter", ("id",))
    labels = ("object", "program", "program_type")
    run_count = MetricFamily("ebpf_program_run_count_total", "Times the program ran since bpf stats were enabled",
                             "counter", labels)
    run_time = MetricFamily("ebpf_program_run_time_seconds_total", "Time the program ran since bpf stats were enabled",
                            "counter", labels)
    for obj, name, info in programs:
        ident = (obj, name, info["type_name"])
        prog_id = str(info["id"])
        loaded.add((info["type_name"],), 1)
        enabled.series[(obj,)] = 1
        info_family.series[(obj, prog_id, name, info["tag"])] = 1
        if "recursion_misses" in info:
            misses.add(ident, info["recursion_misses"])
        if "run_cnt" in info:
            run_time_by_id.series[(prog_id,)] = info["run_time_ns"] / 1e9
            run_count_by_id.series[(prog_id,)] = info["run_cnt"]
            if stats_enabled:
                run_count.add(ident, info["run_cnt"])
                run_time.add(ident, info["run_time_ns"] / 1e9)
    families = [loaded, misses, enabled, info_family, run_time_by_id, run_count_by_id]
    if stats_enabled:
        families.extend((run_count, run_time))
    return families


def attached_family(programs, attached_ids, complete):
    """``ebpf_exporter_ebpf_program_attached{id}``: 1 for the programs in ``attached_ids``; for
    the others 0 when ``complete`` (every kind of attachment could be listed), else no series,
    as their attachments through bpf_links cannot be seen (unknown is not 0)."""
    family = MetricFamily("ebpf_exporter_ebpf_program_attached", "Whether a program is attached", "gauge", ("id",))
    for _obj, _name, info in programs:
        if info["id"] in attached_ids:
            family.series[(str(info["id"]),)] = 1
        elif complete:
            family.series[(str(info["id"]),)] = 0
    return family
