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
import struct

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
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


def read(pin_dir):
    """The record pinned in ``pin_dir``, or None when there is none (or it is unreadable)."""
    path = os.path.join(pin_dir, STATE_PIN)
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
    record = dict(record, format=FORMAT)
    data = json.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8")
    size = (len(data) // _ALIGN + 1) * _ALIGN
    path = os.path.join(pin_dir, STATE_PIN)
    with sc.map_create(sc.BPF_MAP_TYPE_ARRAY, 4, size, 1, name=STATE_MAP_NAME) as fd:
        sc.map_update(fd.fd, _KEY, data.ljust(size, b"\0"))
        pin_replace(fd.fd, path)
