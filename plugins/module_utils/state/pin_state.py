# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The load record of an object pinned by the collection.

The record lives in the kernel, next to the pins it describes: a one-entry BPF array map pinned
as ``<pin_dir>/state`` holding JSON (the object's content hash, the kernel ids and tags of what
was loaded). Like the pins themselves it vanishes with bpffs at reboot, so it can never claim a
load the kernel no longer has; every id in it is checked against the kernel before it is
believed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import struct
import zlib

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_journal import pin_replace

# The layout of an object directory under the pin root: the load record, then one directory each
# for the pinned programs, maps and links.
STATE_PIN = "state"
PROGS_DIR = "progs"
MAPS_DIR = "maps"
LINKS_DIR = "links"
STATE_MAP_NAME = "ebpfo_state"
FORMAT = 1
_KEY = struct.pack("<I", 0)
_ALIGN = 256


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def pin_key(*parts):
    """A bpffs-safe pin name made of ``parts``; parts that needed changing get a short hash so
    two different targets never share a pin. Link pins are named so under ``links/``:
    ``<program>-tc-<interface>-<direction>`` and ``<program>-<tracing hook>-<target>``."""
    raw = "-".join(str(p) for p in parts if p not in (None, ""))
    safe = _UNSAFE.sub("_", raw).lstrip("-")
    if safe != raw or len(safe) > 120:
        safe = "%s-%08x" % (safe[:110], zlib.crc32(raw.encode("utf-8")) & 0xFFFFFFFF)
    return safe


def read(pin_dir):
    """The record pinned in ``pin_dir``, or None when there is none (or it is unreadable)."""
    return read_record(os.path.join(pin_dir, STATE_PIN))


def read_record(path):
    """A JSON record pinned at ``path`` (a one-entry array map), or None."""
    if not os.path.exists(path):
        return None
    try:
        with sc.obj_get(path, sc.BPF_F_RDONLY) as fd:
            info = sc.map_info(fd.fd)
            raw = sc.map_lookup(fd.fd, _KEY, info["value_size"])
    except BpfError:
        return None
    if not raw:
        return None
    try:
        record = json.loads(raw.rstrip(b"\0").decode("utf-8"))
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    return record


def write(pin_dir, record):
    """Pin a new record in ``pin_dir``, replacing the old one atomically (rename on bpffs)."""
    write_record(os.path.join(pin_dir, STATE_PIN), record)


def write_record(path, record):
    """Pin ``record`` (JSON) at ``path``, replacing what is pinned there atomically."""
    record = dict(record, format=FORMAT)
    data = json.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8")
    size = (len(data) // _ALIGN + 1) * _ALIGN
    with sc.map_create(sc.BPF_MAP_TYPE_ARRAY, 4, size, 1, name=STATE_MAP_NAME) as fd:
        sc.map_update(fd.fd, _KEY, data.ljust(size, b"\0"))
        pin_replace(fd.fd, path)


# -- ownership: what under an object directory the collection made --------------------------

def _pins_below(pin_dir):
    """Paths (relative to ``pin_dir``) of every pin below it; directories are not pins."""
    found = []
    for top, _dirs, files in os.walk(pin_dir):
        for name in files:
            found.append(os.path.relpath(os.path.join(top, name), pin_dir))
    return sorted(found)


def _is_link(path):
    try:
        with sc.obj_get(path) as fd:
            return sc.fd_kind(fd.fd) == "link"
    except BpfError:
        return False


def foreign_pins(pin_dir, record=None):
    """The pins below ``pin_dir`` that its load record does not account for: everything when
    there is no record; else what is not the record itself, a program or map it names, or a
    link pinned under ``links/`` (made by ebpf_attach). [] for a directory tree with no pins."""
    record = read(pin_dir) if record is None else record
    pins = _pins_below(pin_dir)
    if record is None:
        return pins
    ours = set([STATE_PIN])
    ours.update(os.path.join(PROGS_DIR, n) for n in record.get("programs_ids") or {})
    ours.update(os.path.join(MAPS_DIR, n) for n in record.get("maps_ids") or {})
    foreign = []
    for rel in pins:
        if rel in ours or rel.endswith(bpffs.TMP_SUFFIX):
            continue
        if rel.startswith(LINKS_DIR + os.sep) and _is_link(os.path.join(pin_dir, rel)):
            continue
        foreign.append(rel)
    return foreign


def enclosing_object(path):
    """The object directory (one holding a load record) that ``path`` lies in, or None."""
    path = os.path.normpath(path)
    current = os.path.dirname(path)
    while current != os.path.dirname(current) and bpffs.is_bpffs(current):
        if read(current) is not None:
            return current
        current = os.path.dirname(current)
    return None
