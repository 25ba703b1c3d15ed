# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names the host gives to what BPF programs see as numbers: kernel symbols from kallsyms,
cgroup paths from cgroup ids, block device names from /proc/partitions. Used by decoders."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import os
import threading
import time


KALLSYMS_PATH = "/proc/kallsyms"
CGROUP_ROOT = "/sys/fs/cgroup"
PARTITIONS_PATH = "/proc/partitions"


class DecodeError(Exception):
    """Raised inside a decoder (or a name lookup it makes) for input it cannot decode."""


class KernelSymbols:
    """Kernel symbol addresses from /proc/kallsyms, read on first use and kept sorted.

    A lookup wants the symbol that starts exactly at the address (what a kprobe or
    fentry program sees as its instruction pointer). An address not found re-reads the file,
    at most once every ``refresh_interval`` seconds, to pick up modules loaded since.
    """

    def __init__(self, path=KALLSYMS_PATH, refresh_interval=60.0):
        self.path = path
        self.refresh_interval = refresh_interval
        self._addrs = None
        self._names = None
        self._loaded_at = None
        self._lock = threading.Lock()

    def _load(self):
        pairs = []
        with open(self.path, "rb") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) < 3:
                    continue
                try:
                    pairs.append((int(fields[0], 16), fields[2]))
                except ValueError:
                    raise DecodeError("error parsing kallsyms address %r in %s" % (fields[0], self.path))
        pairs.sort(key=lambda pair: pair[0])
        self._addrs = [addr for addr, _name in pairs]
        self._names = [name for _addr, name in pairs]
        self._loaded_at = time.monotonic()

    def _find(self, addr):
        index = bisect.bisect_right(self._addrs, addr) - 1
        if index >= 0 and self._addrs[index] == addr:
            return self._names[index]
        return None

    def lookup(self, addr):
        """Return the symbol name (bytes) starting at addr, or None."""
        with self._lock:
            try:
                if self._addrs is None:
                    self._load()
                name = self._find(addr)
                if name is None and time.monotonic() - self._loaded_at >= self.refresh_interval:
                    self._load()
                    name = self._find(addr)
            except OSError as exc:
                raise DecodeError("cannot read %s: %s" % (self.path, exc.strerror))
            return name


class CgroupPaths:
    """cgroup id -> cgroupfs directory path, found by walking the cgroup tree.

    On cgroup v2 a cgroup's id is the inode number of its directory. The tree is walked once
    on first use and again whenever an id is not found; an id still not found is remembered
    as unknown so that it does not trigger a walk on every lookup.
    """

    def __init__(self, root=CGROUP_ROOT):
        self.root = root
        self._paths = None
        self._lock = threading.Lock()

    def _walk(self):
        """{inode: path} of every directory, visited in lexical pre-order (a later directory
        with the same inode number, as on hybrid cgroup v1/v2 hosts, wins)."""
        paths = {}
        try:
            pending = [(self.root, os.stat(self.root).st_ino)]
        except OSError:
            return paths
        while pending:
            directory, inode = pending.pop()
            paths[inode] = directory
            try:
                with os.scandir(directory) as entries:
                    children = [(entry.name, entry.path, entry.inode()) for entry in entries
                                if entry.is_dir(follow_symlinks=False)]
            except OSError:
                continue  # removed while walking, or unreadable
            children.sort(reverse=True)
            pending.extend((path, child_inode) for _name, path, child_inode in children)
        return paths

    def resolve(self, cgroup_id):
        """Return the path for cgroup_id, or None."""
        with self._lock:
            if self._paths is None:
                self._paths = self._walk()
            if cgroup_id not in self._paths:
                self._paths.update(self._walk())
                self._paths.setdefault(cgroup_id, None)
            return self._paths[cgroup_id]


def partition_name(partitions_path, major, minor):
    try:
        with open(partitions_path, "rb") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) == 4 and fields[0] == b"%d" % major and fields[1] == b"%d" % minor:
                    return fields[3]
    except OSError as exc:
        raise DecodeError("cannot read %s: %s" % (partitions_path, exc.strerror))
    return None
