# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files, directories, bpffs mount and systemd units around a host's programs, converged in
the same run as the kernel state (the ebpf_host module).

Files are decided by SHA-1 checksum: the controller sends each file's checksum, and its content
only when the host's copy differs (``missing_contents`` lists those before anything changes; the
ebpf_host action plugin sends them in a second call). Every write is atomic (state/atomic_file).
Units are enabled through ``systemctl`` (its exit status, never its text), only where systemd runs
the host (``/run/systemd/system``); bpffs is mounted with mount(2) where it is not.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import ctypes
import fnmatch
import hashlib
import os
import shlex
import subprocess
import tempfile

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.state import accounts
from ansible_collections.ebpf.observability.plugins.module_utils.state.atomic_file import write_atomic

SYSTEMD_RUNTIME = "/run/systemd/system"
_LIBC = ctypes.CDLL(None, use_errno=True)


def checksum(path):
    """SHA-1 of a file's content (hex), or None when there is no regular file."""
    digest = hashlib.sha1()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 16), b""):
                digest.update(block)
    except (IOError, OSError):
        return None
    return digest.hexdigest()


def _account_id(lookup, name, check_mode):
    """The uid or gid of a user or group name (``lookup``: accounts.user or accounts.group); None
    in check mode when it is still to be created."""
    entry = lookup(name)
    if entry is not None:
        return entry[2]
    if check_mode:
        return None
    raise BpfError("no user or group %s on this host" % name)


