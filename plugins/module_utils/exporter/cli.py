# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host command ``ebpf-observability-exporter`` (the ebpf_exporter role installs a launcher
that calls :func:`main`).

Modes::

    ebpf-observability-exporter [--config FILE]                 # a pass every --interval seconds
    ebpf-observability-exporter --once                          # one pass, written to the textfile
    ebpf-observability-exporter --once --stdout                 # one pass, printed
    ebpf-observability-exporter --version                       # the collection's version
    ebpf-observability-exporter --check-config                  # load and check the config only
    ebpf-observability-exporter --grant-access [--dry-run]      # as root: pins readable by `group`

The loop keeps its collectors (and their label caches) between passes, out of the garbage
collector's way (settle_after_pass), and runs the passes on a steady schedule: pass n starts at start + n x interval; a pass that overruns skips the slots it
missed. SIGTERM and SIGINT end the loop after the current pass (a write is never cut short;
it is atomic anyway). Exit status: 0, or 1 when the config is wrong or the textfile cannot be
written (or, with --once, when the attachment event file could not be read: the pass is
written all the same, without ebpf_attachment_errors_total series), 2 for bad arguments.

The config is YAML (PyYAML: Debian's python3-yaml) or JSON; the core takes the loaded dicts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import gc
import json
import logging
import signal
import sys
import threading
import time

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.textfile import LOG, Exporter
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.build_info import VERSION
from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_access import grant_pin_access
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.config import (
    DEFAULT_CONFIG_PATH, parse_exporter_config,
)
from ansible_collections.ebpf.observability.plugins.module_utils.state.atomic_file import remove_stale_temporaries

try:
    import yaml
    YAML_IMPORT_ERROR = None
except ImportError as exc:
    YAML_IMPORT_ERROR = exc


def load_file(path):
    """The content of a YAML (or JSON) file as Python data."""
    try:
        with open(path) as f:
            text = f.read()
    except (IOError, OSError) as e:
        raise BpfError("cannot read %s" % path, errno=e.errno)
    if YAML_IMPORT_ERROR is not None:
        try:
            return json.loads(text)
        except ValueError:
            raise BpfError("%s: PyYAML is not installed (%s) and the file is not JSON" % (path, YAML_IMPORT_ERROR),
                           hint="install python3-yaml")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise BpfError("%s is not valid YAML: %s" % (path, e))


def load_config(path, overrides=None):
    """The ExporterConfig in file ``path``, with ``overrides`` (dict) applied on top."""
    data = load_file(path)
    if data is None:
        data = {}
    if isinstance(data, dict) and overrides:
        data = dict(data, **overrides)
    return parse_exporter_config(data, path, load_file)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="ebpf-observability-exporter",
        description="Export pinned BPF maps as Prometheus metrics through node_exporter's textfile collector.")
    parser.add_argument("--config", default=DEFAULT_CONFIG_PATH, help="config file (default %(default)s)")
    parser.add_argument("--once", action="store_true", help="run one pass and exit")
    parser.add_argument("--stdout", action="store_true", help="with --once: print the metrics instead of writing")
    parser.add_argument("--interval", type=float, help="seconds between passes (overrides the config)")
    parser.add_argument("--textfile", help="the .prom file to write (overrides the config)")
    parser.add_argument("--check-config", action="store_true", help="check the config and exit")
    parser.add_argument("--grant-access", action="store_true",
                        help="give the config's group read access to the configured objects' pins, and exit")
    parser.add_argument("--dry-run", action="store_true", help="with --grant-access: only report")
    parser.add_argument("--version", action="version", version="%(prog)s " + VERSION)
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    args = parser.parse_args(argv)
    if args.stdout and not args.once:
        parser.error("--stdout needs --once")
    if args.interval is not None and not args.interval > 0:
        parser.error("--interval must be above 0")
    return args


def settle_after_pass():
    """Collect a pass's garbage, then take what survived (the label caches, mostly) out of the
    cyclic garbage collector's view, so the collections during later passes do not traverse it
    again: a warm pass over 100,000 series takes about a quarter less. Nothing that survives a
    pass is cyclic garbage later (the caches hold strings and tuples), so nothing leaks."""
    gc.collect()
    gc.freeze()


class Loop:
    """Passes on a steady schedule until stop() (signal-safe: it only sets an event)."""

    def __init__(self, exporter, interval, clock=time.monotonic):
        self.exporter = exporter
        self.interval = interval
        self.clock = clock
        self.stopping = threading.Event()

    def stop(self, *_args):
        self.stopping.set()

    def next_start(self, start, now):
        """The first slot start + n x interval after ``now``."""
        missed = int((now - start) // self.interval) + 1
        return start + missed * self.interval

    def run(self):
        start = self.clock()
        while not self.stopping.is_set():
            try:
                self.exporter.write()
            except BpfError as e:
                LOG.error("%s", e)
            settle_after_pass()
            delay = self.next_start(start, self.clock()) - self.clock()
            self.stopping.wait(max(0.0, delay))


def _grant(config, path, dry_run):
    if config.group is None:
        raise BpfError("%s: --grant-access needs 'group' in the config" % path)
    changes = grant_pin_access(config.pin_root, [p.name for p in config.programs], config.group, dry_run)
    sys.stdout.write(json.dumps({"changed": bool(changes), "changes": changes}) + "\n")
    return 0


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, args.log_level.upper()),
                        format="%(levelname)s %(message)s")
    overrides = {}
    if args.interval is not None:
        overrides["interval"] = args.interval
    if args.textfile is not None:
        overrides["textfile"] = args.textfile
    try:
        config = load_config(args.config, overrides)
        if args.check_config:
            sys.stdout.write("%s: %d program(s), %d with metrics; textfile %s\n" % (
                args.config, len(config.programs), sum(1 for p in config.programs if p.metrics), config.textfile))
            for program in config.programs:
                for note in program.metrics.notes if program.metrics else ():
                    sys.stdout.write("%s: %s\n" % (program.name, note))
            return 0
        if args.grant_access:
            return _grant(config, args.config, args.dry_run)
        exporter = Exporter(config)
        if args.once and args.stdout:
            sys.stdout.write(exporter.render())
            return 1 if exporter.attach_events_error else 0
        remove_stale_temporaries(config.textfile)
        if args.once:
            exporter.write()
            return 1 if exporter.attach_events_error else 0
    except BpfError as e:
        LOG.error("%s", e)
        return 1
    loop = Loop(exporter, config.interval)
    signal.signal(signal.SIGTERM, loop.stop)
    signal.signal(signal.SIGINT, loop.stop)
    LOG.info("exporting %d program(s) to %s every %g s", len(config.programs), config.textfile, config.interval)
    exporter.perf.continuous = True  # perf_event_array counters read between passes too
    try:
        loop.run()
    finally:
        exporter.perf.close()
    return 0
