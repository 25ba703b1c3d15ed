# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The attachment-error event file: how often attaching failed, per interface and error type.

ebpf_attach adds one count for every failure; the exporter turns the counts into
``ebpf_attachment_errors_total{interface, error_type}``. The file is JSON::

    {"format": 1,
     "errors": [{"interface": "eth0", "error_type": "foreign_program", "hook": "xdp",
                 "count": 2, "last_seen": 1764080000.0, "last_message": "..."}]}

``interface`` is empty for hooks without one (tracepoints, probes). Entries are unique per
(interface, error_type); ``hook`` and ``last_*`` describe the latest failure. Writers take an
exclusive flock on ``<file>.lock`` and replace the file atomically (temporary file in the same
directory, fsync, rename), so a reader never sees a partial file and no count is lost.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import json
import os
import time

from ansible_collections.ebpf.observability.plugins.module_utils.state.atomic_file import write_atomic
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

DEFAULT_DIR = "/var/lib/ebpf_observability"
FILE_NAME = "attach_errors.json"
FORMAT = 1
MESSAGE_MAX = 500

# error types, from the most specific cause a failure can have
ERROR_TYPES = (
    "interface_missing",      # the interface does not exist (or vanished before verification)
    "foreign_program",        # another program holds the hook and force is not set
    "program_missing",        # nothing pinned where the program should be
    "program_type_mismatch",  # the program's type does not fit the hook
    "unknown_target",         # no such tracepoint, kernel function or file symbol
    "kprobes_unavailable",    # the kernel has no kprobes
    "unsupported",            # another kernel feature is missing (uprobes, TCX, perf links, XDP mode)
    "verify_failed",          # the kernel did not confirm the attachment
    "interface_down",         # the interface is down and require_up is set
    "invalid_argument",       # options that cannot work together
    "kernel_error",           # anything else the kernel refused
)


def events_path(directory=DEFAULT_DIR):
    return os.path.join(directory, FILE_NAME)


def _empty():
    return {"format": FORMAT, "errors": []}


def read(path):
    """The event file as a dict; an empty record when the file is missing or unreadable."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (IOError, OSError, ValueError):
        return _empty()
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("errors"), list):
        return _empty()
    return data


def counts(path):
    """{(interface, error_type): count}: what ebpf_attachment_errors_total exposes."""
    out = {}
    for entry in read(path)["errors"]:
        try:
            key = (str(entry["interface"]), str(entry["error_type"]))
            out[key] = out.get(key, 0) + int(entry["count"])
        except (KeyError, TypeError, ValueError):
            continue
    return out


def add(data, interface, error_type, hook, message, now=None):
    """Count one failure in the record ``data`` (changed in place, also returned)."""
    interface = interface or ""
    for entry in data["errors"]:
        if entry.get("interface") == interface and entry.get("error_type") == error_type:
            break
    else:
        entry = {"interface": interface, "error_type": error_type, "count": 0}
        data["errors"].append(entry)
    entry["count"] = int(entry.get("count", 0)) + 1
    entry["hook"] = hook
    entry["last_seen"] = time.time() if now is None else now
    entry["last_message"] = (message or "")[:MESSAGE_MAX]
    data["errors"].sort(key=lambda e: (e["interface"], e["error_type"]))
    return data


def record(directory, interface, error_type, hook, message):
    """Add one failure to the event file in ``directory`` (created if missing)."""
    if error_type not in ERROR_TYPES:
        raise ValueError("unknown attachment error type %r" % (error_type,))
    try:
        os.makedirs(directory, 0o755)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise BpfError("cannot create the event directory %s" % directory, errno=e.errno)
    path = events_path(directory)
    try:
        with open(path + ".lock", "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            write_atomic(path, json.dumps(add(read(path), interface, error_type, hook, message), sort_keys=True, indent=1) + "\n")
    except (IOError, OSError) as e:
        raise BpfError("cannot update the attachment event file %s" % path, errno=e.errno)
    return path
