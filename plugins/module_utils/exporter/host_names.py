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

    As in ebpf_exporter's kallsyms package, an address is named after the nearest symbol at or
    before it (``process_timeout+4`` is ``process_timeout``), and a symbol is the third
    space-separated field of its line: a module's symbol keeps the tab and ``[module]`` that
    follow it in /proc/kallsyms (``nft_do_chain\t[nf_tables]``). Only an address below the
    first symbol has no name; it re-reads the file (modules loaded since), at most once every
    ``refresh_interval`` seconds where ebpf_exporter re-reads at every such miss. A file whose
    addresses are all zero (kptr_restrict hides them from this user) is an error rather than
    every address named after one arbitrary symbol.
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
                fields = line.rstrip(b"\n").split(b" ", 2)
                if len(fields) < 3:
                    continue
                try:
                    pairs.append((int(fields[0], 16), fields[2]))
                except ValueError:
                    raise DecodeError("error parsing kallsyms address %r in %s" % (fields[0], self.path))
        if pairs and not any(addr for addr, _name in pairs):
            raise DecodeError("%s shows every address as 0: kernel.kptr_restrict hides them from this user"
                              % self.path)
        pairs.sort(key=lambda pair: pair[0])
        self._addrs = [addr for addr, _name in pairs]
        self._names = [name for _addr, name in pairs]
        self._loaded_at = time.monotonic()

    def _find(self, addr):
        index = bisect.bisect_right(self._addrs, addr) - 1
        return self._names[index] if index >= 0 else None

    def lookup(self, addr):
        """Return the name (bytes) of the symbol at or before addr, or None."""
        return self.lookup_many((addr,))[0]

    def lookup_many(self, addrs):
        """Names (bytes or None) of several addresses, re-reading kallsyms once for all misses."""
        with self._lock:
            try:
                if self._addrs is None:
                    self._load()
                names = [self._find(addr) for addr in addrs]
                if None in names and time.monotonic() - self._loaded_at >= self.refresh_interval:
                    self._load()
                    names = [self._find(addr) for addr in addrs]
            except OSError as exc:
                raise DecodeError("cannot read %s: %s" % (self.path, exc.strerror))
            return names


class CgroupPaths:
    """cgroup id -> cgroupfs directory path, found by walking the cgroup tree.

    A cgroup's id is the inode number of its directory, as ``stat()`` reports it: a mount point
    gives the inode of the mounted file system's root, not of the directory it covers, so on a
    host with cgroup v1 and v2 side by side id 1 is ``/sys/fs/cgroup/unified`` (the cgroup2
    root), not the tmpfs ``/sys/fs/cgroup``. As in ebpf_exporter's cgroup monitor, directories
    are visited in lexical pre-order and a later one with the same inode number wins; the tree
    is walked on first use and again whenever an id is not found, and the walks add to what
    is known: a removed cgroup keeps its path, and an id still not found is remembered as
    unknown so that it does not cost a walk at every lookup.
    """

    def __init__(self, root=CGROUP_ROOT):
        self.root = root
        self._paths = None
        self._lock = threading.Lock()

    def _walk(self):
        """{inode: path} of every directory (see the class docstring for the order)."""
        paths = {}
        pending = [self.root]
        while pending:
            directory = pending.pop()
            try:
                paths[os.stat(directory).st_ino] = directory
                with os.scandir(directory) as entries:
                    children = [entry.path for entry in entries if entry.is_dir(follow_symlinks=False)]
            except OSError:
                continue  # removed while walking, or unreadable
            children.sort(reverse=True)
            pending.extend(children)
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
