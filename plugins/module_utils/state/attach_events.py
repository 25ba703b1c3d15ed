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

A file that is not a valid event file (damaged by hand or by a disk) is an error for a reader
(``load``, ``counts``: the exporter reports it and keeps its last counts); the next ``record``
rewrites it, keeping every entry that can still be read from it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import json
import os
import re
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


def _text(path):
    """The file's text, or None when there is no file."""
    try:
        with open(path) as f:
            return f.read()
    except (IOError, OSError) as e:
        if e.errno == errno.ENOENT:
            return None
        raise BpfError("cannot read the attachment event file %s" % path, errno=e.errno)
    except ValueError as e:  # not UTF-8
        raise BpfError("the attachment event file %s is not an event file: %s" % (path, e))


def _valid_entry(entry):
    try:
        return (isinstance(entry, dict) and isinstance(entry["interface"], str) and entry["error_type"] in ERROR_TYPES
                and int(entry["count"]) >= 0)
    except (KeyError, TypeError, ValueError):
        return False


def load(path):
    """The event file as a dict (an empty record when there is no file); BpfError when it cannot
    be read or is not an event file."""
    text = _text(path)
    if text is None:
        return _empty()
    try:
        data = json.loads(text)
    except ValueError as e:
        raise BpfError("the attachment event file %s is not valid JSON: %s" % (path, e))
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("errors"), list):
        raise BpfError("the attachment event file %s is not a format %d event file" % (path, FORMAT))
    bad = [e for e in data["errors"] if not _valid_entry(e)]
    if bad:
        raise BpfError("the attachment event file %s holds %d entries that are not error counts" % (path, len(bad)))
    return data


def read(path):
    """The event file as a dict for a writer: when it is damaged, the entries that can still be
    read from it (whole ``{...}`` objects that are valid entries) and the reason in ``"damaged"``."""
    try:
        return load(path)
    except BpfError as e:
        damaged = str(e)
    try:
        text = _text(path) or ""
    except BpfError:
        text = ""
    data = _empty()
    for match in re.finditer(r"\{[^{}]*\}", text):
        try:
            entry = json.loads(match.group(0))
        except ValueError:
            continue
        if _valid_entry(entry):
            data["errors"].append(entry)
    data["damaged"] = damaged
    return data


def counts(path):
    """{(interface, error_type): count}: what ebpf_attachment_errors_total exposes; BpfError
    when the file cannot be read or is not an event file."""
    out = {}
    for entry in load(path)["errors"]:
        key = (entry["interface"], entry["error_type"])
        out[key] = out.get(key, 0) + int(entry["count"])
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


def record(directory, interface, error_type, hook, message, notes=None):
    """Add one failure to the event file in ``directory`` (created if missing); returns its path.
    When the file was damaged and has been rewritten, a sentence saying so is added to ``notes``."""
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
            data = read(path)
            damaged = data.pop("damaged", None)
            write_atomic(path, json.dumps(add(data, interface, error_type, hook, message), sort_keys=True, indent=1) + "\n")
    except (IOError, OSError) as e:
        raise BpfError("cannot update the attachment event file %s" % path, errno=e.errno)
    if damaged and notes is not None:
        notes.append("%s; it was rewritten keeping the %d entries that could be read" % (damaged, len(data["errors"]) - 1))
    return path
