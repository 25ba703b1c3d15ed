# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exporter: one pass reads every configured map and writes one Prometheus textfile.

A pass (:meth:`Exporter.collect`) does, for each configured program (exporter.config):

* every metric of its metrics config reads the map pinned as ``<pin_dir>/maps/<metric>`` (or its ``map``),
  opened read-only (BPF_F_RDONLY) and read with BPF_MAP_LOOKUP_BATCH; the map's key and value
  sizes are checked against the metric's labels; MetricsCollector turns the entries into
  families as cloudflare/ebpf_exporter does (metric names ``ebpf_exporter_<metric>``);
* a ``perf_event_array`` counter counts the events of the perf event array pinned there as they
  arrive (perf_events: continuously in the long-running exporter, what is pending at a
  ``--once`` pass), with ``dropped_perf_event_map_events_<metric>`` for those the kernel lost;
* the programs pinned in ``<pin_dir>/progs/`` give the self metrics below.

A map that cannot be opened, read or decoded is left out and counted in
``ebpf_exporter_map_errors_total{program, map}``; the other maps are exported all the same.
A problem is logged when it first appears, when its message changes and when it clears, not at
every pass. Collectors and their label caches live as long as the Exporter, so a long-running
exporter decodes each distinct label value once.

Self metrics (the programs' own ones, under this collection's names and ebpf_exporter's, are
listed in self_metrics):

==================================================  ==============================================
``ebpf_programs_attached{interface,program_type}``  attachments of the configured objects'
                                                    programs (XDP, TC, bpf_links; ``interface``
                                                    is empty for tracepoints)
``ebpf_attachment_errors_total{interface,           failed attach attempts, from ebpf_attach's
error_type}``                                       event file (attach_events)
``ebpf_exporter_bpf_stats_enabled``                 that sysctl (0 or 1)
``ebpf_exporter_last_success_timestamp_seconds``    end of the last pass that read every map
                                                    (0 until one did)
``ebpf_exporter_run_duration_seconds``              how long this pass took to read and decode
``ebpf_exporter_map_errors_total{program,map}``     maps that could not be read, since start
``ebpf_exporter_source_errors_total{source}``       self-metric sources that failed, since start
                                                    (``programs``, ``attachments``,
                                                    ``link_pins``, ``attach_events``)
``ebpf_exporter_metric_series{config, metric}``     series (label sets) of each metric last read
``ebpf_exporter_series_limit_exceeded_total{config,  passes that left a metric out for having more
metric}``                                           series than ``max_series_per_metric``
``ebpf_exporter_decoder_errors_total{config,        entries left out by a failing decoder, since
metric, decoder}``                                  start, and ``{config}`` at 0 for each config
                                                    as in ebpf_exporter (decoder_errors_family)
==================================================  ==============================================

An attachment event file that cannot be read or is damaged is logged and counted under
``source="attach_events"``; a long-running exporter keeps exporting the counts it last read, and
``--once`` (a fresh process, no earlier counts) exports the family without series and exits 1.

