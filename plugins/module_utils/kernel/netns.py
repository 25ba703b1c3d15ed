# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host's network namespaces: every one that can be reached (named ones under /run/netns,
those of running processes), and running code inside one.

A namespace is known by the inode of its nsfs file, the same through every path that refers
to it. ``entered(path)`` moves the calling thread only (setns(CLONE_NEWNET)), so
bpffs stays visible and the rest of the process is untouched; sockets opened inside (netlink)
belong to that namespace, BPF_PROG_QUERY by ifindex reads its interfaces.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import ctypes
import errno
import glob
import os

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError, errno_error

CLONE_NEWNET = 0x40000000
NAMED_DIR = "/run/netns"
SELF = "/proc/thread-self/ns/net"
_libc = ctypes.CDLL(None, use_errno=True)


def key_of(path):
    """The inode of the namespace ``path`` refers to; OSError when it cannot be read."""
    return os.stat(path).st_ino


def current():
    """The key of the calling thread's network namespace."""
    return key_of(SELF)


def namespaces():
    """[(path, key)] of every reachable network namespace, one path each (a named one when
    there is one), the calling thread's included."""
    seen = {}
    for path in sorted(glob.glob(os.path.join(NAMED_DIR, "*"))) + glob.glob("/proc/[0-9]*/ns/net"):
        try:
            key = key_of(path)
        except OSError:
            continue  # the process ended, or the name is not a namespace
        seen.setdefault(key, path)
    return [(path, key) for key, path in seen.items()]


def path_of(key, hint=None):
    """A path of the namespace ``key`` now (``hint`` first), or None when it is gone."""
    try:
        if hint and key_of(hint) == key:
            return hint
    except OSError:
        pass
    for path, found in namespaces():
        if found == key:
            return path
    return None


def _setns(fd, what):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise errno_error("cannot enter the network namespace %s" % what, ctypes.get_errno())


@contextlib.contextmanager
def entered(path, key=None):
    """Run the calling thread in the network namespace at ``path`` (checked to be ``key`` when
    given) for the duration."""
    home = os.open(SELF, os.O_RDONLY)
    try:
        try:
            target = os.open(path, os.O_RDONLY)
        except OSError as e:
            raise BpfError("cannot open the network namespace %s" % path, errno=e.errno or errno.ENOENT)
        try:
            if key is not None and os.fstat(target).st_ino != key:
                raise BpfError("%s is no longer the network namespace it was" % path, errno=errno.ENOENT)
            _setns(target, path)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home, "of this thread (returning)")
    finally:
        os.close(home)
