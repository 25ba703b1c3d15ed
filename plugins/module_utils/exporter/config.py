# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exporter's configuration, checked and typed.

The caller loads the file (YAML or JSON) and hands the dict to
:func:`parse_exporter_config`::

    pin_root: /sys/fs/bpf/ebpf_observability      # where ebpf_program pinned the objects
    textfile: /var/lib/prometheus/node-exporter/ebpf_observability.prom
    file_mode: "0644"                             # mode of the textfile
    interval: 15                                  # seconds between passes (service mode)
    attach_events: /var/lib/ebpf_observability/attach_errors.json
    group: ebpf-exporter                          # group --grant-access gives the pins to
    programs:
      - name: xdp_counter                         # the object's name under pin_root
        metrics_file: /etc/ebpf-observability/metrics/xdp_counter.yaml
      - name: tc_classifier
        metrics: {metrics: {counters: [...]}}     # the same, inline
        static_maps: {class: {"1": dns}}          # entries added to the static_map decoders
                                                  # of these labels (the deployment's names)
      - name: net_tracepoints                     # no metrics: only counted and watched
    syscall_names: ebpf_exporter                  # or kernel: the kernel's names (pread64, exit_group)
    skip_zero_array_entries: false                # true: an array's all-zero entries are no series
    max_series_per_metric: 0                      # a metric with more series (label sets) is left
                                                  # out of the pass and counted; 0: no limit

A program's metrics are a cloudflare/ebpf_exporter config (its ``metrics`` section: see
metrics_config); each metric reads the map pinned as ``<pin_root>/<name>/maps/<metric>``.
By default label values and series are ebpf_exporter's; the two options above keep this
collection's earlier behaviour where a deployment relies on it: ``syscall_names: kernel`` names
system calls as the kernel's tables do (``pread64``, ``exit_group``, and calls newer than
ebpf_exporter's table), ``skip_zero_array_entries: true`` exports only the indexes of an array
map written to (ebpf_exporter exports every index, so series exist at zero).
``metrics_file`` is read through the ``load_file`` function the caller passes, so this module
needs no YAML parser.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import os

from ansible_collections.ebpf.observability.plugins.module_utils.state import attach_events
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.syscall_names import NAME_STYLES
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.metrics_config import (
    parse_metrics_config, scalar_text,
)

DEFAULT_CONFIG_PATH = "/etc/ebpf-observability/exporter.yml"
DEFAULT_TEXTFILE = "/var/lib/prometheus/node-exporter/ebpf_observability.prom"
DEFAULT_INTERVAL = 15.0
DEFAULT_FILE_MODE = 0o644
TEXTFILE_SUFFIX = ".prom"

_KEYS = frozenset(("pin_root", "textfile", "file_mode", "interval", "attach_events", "group", "programs",
                   "syscall_names", "skip_zero_array_entries", "max_series_per_metric"))
_PROGRAM_KEYS = frozenset(("name", "metrics", "metrics_file", "static_maps"))

ProgramConfig = collections.namedtuple("ProgramConfig", "name pin_dir metrics source")
ProgramConfig.__doc__ = """One deployed BPF object: its name, pin directory and metrics.

metrics is a metrics_config.MetricsConfig, or None for an object exported only through the
self metrics; source names where the metrics came from (file path or "inline").
"""

ExporterConfig = collections.namedtuple(
    "ExporterConfig", "pin_root textfile file_mode interval attach_events group programs syscall_names "
    "skip_zero_array_entries max_series_per_metric", defaults=("ebpf_exporter", False, 0))
ExporterConfig.__doc__ = "The checked exporter configuration (see the module docstring); programs is a tuple."


