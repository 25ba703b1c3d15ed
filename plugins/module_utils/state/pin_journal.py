# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pin changes that can be undone: an operation that fails half-way leaves bpffs as it was."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError


def pin_replace(fd, path):
    """Pin ``fd`` at ``path``, atomically replacing what is pinned there (pin aside, rename)."""
    tmp = bpffs.tmp_path(path)
    bpffs.unlink(tmp)
    sc.obj_pin(fd, tmp)
    try:
        os.rename(tmp, path)
    except OSError as e:
        bpffs.unlink(tmp)
        raise BpfError("cannot pin %s" % path, errno=e.errno)


class PinJournal:
    """Records each pin change with what it replaced; rollback() restores the old pins.

    The journal holds an fd of every object it unpinned, so nothing it removed is freed by
    the kernel before commit() or rollback()."""

    def __init__(self):
        self._entries = []  # (path, old BpfFd or None)
        self.created_dirs = []

    def _hold(self, path):
        if os.path.exists(path):
            return sc.obj_get(path)
        return None

    def makedirs(self, path):
        self.created_dirs.extend(bpffs.makedirs(path))

    def pin(self, fd, path):
        """Pin ``fd`` at ``path`` (replacing atomically what is there)."""
        old = self._hold(path)
        self._entries.append((path, old))
        pin_replace(fd, path)

    def unpin(self, path):
        old = self._hold(path)
        if old is None:
            return False
        self._entries.append((path, old))
        bpffs.unlink(path)
        return True

    def adopt(self, path):
        """Record a pin someone else (libbpf) created during this operation."""
        self._entries.append((path, None))

    def rollback(self):
        errors = []
        for path, old in reversed(self._entries):
            try:
                if old is None:
                    bpffs.unlink(path)
                else:
                    pin_replace(old.fd, path)
            except BpfError as e:
                errors.append("%s: %s" % (path, e))
        bpffs.remove_dirs(self.created_dirs)
        self._release()
        return errors

    def commit(self):
        self._release()

    def _release(self):
        for _path, old in self._entries:
            if old is not None:
                old.close()
        self._entries = []
        self.created_dirs = []
