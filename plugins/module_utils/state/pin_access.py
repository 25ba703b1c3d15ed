# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read access to the pins for the exporter's group, so the exporter need not run as root.

bpffs creates every pin as mode 0600 owned by the pinning user (root), and opening a pin is
checked like opening a file. The kernel opens map pins read-only with BPF_F_RDONLY and program
pins read-only too (BPF_OBJ_GET checks read permission only), so group read is all the exporter
needs. :func:`grant_pin_access` gives, for each configured object under the pin root:

* ``<pin_root>``: search permission for the group (``g+x``) unless everyone has it already;
* ``<pin_root>/<name>``, ``progs/``, ``maps/``: group ``group``, mode 0750;
* every pin in ``progs/`` and ``maps/``, and the load record ``state``: group ``group``, mode 0640,
  but 0660 for a PERF_EVENT_ARRAY map: a perf_event_array counter puts its perf buffers in it
  (exporter.perf_events), which needs the map opened read-write;
* ``links/``: group ``group``, mode 0750, so the exporter can list the link pins' names (which
  say what is attached where: exporter.link_pins).

The link pins themselves are left alone: the kernel opens a link only read-write, and a writable
link would let its holder detach the program. A reload pins new programs (0600 again), so this
has to run after every load: the role's path unit runs it whenever the pins change, and the
service runs it before it starts. Nothing is changed that already fits.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.state import accounts
from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_state import STATE_PIN
from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_state import LINKS_DIR, MAPS_DIR, PROGS_DIR

DIR_MODE = 0o750
PIN_MODE = 0o640
WRITABLE_PIN_MODE = 0o660


def _is_perf_event_array(path):
    try:
        with sc.obj_get(path, sc.BPF_F_RDONLY) as fd:
            return sc.map_info(fd)["type_name"] == "perf_event_array"
    except BpfError:
        return False  # not a map, or gone


def group_id(group):
    """The gid of a group name or id."""
    if isinstance(group, int) or (isinstance(group, str) and group.isdigit()):
        return int(group)
    entry = accounts.group(group)
    if entry is None:
        raise BpfError("group %r does not exist" % group, hint="create it (the ebpf_exporter role does) or fix 'group'")
    return entry.gr_gid


def _fix(path, gid, mode, check_mode, changes):
    """Give ``path`` the group and mode; record what changed. A path that vanished is skipped."""
    try:
        st = os.lstat(path)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return
        raise BpfError("cannot stat %s" % path, errno=e.errno)
    what = []
    if gid is not None and st.st_gid != gid:
        what.append("group %d -> %d" % (st.st_gid, gid))
    if stat.S_IMODE(st.st_mode) != mode:
        what.append("mode %04o -> %04o" % (stat.S_IMODE(st.st_mode), mode))
    if not what:
        return
    if not check_mode:
        try:
            if gid is not None and st.st_gid != gid:
                os.chown(path, -1, gid)
            os.chmod(path, mode)
        except OSError as e:
            if e.errno == errno.ENOENT:
                return
            raise BpfError("cannot change group or mode of %s" % path, errno=e.errno,
                           hint="run --grant-access as root")
    changes.append("%s: %s" % (path, ", ".join(what)))


def grant_pin_access(pin_root, names, group, check_mode=False):
    """Give ``group`` read access to the pins of the objects ``names``; returns the changes
    (one text per path), all of them only reported when ``check_mode``."""
    gid = group_id(group)
    changes = []
    if not os.path.isdir(pin_root):
        return changes
    st = os.stat(pin_root)
    if not st.st_mode & stat.S_IXOTH and not (st.st_gid == gid and st.st_mode & stat.S_IXGRP):
        _fix(pin_root, gid, stat.S_IMODE(st.st_mode) | stat.S_IXGRP, check_mode, changes)
    # The directories above it on bpffs (systemd mounts /sys/fs/bpf with mode 0700): search
    # permission only, so the group can reach the pin root by name; nothing there becomes
    # listable or readable.
    parent = os.path.dirname(os.path.normpath(pin_root))
    while parent != os.path.dirname(parent) and bpffs.is_bpffs(parent):
        st = os.stat(parent)
        if not st.st_mode & stat.S_IXOTH and not (st.st_gid == gid and st.st_mode & stat.S_IXGRP):
            _fix(parent, None, stat.S_IMODE(st.st_mode) | stat.S_IXOTH, check_mode, changes)
        parent = os.path.dirname(parent)
    for name in names:
        pin_dir = bpffs.pin_path(pin_root, name)
        if not os.path.isdir(pin_dir):
            continue
        _fix(pin_dir, gid, DIR_MODE, check_mode, changes)
        _fix(os.path.join(pin_dir, STATE_PIN), gid, PIN_MODE, check_mode, changes)
        for sub in (PROGS_DIR, MAPS_DIR, LINKS_DIR):
            directory = os.path.join(pin_dir, sub)
            if not os.path.isdir(directory):
                continue
            _fix(directory, gid, DIR_MODE, check_mode, changes)
            if sub == LINKS_DIR:
                continue  # the names only, never the links
            for pin in bpffs.list_pins(directory):
                path = os.path.join(directory, pin)
                _fix(path, gid, WRITABLE_PIN_MODE if sub == MAPS_DIR and _is_perf_event_array(path) else PIN_MODE,
                     check_mode, changes)
    return changes
