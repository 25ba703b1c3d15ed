# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a file so that a reader never sees a partial one (the exporter's textfile, the
attachment event file).

The text goes to a temporary file in the target's directory (``.<name>.<random>``: a leading
dot and no ``.prom`` suffix, so node_exporter's textfile collector never reads it), is flushed
and fsynced, gets its final mode, and is renamed over the target: rename(2) within one
filesystem replaces the name atomically, so a reader opens either the old file or the new one.
The directory is fsynced afterwards so the new name survives a crash. A writer killed before
the rename leaves only a temporary file behind, which :func:`remove_stale_temporaries` deletes
at the next start. ``durable=False`` leaves out both fsyncs, for a file rewritten at every pass
(the exporter's textfile): readers still see the old file or the new one, but after a power loss
the file may be the old one, empty or missing until the next write.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import tempfile

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

DEFAULT_MODE = 0o644


def _temp_prefix(path):
    return "." + os.path.basename(path) + "."


def write_atomic(path, text, mode=DEFAULT_MODE, durable=True):
    """Replace the file at ``path`` with ``text`` (str, written as UTF-8, bytes, or a list of
    bytes chunks written one after the other) in one rename; fsynced unless not ``durable``."""
    directory = os.path.dirname(os.path.abspath(path))
    chunks = text if isinstance(text, list) else [text if isinstance(text, bytes) else text.encode("utf-8")]
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), dir=directory)
    except OSError as e:
        raise BpfError("cannot create a temporary file in %s for %s" % (directory, path), errno=e.errno,
                       hint="the writer needs write access to the directory (for the exporter: ReadWritePaths= of its unit)")
    try:
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException as e:
        _unlink_quietly(tmp)
        if isinstance(e, OSError):
            raise BpfError("cannot write %s" % path, errno=e.errno)
        raise
    if durable:
        _fsync_directory(directory)


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the rename is done either way
    finally:
        os.close(fd)


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def remove_stale_temporaries(path):
    """Delete temporary files a killed writer of ``path`` left behind; returns their names.

    Call it once at start, before the first write: a temporary file of another live writer of
    the same path would be removed too.
    """
    directory = os.path.dirname(os.path.abspath(path))
    prefix = _temp_prefix(path)
    removed = []
    try:
        names = os.listdir(directory)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return removed
        raise BpfError("cannot list %s" % directory, errno=e.errno)
    for name in names:
        if name.startswith(prefix):
            _unlink_quietly(os.path.join(directory, name))
            removed.append(name)
    return removed