def validate(dest, data, command):
    """Run ``command`` (its ``%s`` replaced by a copy of the new content beside ``dest``; split
    like a shell would, never run by one) and refuse the content unless it exits 0."""
    argv = shlex.split(command)
    if "%s" not in argv:
        raise BpfError("the validate command of %s must name the file to check as %%s: %s" % (dest, command))
    fd, path = tempfile.mkstemp(prefix="." + os.path.basename(dest) + ".", dir=os.path.dirname(dest))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        proc = subprocess.run([path if a == "%s" else a for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              check=False, universal_newlines=True)
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        raise BpfError("the new content of %s failed its check (%s exited with %d): %s" % (
            dest, argv[0], proc.returncode, (proc.stderr or proc.stdout).strip()[-1500:]))


def systemd_runs():
    return os.path.isdir(SYSTEMD_RUNTIME)


class HostFiles:
    """File, directory, mount and unit steps; each appends an item like HostConverge's."""

    def __init__(self, check_mode=False, contents=None):
        self.check_mode = check_mode
        self.contents = contents or {}
        self.items = []
        self.warnings = []
        self.reload_units = False

    def item(self, step, name, changed, action, **extra):
        item = dict(step=step, name=name, changed=changed, action=action if changed else "none", **extra)
        self.items.append(item)
        return item

    # -- directories and files ----------------------------------------------------------------

    def directory(self, path, mode=0o755, owner=None, group=None):
        exists = os.path.isdir(path)
        if not exists and not self.check_mode:
            try:
                os.makedirs(path, mode)
                os.chmod(path, mode)
            except OSError as e:
                raise BpfError("cannot create the directory %s" % path, errno=e.errno)
        if owner is None and group is None:
            return self.item("directory", path, not exists, "create")
        uid = -1 if owner is None else _account_id(accounts.user, owner, self.check_mode)
        gid = -1 if group is None else _account_id(accounts.group, group, self.check_mode)
        st = os.stat(path) if exists else None
        fix = st is None or (st.st_mode & 0o7777) != mode or uid not in (-1, st.st_uid) or gid not in (-1, st.st_gid)
        if fix and not self.check_mode:
            try:
                os.chown(path, uid, gid)
                os.chmod(path, mode)
            except OSError as e:
                raise BpfError("cannot give %s its owner and mode" % path, errno=e.errno)
        return self.item("directory", path, fix, "create" if not exists else "set owner and mode")

    def existing_directory(self, path, made_by):
        """A directory another role manages: it must exist (unless in check mode, where that role
        may not have run yet)."""
        if not os.path.isdir(path) and not self.check_mode:
            raise BpfError("%s is not a directory" % path, hint="%s must run first and create it" % made_by)
        return self.item("directory", path, False, "none")

    def missing_contents(self, specs):
        """The keys of ``specs`` whose content the host needs before anything may change (none in
        check mode, which reports a differing file as changed without its content)."""
        if self.check_mode:
            return []
        return [s["key"] for s in specs if s["key"] not in self.contents and checksum(s["dest"]) != s["checksum"]]

    def file(self, spec):
        """``spec``: {dest, checksum, key, mode}; the content comes from ``contents[key]`` when the
        host's copy differs (missing_contents, asked first, names the files lacking it). Returns the item."""
        dest, mode = spec["dest"], int(str(spec.get("mode") or "0644"), 8)
        current = checksum(dest)
        same = current == spec["checksum"]
        mode_ok = same and (os.stat(dest).st_mode & 0o7777) == mode
        if same and mode_ok:
            return self.item("file", dest, False, "write", checksum=current)
        if not self.check_mode:
            if same:
                os.chmod(dest, mode)
            else:
                data = self.content(spec)
                if spec.get("validate"):
                    validate(dest, data, spec["validate"])
                write_atomic(dest, data, mode)
        if spec.get("unit"):
            self.reload_units = True
        return self.item("file", dest, True, "write", checksum=spec["checksum"],
                         diff={"before": {"checksum": current}, "after": {"checksum": spec["checksum"]}})

    def content(self, spec, verify=True):
        """The content sent for ``spec`` ({dest, checksum, key}), decoded; with ``verify``, checked
        against the spec's checksum (without: the checksum is of something else, as the fingerprint
        of an archive's files)."""
        if spec["key"] not in self.contents:
            raise BpfError("no content was sent for %s (its checksum differs)" % spec["dest"])
        data = base64.b64decode(self.contents[spec["key"]])
        if verify and hashlib.sha1(data).hexdigest() != spec["checksum"]:
            raise BpfError("the content sent for %s does not match its checksum %s" % (spec["dest"], spec["checksum"]))
        return data

    def text(self, dest, text, mode=0o644):
        """A small file whose content the host computes itself (the restore plan)."""
        data = text.encode("utf-8")
        current = checksum(dest)
        wanted = hashlib.sha1(data).hexdigest()
        if current != wanted and not self.check_mode:
            write_atomic(dest, data, mode)
        return self.item("file", dest, current != wanted, "write", checksum=wanted,
                         diff={"before": {"checksum": current}, "after": {"checksum": wanted}})

    def remove(self, path):
        exists = os.path.lexists(path)
        if exists and not self.check_mode:
            try:
                os.unlink(path)
            except OSError as e:
                raise BpfError("cannot remove %s" % path, errno=e.errno)
        return self.item("remove", path, exists, "remove")

    def prune(self, directory, pattern, keep):
        """Remove the files matching ``pattern`` in ``directory`` that ``keep`` does not name."""
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return
        for name in names:
            if fnmatch.fnmatch(name, pattern) and name not in keep and os.path.isfile(os.path.join(directory, name)):
                self.remove(os.path.join(directory, name))

    def remove_empty_directory(self, path):
        try:
            empty = os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path)
        except OSError:
            empty = False
        if empty and not self.check_mode:
            os.rmdir(path)
        return self.item("remove", path, empty, "remove")

    # -- bpffs ------------------------------------------------------------------------------------

    def mount_bpffs(self, path, options):
        """Mount bpffs at ``path`` (mount(2); the libc call, as no library here offers it) unless it is."""
        mounted = bpffs.is_bpffs(path)
        if not mounted and not self.check_mode:
            if not os.path.isdir(path):
                os.makedirs(path, 0o700)
            ret = _LIBC.mount(b"bpf", path.encode(), b"bpf", ctypes.c_ulong(_mount_flags(options)),
                              _mount_data(options).encode() or None)
            if ret != 0:
                raise BpfError("cannot mount bpffs at %s" % path, errno=ctypes.get_errno())
        return self.item("mount", path, not mounted, "mount")

    # -- systemd units ----------------------------------------------------------------------------

    def _systemctl(self, *args):
        return subprocess.run(("systemctl",) + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              check=False, universal_newlines=True)

    def unit(self, name, enabled, start=False, stop=False, restart=False):
        """Enable (or disable) a unit, reloading systemd first when a unit file changed; start,
        stop or restart it when asked. Nothing where systemd does not run the host (a warning
        says so when a unit should run; a disabled unit needs nothing from systemd)."""
        if not systemd_runs():
            warning = "systemd is not running on this host (no %s): the units are installed but not enabled or " \
                "started" % SYSTEMD_RUNTIME
            if (enabled or start or restart) and warning not in self.warnings:
                self.warnings.append(warning)
            return self.item("unit", name, False, "none", note="systemd does not run this host")
        if self.reload_units and not self.check_mode:
            self.reload_units = False
            self._check(self._systemctl("daemon-reload"), "reload systemd's units")
        is_enabled = self._systemctl("is-enabled", "--quiet", name).returncode == 0
        changed = is_enabled != enabled
        if changed and not self.check_mode:
            self._check(self._systemctl("enable" if enabled else "disable", name), "%s %s" % (
                "enable" if enabled else "disable", name))
        if stop and self._systemctl("is-active", "--quiet", name).returncode == 0:
            changed = True
            if not self.check_mode:
                self._check(self._systemctl("stop", name), "stop %s" % name)
        active = (start or restart) and self._systemctl("is-active", "--quiet", name).returncode == 0
        if (start and not active) or (restart and active):
            changed = True
            verb = "restart" if active else "start"
            if not self.check_mode:
                self._check(self._systemctl(verb, name), "%s %s" % (verb, name))
        return self.item("unit", name, changed, "enable" if enabled else "disable")

    def forget_units(self):
        """daemon-reload after unit files were removed."""
        if systemd_runs() and any(i["changed"] for i in self.items if i["step"] == "remove") and not self.check_mode:
            self._check(self._systemctl("daemon-reload"), "reload systemd's units")

    @staticmethod
    def _check(proc, what):
        if proc.returncode != 0:
            raise BpfError("systemctl could not %s: %s" % (what, (proc.stderr or proc.stdout).strip()[:500]))


_MS_FLAGS = {"nosuid": 0x2, "nodev": 0x4, "noexec": 0x8}


def _mount_flags(options):
    return sum(_MS_FLAGS.get(o, 0) for o in options.split(","))


def _mount_data(options):
    return ",".join(o for o in options.split(",") if o and o not in _MS_FLAGS)