Attachments are looked up in the exporter's own network namespace. Listing bpf_links needs
CAP_SYS_ADMIN; without it the XDP and TC attachments made over netlink are counted, and the
bpf_links (TCX, tracing) the objects' link pins name (link_pins; ``source="link_pins"`` counts
an object whose ``links/`` cannot be listed), and ``ebpf_exporter_ebpf_program_attached`` has
no series for a program none of those attach (a foreign tool's unpinned link is not seen).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import logging
import os
import time

from ansible_collections.ebpf.observability.plugins.module_utils.state import attach_events
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import attachments
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.state.atomic_file import write_atomic
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.decoders import Decoders
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.build_info import build_info_family
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import (
    DecoderErrors, MapColumns, MapSnapshot, MetricFamily, decoder_errors_family,
)
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.link_pins import pinned_link_attachments
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.perf_events import PerfCounters
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.self_metrics import (
    attached_family, program_families,
)
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.collector import MetricsCollector
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.text_format import TextRenderer
from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_state import MAPS_DIR, PROGS_DIR
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.value_fields import map_name
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.map_reads import read_pinned
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.slot_entries import slot_entries

BPF_STATS_SYSCTL = "/proc/sys/kernel/bpf_stats_enabled"

LOG = logging.getLogger("ebpf_observability.exporter")


def read_bpf_stats_enabled(path=BPF_STATS_SYSCTL):
    """Whether the kernel counts program run time and runs (kernel.bpf_stats_enabled = 1)."""
    try:
        with open(path) as f:
            return f.read().strip() == "1"
    except (IOError, OSError):
        return False


ARRAY_MAP_TYPES = ("array", "percpu_array")


def read_metric_map(collector, metric, path, skip_zero_array_entries=False, reads=None):
    """The entries of the map pinned at ``path`` for ``metric`` (and of its ``slots`` array); BpfError
    when it does not fit. Every index of an array map is an entry, zero or not, as in ebpf_exporter;
    ``skip_zero_array_entries`` leaves out those zero on every CPU. ``reads``: see read_pinned."""
    info, count, keys, values = read_pinned(path, reads)
    percpu = sc.is_percpu_map_type(info["type"])
    collector.check_map(metric, info["key_size"], info["value_size"], percpu)
    columns = MapColumns(count, keys, values, info["key_size"], info["value_size"], percpu)
    slots = getattr(collector.plans[metric].metric, "slots", None)
    if skip_zero_array_entries and info["type_name"] in ARRAY_MAP_TYPES:
        zero = bytes(len(values) // count) if count else b""
        columns = MapSnapshot([entry for entry in columns.entries if entry[1] != zero], info["value_size"], percpu)
    if slots is not None:
        extra = slot_entries(slots, os.path.dirname(path), info["key_size"], info["value_size"], reads)
        return MapSnapshot(columns.entries + extra, info["value_size"], percpu)
    return columns


def pinned_programs(pin_dir):
    """[(pin name, prog_info)] of the programs pinned in ``<pin_dir>/progs``, opened read-only."""
    progs_dir = os.path.join(pin_dir, PROGS_DIR)
    found = []
    for name in bpffs.list_pins(progs_dir):
        with sc.obj_get(os.path.join(progs_dir, name), sc.BPF_F_RDONLY) as fd:
            found.append((name, sc.prog_info(fd)))
    return found


def _map_problem(program, path, err):
    """What to tell the operator about a map that could not be read."""
    if err.errno == errno.ENOENT:
        if not os.path.isdir(program.pin_dir):
            return "program %s is not loaded (nothing under %s): load it with ebpf_program name=%s" % (
                program.name, program.pin_dir, program.name)
        return "no map is pinned at %s: the object has no map named like this metric" % path
    if err.errno == errno.EACCES:
        return "%s; give the exporter's group read access to the pins (ebpf-observability-exporter " \
               "--grant-access, run as root; the ebpf_exporter role does this)" % err
    return str(err)


class Exporter:
    """Turns the configured maps into one textfile; keep one per process (caches live here)."""

    def __init__(self, config, decoders=None, clock=time.time, bpf_stats_path=BPF_STATS_SYSCTL):
        self.config = config
        self.decoders = decoders if decoders is not None else Decoders(syscall_names=config.syscall_names)
        self.decoder_errors = {}  # program name -> DecoderErrors
        self.collectors = {}
        self.renderer = TextRenderer()
        for program in config.programs:
            if program.metrics is not None:
                errors = self.decoder_errors[program.name] = DecoderErrors()
                self.collectors[program.name] = MetricsCollector(program.metrics, self.decoders, errors)
                for note in program.metrics.notes:
                    LOG.warning("%s (metrics from %s): %s", program.name, program.source, note)
        self.clock = clock
        self.bpf_stats_path = bpf_stats_path
        self.map_errors = {}
        self.perf = PerfCounters(time.monotonic)
        self.series_counts = {}  # (program, metric) -> series of the last pass
        self.series_limit_hits = {}
        self.source_errors = {}
        self.last_success = 0.0
        self.problems = {}
        self._failing = set()
        self.attach_counts = None
        self.attach_events_error = None

    # -- one pass -------------------------------------------------------------------------

    def collect(self):
        """Every family of one pass: the programs' metrics, then the self metrics."""
        start = time.monotonic()
        self._failing = set()
        families = {}
        map_failures = 0
        for program in self.config.programs:
            collector = self.collectors.get(program.name)
            if collector is not None:
                map_failures += self._collect_program(program, collector, families)
        programs = self._programs()
        for family in program_families(programs, read_bpf_stats_enabled(self.bpf_stats_path)) + self._self_families():
            families[family.name] = family
        for family in self._attached(programs):
            families[family.name] = family
        self._end_problems()
        if map_failures == 0:
            self.last_success = self.clock()
        for family in self._health(time.monotonic() - start):
            families[family.name] = family
        return list(families.values())

    def render(self):
        """One pass as Prometheus text."""
        return self.renderer.render(self.collect())

    def write(self):
        """One pass written to the textfile (atomically); returns the text as UTF-8 chunks (a
        list of bytes: b"".join() them for the whole text)."""
        chunks = self.renderer.render_bytes(self.collect())
        # Not fsynced: the next pass rewrites it, and an fsync at every pass would make each pass
        # wait for the disk (a fifth of a pass over a 10,000-entry map, more on a busy disk).
        write_atomic(self.config.textfile, chunks, self.config.file_mode, durable=False)
        return chunks

    # -- metric maps ----------------------------------------------------------------------

    def _collect_program(self, program, collector, families):
        failures = 0
        maps_dir = os.path.join(program.pin_dir, MAPS_DIR)
        reads = {}  # each map read once per pass, however many metrics read it
        for metric in collector.plans:
            config = collector.plans[metric].metric
            path = os.path.join(maps_dir, map_name(config))
            key = ("map", program.name, metric)
            try:
                if getattr(config, "perf_event_array", False):
                    snapshot, dropped = self.perf.snapshot((program.name, metric), config, path)
                    families[dropped.name] = dropped
                else:
                    snapshot = read_metric_map(collector, metric, path, self.config.skip_zero_array_entries, reads)
                family = collector.collect_metric(metric, snapshot)
                if family is not None and family.series_count() and self._within_limit(program.name, metric, family):
                    self._merge(families, family, program.name)
            except BpfError as e:
                failures += 1
                self._count(self.map_errors, (program.name, metric))
                self._problem(key, "%s/%s: %s" % (program.name, metric, _map_problem(program, path, e)))
                continue
            except Exception as e:  # pylint: disable=broad-except
                # A bug or an unforeseen map layout must not cost the other maps their export.
                failures += 1
                self._count(self.map_errors, (program.name, metric))
                self._problem(key, "%s/%s: unexpected %s: %s" % (program.name, metric, type(e).__name__, e))
        return failures

    def _within_limit(self, program, metric, family):
        """Whether the family's series (label sets) fit max_series_per_metric; one that does not
        is left out of this pass, counted and logged (it comes back when it fits again)."""
        count = self.series_counts[(program, metric)] = family.series_count()
        limit = self.config.max_series_per_metric
        if not limit or count <= limit:
            return True
        self._count(self.series_limit_hits, (program, metric))
        self._problem(("series", program, metric), "%s/%s: %d series, more than max_series_per_metric (%d): "
                      "left out until it has fewer" % (program, metric, count, limit))
        return False

    def _merge(self, families, family, program):
        """Add a family; two objects exporting one metric (say both syscall_latency variants)
        share it when type, labels and buckets agree, their series summed."""
        other = families.get(family.name)
        if other is None:
            families[family.name] = family
            return
        if (other.type, other.label_names, other.buckets) != (family.type, family.label_names, family.buckets):
            raise BpfError("metric %s is exported by another program with other labels or buckets; rename one"
                           % family.name)
        for labels, value in family.series.items():
            old = other.series.get(labels)
            if old is None:
                other.series[labels] = value
            elif family.type == "histogram":
                other.series[labels] = (tuple(a + b for a, b in zip(old[0], value[0])), old[1] + value[1])
            else:
                other.series[labels] = old + value

    # -- self metrics ---------------------------------------------------------------------

    def _programs(self):
        """[(object name, pin name, prog_info)] of every configured object's pinned programs."""
        found = []
        for program in self.config.programs:
            try:
                found.extend((program.name, name, info) for name, info in pinned_programs(program.pin_dir))
            except BpfError as e:
                self._count(self.source_errors, ("programs",))
                self._problem(("programs", program.name), "%s: cannot read the pinned programs: %s" % (program.name, e))
        return found

    def _self_families(self):
        """ebpf_exporter_bpf_stats_enabled, ebpf_attachment_errors_total and the build info."""
        stats_on = MetricFamily("ebpf_exporter_bpf_stats_enabled",
                                "Whether the kernel counts BPF program runs and run time (kernel.bpf_stats_enabled)",
                                "gauge")
        stats_on.add((), 1 if read_bpf_stats_enabled(self.bpf_stats_path) else 0)
        errors = MetricFamily("ebpf_attachment_errors_total", "Failed attach attempts, by interface and error type",
                              "counter", ("interface", "error_type"))
        errors.series.update(self._attach_error_counts())
        return [stats_on, errors, build_info_family()]

    def _attach_error_counts(self):
        """The event file's counts; when it cannot be read, the last counts read (none yet in a
        fresh process), the failure logged and counted under ``source="attach_events"``."""
        try:
            self.attach_counts = attach_events.counts(self.config.attach_events)
            self.attach_events_error = None
        except BpfError as e:
            self.attach_events_error = e
            self._count(self.source_errors, ("attach_events",))
            kept = "keeping the counts of the last good read" if self.attach_counts is not None else \
                "no counts read yet, so ebpf_attachment_errors_total has no series"
            self._problem(("attach_events",), "%s; %s (the next failure ebpf_attach records rewrites the file)" % (e, kept))
        return self.attach_counts or {}

    def _attached(self, programs):
        """ebpf_programs_attached and ebpf_exporter_ebpf_program_attached; none when the
        attachments cannot be listed."""
        types = dict((info["id"], info["type_name"]) for _obj, _name, info in programs)
        family = MetricFamily("ebpf_programs_attached",
                              "Attachments of the configured objects' programs, by interface and program type",
                              "gauge", ("interface", "program_type"))
        if not types:
            return [family, attached_family(programs, (), True)]
        complete = True
        try:
            try:  # XDP dispatcher components run our programs as extension programs
                extensions = attachments.extensions_of(dict((info["id"], info) for _obj, _name, info in programs))
                found = [dict(a, prog_id=extensions.get(a["prog_id"], a["prog_id"]))
                         for a in attachments.find_attachments(list(types) + list(extensions))]
            except BpfError as e:
                if e.errno != errno.EPERM:
                    raise
                # Listing bpf_links needs CAP_SYS_ADMIN: without it, XDP and TC attachments over
                # netlink, and the links the objects' link pins name.
                found = attachments.find_attachments(types, links=False) + self._pinned_links(programs)
                complete = False
        except BpfError as e:
            self._count(self.source_errors, ("attachments",))
            self._problem(("attachments",), "cannot list the attachments: %s" % e)
            return []
        # An XDP program attached through a bpf_link is reported as "xdp" and as "link".
        xdp_links = set(a["link_id"] for a in found if a["kind"] == "xdp" and "link_id" in a)
        for attachment in found:
            if attachment["kind"] == "link" and attachment["link_id"] in xdp_links:
                continue
            family.add((attachment.get("interface") or "", types[attachment["prog_id"]]), 1)
        return [family, attached_family(programs, set(a["prog_id"] for a in found), complete)]

    def _pinned_links(self, programs):
        found = []
        by_object = {}
        for obj, name, info in programs:
            by_object.setdefault(obj, {})[name] = info
        for program in self.config.programs:
            try:
                found.extend(pinned_link_attachments(program.pin_dir, by_object.get(program.name, {})))
            except BpfError as e:
                self._count(self.source_errors, ("link_pins",))
                self._problem(("link_pins", program.name), "%s: cannot list the link pins: %s; run "
                              "--grant-access as root" % (program.name, e))
        return found

    def _health(self, duration):
        success = MetricFamily("ebpf_exporter_last_success_timestamp_seconds",
                               "When the exporter last read every configured map (Unix time; 0: never)", "gauge")
        success.add((), self.last_success)
        run = MetricFamily("ebpf_exporter_run_duration_seconds", "How long the last pass took to read and decode",
                           "gauge")
        run.add((), duration)
        map_errors = MetricFamily("ebpf_exporter_map_errors_total", "Passes in which the map could not be read or did not fit its metric",
                                  "counter", ("program", "map"))
        map_errors.series.update(self.map_errors)
        source_errors = MetricFamily("ebpf_exporter_source_errors_total",
                                     "Failed reads of a self-metric source (per object for programs)", "counter", ("source",))
        source_errors.series.update(self.source_errors)
        series = MetricFamily("ebpf_exporter_metric_series", "Series (label sets) of the metric in the last pass that "
                              "read it", "gauge", ("config", "metric"))
        series.series.update(self.series_counts)
        limited = MetricFamily("ebpf_exporter_series_limit_exceeded_total", "Passes that left the metric out for "
                               "having more series than max_series_per_metric", "counter", ("config", "metric"))
        limited.series.update(self.series_limit_hits)
        return [success, run, map_errors, source_errors, decoder_errors_family(self.decoder_errors), series, limited]

    # -- problems -------------------------------------------------------------------------

    @staticmethod
    def _count(table, key):
        table[key] = table.get(key, 0) + 1

    def _problem(self, key, message):
        """Log a problem when it is new or its message changed."""
        self._failing.add(key)
        if self.problems.get(key) != message:
            LOG.warning("%s", message)
            self.problems[key] = message

    def _end_problems(self):
        """Log the problems of earlier passes that this pass did not have."""
        for key in [k for k in self.problems if k not in self._failing]:
            LOG.info("recovered: %s", self.problems.pop(key))