def parse_exporter_config(data, source="config", load_file=None):
    """Check a loaded config dict and return an ExporterConfig.

    ``load_file(path)`` returns the loaded content of a ``metrics_file``; without it a
    program may only give ``metrics`` inline. Every problem raises BpfError naming ``source``.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BpfError("%s: the exporter config must be a mapping, not %s" % (source, type(data).__name__))
    unknown = set(data) - _KEYS
    if unknown:
        raise BpfError("%s: unknown key(s) %s; expected %s"
                       % (source, ", ".join(sorted(map(str, unknown))), ", ".join(sorted(_KEYS))))
    pin_root = _path(data, "pin_root", bpffs.DEFAULT_PIN_ROOT, source)
    textfile = _path(data, "textfile", DEFAULT_TEXTFILE, source)
    if not textfile.endswith(TEXTFILE_SUFFIX):
        raise BpfError("%s: textfile %s must end in %s: node_exporter's textfile collector reads only those files"
                       % (source, textfile, TEXTFILE_SUFFIX))
    programs = data.get("programs") or []
    if not isinstance(programs, list):
        raise BpfError("%s: programs must be a list of {name, metrics_file or metrics}" % source)
    parsed = []
    for index, item in enumerate(programs):
        parsed.append(_program(item, "%s: programs[%d]" % (source, index), pin_root, load_file))
    names = [p.name for p in parsed]
    duplicates = sorted(set(n for n in names if names.count(n) > 1))
    if duplicates:
        raise BpfError("%s: program(s) listed twice: %s" % (source, ", ".join(duplicates)))
    group = data.get("group")
    if group is not None and not isinstance(group, (str, int)):
        raise BpfError("%s: group must be a group name or id" % source)
    return ExporterConfig(
        pin_root=pin_root,
        textfile=textfile,
        file_mode=_mode(data.get("file_mode", DEFAULT_FILE_MODE), source),
        interval=_interval(data.get("interval", DEFAULT_INTERVAL), source),
        attach_events=_path(data, "attach_events", attach_events.events_path(), source),
        group=group,
        programs=tuple(parsed),
        syscall_names=_choice(data, "syscall_names", NAME_STYLES, source),
        skip_zero_array_entries=_flag(data, "skip_zero_array_entries", False, source),
        max_series_per_metric=_count(data, "max_series_per_metric", source),
    )


def _count(data, key, source):
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BpfError("%s: %s must be a whole number >= 0 (0: no limit), not %r" % (source, key, value))
    return value


def _choice(data, key, choices, source):
    value = data.get(key, choices[0])
    if value not in choices:
        raise BpfError("%s: %s must be one of %s, not %r" % (source, key, ", ".join(choices), value))
    return value


def _flag(data, key, default, source):
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise BpfError("%s: %s must be true or false, not %r" % (source, key, value))
    return value


def _path(data, key, default, source):
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or not os.path.isabs(value):
        raise BpfError("%s: %s must be an absolute path, not %r" % (source, key, value))
    return os.path.normpath(value)


def _mode(value, source):
    try:
        mode = int(value, 8) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        mode = -1
    if isinstance(value, bool) or not 0 <= mode <= 0o777:
        raise BpfError("%s: file_mode must be an octal mode such as \"0644\", not %r" % (source, value))
    return mode


def _interval(value, source):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise BpfError("%s: interval must be a number of seconds above 0, not %r" % (source, value))
    return float(value)


def _program(item, where, pin_root, load_file):
    if not isinstance(item, dict):
        raise BpfError("%s: expected a mapping with name and metrics_file or metrics" % where)
    unknown = set(item) - _PROGRAM_KEYS
    if unknown:
        raise BpfError("%s: unknown key(s) %s; expected %s"
                       % (where, ", ".join(sorted(map(str, unknown))), ", ".join(sorted(_PROGRAM_KEYS))))
    try:
        name = bpffs.check_name(item.get("name"), "program name")
    except BpfError as e:
        raise BpfError("%s: %s" % (where, e))
    metrics, origin = item.get("metrics"), "inline"
    path = item.get("metrics_file")
    if path is not None and metrics is not None:
        raise BpfError("%s (%s): give metrics_file or metrics, not both" % (where, name))
    if path is not None:
        if not isinstance(path, str) or not os.path.isabs(path):
            raise BpfError("%s (%s): metrics_file must be an absolute path, not %r" % (where, name, path))
        if load_file is None:
            raise BpfError("%s (%s): metrics_file is given but this caller reads no files" % (where, name))
        metrics, origin = load_file(path), path
    parsed = None
    if metrics is not None:
        parsed = parse_metrics_config(metrics, "%s (%s, metrics from %s)" % (where, name, origin))
    static_maps = item.get("static_maps")
    if static_maps is not None:
        parsed = with_static_maps(parsed, static_maps, "%s (%s)" % (where, name))
    return ProgramConfig(name=name, pin_dir=bpffs.pin_path(pin_root, name), metrics=parsed, source=origin)


def with_static_maps(config, static_maps, where):
    """``config`` (a MetricsConfig) with the entries of ``static_maps`` ({label: {value: name}})
    added to the static_map decoders of those labels, replacing equal keys."""
    if not isinstance(static_maps, dict) or not all(isinstance(m, dict) for m in static_maps.values()):
        raise BpfError("%s: static_maps must map label names to {value: name} mappings" % where)
    if config is None:
        raise BpfError("%s: static_maps needs metrics whose labels have static_map decoders" % where)
    filled = set()

    def fill_label(label):
        extra = static_maps.get(label.name)
        if extra is None:
            return label
        decoders = []
        for decoder in label.decoders:
            if decoder.name == "static_map":
                entries = dict(decoder.static_map or {})
                entries.update((scalar_text(k), scalar_text(v)) for k, v in extra.items())
                decoder = decoder._replace(static_map=entries)
                filled.add(label.name)
            decoders.append(decoder)
        return label._replace(decoders=tuple(decoders))

    def fill_metric(metric):
        return metric._replace(labels=tuple(fill_label(label) for label in metric.labels))

    out = config._replace(counters=tuple(fill_metric(m) for m in config.counters),
                          histograms=tuple(fill_metric(m) for m in config.histograms))
    missing = sorted(set(static_maps) - filled)
    if missing:
        raise BpfError("%s: static_maps names label(s) %s, which have no static_map decoder in the metrics"
                       % (where, ", ".join(map(str, missing))))
    return out
