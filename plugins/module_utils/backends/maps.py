# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Set entries of a pinned map (configuration data such as classification rules), deciding
from the values the kernel holds."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import os

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import capabilities
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_state import MAPS_DIR

ARRAY_TYPES = ("array",)
HASH_TYPES = ("hash", "lru_hash")


def encode(value, size, what):
    """An entry's key or value as bytes: a hex string ("0a000000", "0x0a000000") or a
    non-negative integer (little-endian, ``size`` bytes)."""
    if isinstance(value, bool):
        raise BpfError("%s must be a hex string or an integer, not a boolean" % what)
    if isinstance(value, int):
        try:
            return value.to_bytes(size, "little")
        except OverflowError:
            raise BpfError("%s %d does not fit in %d bytes" % (what, value, size))
    text = str(value).strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    try:
        data = binascii.unhexlify(text.replace(" ", ""))
    except (binascii.Error, ValueError):
        raise BpfError("%s %r is neither an integer nor a hex string" % (what, value))
    if len(data) != size:
        raise BpfError("%s %r is %d bytes; the map's %s are %d bytes" % (
            what, value, len(data), what.split()[-1] + "s", size))
    return data


def hexlify(data):
    return binascii.hexlify(data).decode() if data is not None else None


class MapBackend:
    """The decisions and kernel writes behind the ebpf_map module."""

    def __init__(self, name, map_name, pin_root=bpffs.DEFAULT_PIN_ROOT, check_mode=False):
        capabilities.require_bpf()
        pin_root = bpffs.check_pin_root(pin_root)
        self.path = bpffs.pin_path(pin_root, bpffs.check_name(name, "name"), MAPS_DIR,
                                   bpffs.check_name(map_name, "map name"))
        self.check_mode = check_mode
        if not os.path.exists(self.path):
            raise BpfError("no map %s is pinned for %s (%s)" % (map_name, name, self.path),
                           hint="load the object with ebpf_program first")
        self.fd = sc.obj_get(self.path)
        self.info = sc.map_info(self.fd)
        if self.info["type_name"] not in ARRAY_TYPES + HASH_TYPES:
            raise BpfError("map %s is a %s map; ebpf_map sets entries of array and hash maps "
                           "(configuration), not per-CPU counters" % (map_name, self.info["type_name"]))
        self.changed = []

    def close(self):
        self.fd.close()

    def _current(self, key):
        return sc.map_lookup(self.fd, key, self.info["value_size"])

    def _all_keys(self):
        keys = []
        key = sc.map_next_key(self.fd, None, self.info["key_size"])
        while key is not None:
            keys.append(key)
            key = sc.map_next_key(self.fd, key, self.info["key_size"])
        return keys

    def plan(self, entries, exclusive=False):
        """The writes to make, in order: (key, value or None for delete). Empty when the map
        already holds the final value of every entry (and, with exclusive, nothing else)."""
        ksize, vsize = self.info["key_size"], self.info["value_size"]
        writes = [(encode(e["key"], ksize, "entry key"), encode(e["value"], vsize, "entry value")) for e in entries]
        final = dict(writes)
        if self.info["type_name"] in ARRAY_TYPES:
            for key in final:
                index = int.from_bytes(key, "little")
                if index >= self.info["max_entries"]:
                    raise BpfError("key %d is out of range: the array has %d entries" % (index, self.info["max_entries"]))
        stale = []
        if exclusive:
            zero = b"\0" * vsize
            for key in self._all_keys():
                if key not in final and self._current(key) not in (None, zero):
                    stale.append(key)
        differs = any(self._current(k) != v for k, v in final.items())
        if not differs and not stale:
            return []
        if self.info["type_name"] in ARRAY_TYPES:
            cleanup = [(k, b"\0" * vsize) for k in stale]  # array entries cannot be deleted
        else:
            cleanup = [(k, None) for k in stale]
        # Stale entries go first, so that a full hash map has room for the new ones.
        self._check_capacity(cleanup + writes)
        return cleanup + writes

    def _check_capacity(self, writes):
        """Refuse, before anything is written, a write sequence that would need more entries
        than the hash map holds at most (the kernel would refuse it with E2BIG half-way)."""
        if self.info["type_name"] not in HASH_TYPES:
            return
        held = set(self._all_keys())
        before, peak = len(held), len(held)
        for key, value in writes:
            if value is None:
                held.discard(key)
            else:
                held.add(key)
            peak = max(peak, len(held))
        if peak > self.info["max_entries"]:
            raise BpfError(
                "map %s holds %d of its %d entries (max_entries); these writes would need %d, so "
                "nothing was written" % (os.path.basename(self.path), before, self.info["max_entries"], peak),
                hint="write fewer new keys, remove entries with exclusive: true, or give the map "
                     "a larger max_entries in the object")

    def _store(self, key, value):
        if value is None:
            sc.map_delete(self.fd, key, missing_ok=True)
        else:
            sc.map_update(self.fd, key, value)

    def _write(self, writes):
        """Make the writes; when one fails, put back what every written key held before (keys
        that were absent are deleted first, to leave room) and raise the failure."""
        previous = {}
        try:
            for key, value in writes:
                previous.setdefault(key, self._current(key))
                self._store(key, value)
        except BpfError as failure:
            restore = sorted(previous.items(), key=lambda item: item[1] is not None)
            try:
                for key, value in restore:
                    self._store(key, value)
            except BpfError as e:
                failure.msg += "; restoring the previous entries failed too: %s" % e
                raise failure
            failure.msg += "; the map's previous entries were restored"
            raise failure

    def apply(self, entries, exclusive=False):
        writes = self.plan(entries, exclusive)
        before = dict((hexlify(k), hexlify(self._current(k))) for k, _v in writes)
        after = dict(before)
        for key, value in writes:
            after[hexlify(key)] = hexlify(value)
        if not self.check_mode:
            self._write(writes)
        return {
            "changed": bool(writes),
            "path": self.path,
            "map": {"id": self.info["id"], "type": self.info["type_name"], "key_size": self.info["key_size"],
                    "value_size": self.info["value_size"], "max_entries": self.info["max_entries"]},
            "writes": len(writes),
            "diff": {"before": before, "after": after},
        }
