# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One host-wide lock that serialises every run that changes the host's eBPF state.

Two playbooks, an AWX job and ``ebpf-observability-restore.service`` may run against one host at
the same moment; each one's look-then-change (what is attached, then attach) must not interleave
with another's. Every module that changes kernel state (outside check mode), the one-call
converge and the restore command hold this lock for their whole run, as dpkg and apt hold theirs.

It is a kernel file lock (``flock(2)``) on ``/run/ebpf-observability.lock``: it dies with the
process that holds it, so a run killed with ``kill -9`` never leaves a lock that blocks the
next. A waiter polls for at most ``timeout`` seconds (default 120, or the environment's
``EBPF_OBSERVABILITY_LOCK_TIMEOUT``), then fails with an error that names the process holding
it. Readers (ebpf_info, the exporter) never take it. ``EBPF_OBSERVABILITY_LOCK`` names another
lock file (tests use it to keep their runs apart from the host's).

The file is opened without following links (``/run`` is root's, but a pin root is not the only
place an attacker could plant one) and the holder writes its pid and command into it, so a
waiter can say who holds it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import sys
import time

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

DEFAULT_PATH = "/run/ebpf-observability.lock"
DEFAULT_TIMEOUT = 120.0
POLL_INTERVAL = 0.02

_held = {}  # path -> [fd, depth]: the lock is re-entrant within one process


def lock_path():
    return os.environ.get("EBPF_OBSERVABILITY_LOCK") or DEFAULT_PATH


def lock_timeout():
    try:
        return float(os.environ.get("EBPF_OBSERVABILITY_LOCK_TIMEOUT") or DEFAULT_TIMEOUT)
    except ValueError:
        return DEFAULT_TIMEOUT


def _holder(fd):
    """'pid N (command)' of the process that wrote itself into the lock file, or a vaguer text."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").split("\n")
        pid = int(text[0])
    except (OSError, ValueError, IndexError):
        return "another process"
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except (IOError, OSError):
        cmdline = text[1] if len(text) > 1 else ""
    return "pid %d (%s)" % (pid, cmdline[:200] or "unknown command")


def _open(path):
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        hint = "the lock file must be a regular file, not a link" if e.errno == errno.ELOOP else None
        raise BpfError("cannot open the host lock %s" % path, errno=e.errno, hint=hint)


class HostLock:
    """``with HostLock(what):`` holds the host lock for the block (re-entrant in one process)."""

    def __init__(self, what="a run", path=None, timeout=None):
        self.what = what
        self.path = path or lock_path()
        self.timeout = lock_timeout() if timeout is None else timeout
        self.waited = 0.0

    def acquire(self):
        held = _held.get(self.path)
        if held:
            held[1] += 1
            return self
        fd = _open(self.path)
        start = time.monotonic()
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES):
                        raise BpfError("cannot take the host lock %s" % self.path, errno=e.errno)
                if time.monotonic() - start >= self.timeout:
                    raise BpfError(
                        "%s waited %.0f s for the host lock %s, held by %s" % (
                            self.what, self.timeout, self.path, _holder(fd)),
                        hint="another run changes this host's eBPF state; let it finish, or raise "
                             "EBPF_OBSERVABILITY_LOCK_TIMEOUT")
                time.sleep(POLL_INTERVAL)
            os.ftruncate(fd, 0)
            os.pwrite(fd, ("%d\n%s\n" % (os.getpid(), " ".join(sys.argv)[:200])).encode("utf-8", "replace"), 0)
        except BaseException:
            os.close(fd)
            raise
        self.waited = time.monotonic() - start
        _held[self.path] = [fd, 1]
        return self

    def release(self):
        held = _held.get(self.path)
        if not held:
            return
        held[1] -= 1
        if held[1] == 0:
            del _held[self.path]
            os.close(held[0])  # closing the only descriptor drops the flock

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
