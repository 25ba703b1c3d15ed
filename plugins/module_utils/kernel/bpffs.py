# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bpffs helpers: is a path on bpffs, safe names, pin paths that cannot escape the pin root,
and directory creation/removal that can be rolled back."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import os
import re

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError, errno_error

BPFFS_MAGIC = 0xCAFE4A11
DEFAULT_MOUNT = "/sys/fs/bpf"
DEFAULT_PIN_ROOT = "/sys/fs/bpf/ebpf_observability"
MOUNT_HINT = "mount it with 'mount -t bpf bpf %s' (the ebpf_programs role keeps it mounted)" % DEFAULT_MOUNT

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$")
# bpffs refuses names with '.'; C identifiers cannot hold '-', so this suffix never names a
# program or map, and marks a pin that is being replaced.
TMP_SUFFIX = "-new"


class _Statfs(ctypes.Structure):
    # Only f_type is read; the buffer is large enough for struct statfs on every Linux ABI.
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 120)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Statfs)]
_libc.statfs.restype = ctypes.c_int


def fs_magic(path):
    """statfs(2) f_type of the filesystem holding ``path``."""
    buf = _Statfs()
    if _libc.statfs(path.encode(), ctypes.byref(buf)) != 0:
        raise errno_error("cannot statfs %s" % path, ctypes.get_errno())
    return buf.f_type & 0xFFFFFFFF


def is_bpffs(path):
    try:
        return fs_magic(path) == BPFFS_MAGIC
    except BpfError:
        return False


def check_name(name, what="name"):
    """A name used as one path component under the pin root: letters, digits, '_' and '-',
    not starting with '-', at most 128 characters (bpffs refuses '.' in names)."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise BpfError(
            "invalid %s %r" % (what, name),
            hint="use letters, digits, '_' and '-' only, not starting with '-', at most 128 characters "
                 "(bpffs refuses '.' and '/')")
    return name


def check_on_bpffs(path, what):
    """``path`` (which may not exist yet) must lie on a bpf filesystem; BpfError naming the
    file system it is on otherwise."""
    existing = _nearest_existing(os.path.abspath(path))
    if is_bpffs(existing):
        return path
    raise BpfError("%s %s is not on bpffs (%s is on a file system of type 0x%08x, not bpf 0x%08x)" % (
        what, path, existing, fs_magic(existing), BPFFS_MAGIC),
        hint="give the path of a program pinned on bpffs, such as %s/<name>/progs/<program>" % DEFAULT_PIN_ROOT)


def _nearest_existing(path):
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def check_pin_root(pin_root):
    """The pin root must be an absolute path on a mounted bpffs (it may not exist yet)."""
    if not os.path.isabs(pin_root):
        raise BpfError("pin root %r must be an absolute path on bpffs (default %s)" % (pin_root, DEFAULT_PIN_ROOT))
    pin_root = os.path.normpath(pin_root)
    existing = _nearest_existing(pin_root)
    if is_bpffs(existing):
        return pin_root
    if pin_root == DEFAULT_MOUNT or pin_root.startswith(DEFAULT_MOUNT + "/"):
        raise BpfError("bpffs is not mounted at %s" % DEFAULT_MOUNT, hint=MOUNT_HINT)
    raise BpfError("pin root %s is not on bpffs (%s is not a bpf filesystem)" % (pin_root, existing),
                   hint="choose a directory under a bpffs mount such as %s" % DEFAULT_PIN_ROOT)


def _mount_point(path):
    """The bpffs mount that holds ``path`` (an existing path on bpffs)."""
    while path != "/" and is_bpffs(os.path.dirname(path)):
        path = os.path.dirname(path)
    return path


def check_trusted(path):
    """Refuse a directory that another user could change under us: ``path`` and each existing
    directory above it, up to (not including) its bpffs mount point, must belong to this user and
    be writable by no one else. A bpffs mount may be world-writable (mode 1777 is common), so
    anyone could create a pin root or object directory there first and later rename or replace
    what the collection pins in it."""
    path = os.path.normpath(path)
    existing = _nearest_existing(path)
    if not is_bpffs(existing):
        return path
    mount = _mount_point(existing)
    uid = os.geteuid()
    current = existing
    while current != mount and current.startswith(mount + os.sep):
        st = os.lstat(current)
        if st.st_uid != uid or st.st_mode & 0o022:
            owner = "user %d" % st.st_uid if st.st_uid != uid else "this user"
            raise BpfError(
                "%s belongs to %s with mode %04o: another user could rename or replace what is pinned there"
                % (current, owner, st.st_mode & 0o7777),
                hint="remove it (it was not made by this collection), or make it owned by uid %d and writable by it "
                     "alone (chown %d %s; chmod go-w %s)" % (uid, uid, current, current))
        current = os.path.dirname(current)
    return path


def pin_path(root, *names):
    """Join checked names under ``root``; the result never leaves ``root``."""
    path = root
    for name in names:
        path = os.path.join(path, check_name(name))
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise BpfError("pin path %s escapes the pin root %s" % (path, root))
    return path


def makedirs(path):
    """mkdir -p; returns the directories it created, deepest last, for rollback."""
    created = []
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
            created.append(directory)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise errno_error("cannot create %s" % directory, e.errno)
    return created


def remove_dirs(created):
    """Remove directories made by makedirs() when they are still empty."""
    for directory in reversed(created):
        try:
            os.rmdir(directory)
        except OSError:
            pass


def unlink(path):
    """Remove a pin; a pin that is already gone is fine. Returns whether it removed one."""
    try:
        os.unlink(path)
        return True
    except OSError as e:
        if e.errno == errno.ENOENT:
            return False
        raise errno_error("cannot remove pin %s" % path, e.errno)


def tmp_path(path):
    return path + TMP_SUFFIX


def list_pins(directory):
    """Names of the entries of a pin directory (without pins being replaced); [] when it does
    not exist."""
    try:
        return sorted(n for n in os.listdir(directory) if not n.endswith(TMP_SUFFIX))
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return []
        raise errno_error("cannot list %s" % directory, e.errno)


def remove_tree(directory):
    """Unpin everything below ``directory`` and remove it. Returns the pins removed."""
    removed = []
    if not os.path.isdir(directory):
        return removed
    for top, dirs, files in os.walk(directory, topdown=False):
        for name in files:
            path = os.path.join(top, name)
            if unlink(path):
                removed.append(path)
        for name in dirs:
            os.rmdir(os.path.join(top, name))
    os.rmdir(directory)
    return removed
