# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ebpf_host's side of kernel/bundled_runtime: the copies of libbpf.so.1 and pyroute2 the host
lacks, shipped from the controller by checksum like every other file, before anything needs them.

The action plugin offers the controller's copies (``runtime``: {dir, machine, libbpf: {checksum,
key}, pyroute2: {checksum, key, version, fingerprint}}; pyroute2 as a tar archive of its
pure-Python package, its checksum a fingerprint of its files that the host keeps beside them).
The host asks for the parts it lacks (``needs``) even in check mode, where they are unpacked into
a temporary directory that is removed at exit: the rest of the run needs them to plan.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import atexit
import io
import os
import platform
import shutil
import tarfile
import tempfile

from ansible_collections.ebpf.observability.plugins.module_utils.backends.host_files import checksum
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bundled_runtime as br
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.state.atomic_file import write_atomic

STAMP = ".archive.sha1"  # in the unpacked pyroute2 directory: the checksum of the archive it came from


def _current(part, dest):
    if part == br.PYROUTE2:
        try:
            with open(os.path.join(dest, STAMP)) as f:
                return f.read().strip()
        except (IOError, OSError):
            return None
    return checksum(dest)


def _members(tar, into):
    """The archive's regular files and directories, each inside ``into`` (no links, no ``..``)."""
    for member in tar.getmembers():
        path = os.path.normpath(os.path.join(into, member.name))
        if not path.startswith(into + os.sep) or not (member.isfile() or member.isdir()):
            raise BpfError("the pyroute2 archive sent holds %r, outside a plain package tree" % member.name)
        yield member


def _unpack(data, dest, digest):
    """The archive unpacked at ``dest``, replacing what was there in two renames."""
    new, old = dest + ".new", dest + ".old"
    for path in (new, old):
        shutil.rmtree(path, ignore_errors=True)
    os.makedirs(new, 0o755)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(new, members=list(_members(tar, os.path.abspath(new))))  # nosec: members checked
    write_atomic(os.path.join(new, STAMP), digest + "\n", 0o644)
    if os.path.isdir(dest):
        os.rename(dest, old)
    os.rename(new, dest)
    shutil.rmtree(old, ignore_errors=True)


class HostRuntime:
    """``offer``: the action plugin's ``runtime`` (None: nothing is shipped); ``files``: the run's
    HostFiles (items, contents, check mode)."""

    def __init__(self, offer, files):
        self.offer = offer
        self.files = files
        self.lacks = br.lacking() if offer else []
        self.specs = self._specs()

    def _specs(self):
        where = br.paths(self.offer["dir"]) if self.offer else {}
        specs, problems = [], []
        for part in self.lacks:
            offered = self.offer.get(part)
            if part == br.LIBBPF and offered and self.offer.get("machine") != platform.machine():
                problems.append("this host (%s) has no libbpf.so.1 (libbpf 1.x) and the controller's copy is for %s: "
                                "install libbpf 1.x on the host" % (platform.machine(), self.offer.get("machine")))
            elif part == br.LIBBPF and not offered:
                problems.append("this host has no libbpf.so.1 (libbpf 1.x) and the controller has none to ship: install "
                                "libbpf 1.x on the host (Debian 12, Ubuntu 23.04 and later: libbpf1) or on the controller")
            elif not offered:
                problems.append("this host's pyroute2 is %s (0.7 or later is needed) and the controller's Python has none "
                                "to ship: install pyroute2 0.7+ on the controller (pip) or on the host"
                                % (br.system_pyroute2_version() or "missing"))
            else:
                specs.append(dict(offered, part=part, dest=where[part]))
        if problems:
            raise BpfError("; ".join(problems))
        return specs

    def needs(self):
        """Keys of the parts whose content the host lacks (in check mode too: planning needs them)."""
        return [s["key"] for s in self.specs if s["key"] not in self.files.contents and _current(s["part"], s["dest"]) != s["checksum"]]

    def apply(self):
        """Writes the parts that differ (in check mode: into a temporary directory) and makes them
        the ones this process loads. Returns the parts activated."""
        active = []
        for spec in self.specs:
            current = _current(spec["part"], spec["dest"])
            runtime_dir = self.offer["dir"]
            if current != spec["checksum"]:
                if self.files.check_mode:
                    runtime_dir = tempfile.mkdtemp(prefix="ebpf-runtime-")
                    atexit.register(shutil.rmtree, runtime_dir, True)
                self._write(spec, br.paths(runtime_dir)[spec["part"]])
            self.files.item("runtime", spec["dest"], current != spec["checksum"], "write", part=spec["part"],
                            checksum=spec["checksum"], diff={"before": {"checksum": current}, "after": {"checksum": spec["checksum"]}})
            active += br.activate(runtime_dir, [spec["part"]])
        return active

    def _write(self, spec, dest):
        data = self.files.content(spec, verify=not spec.get("fingerprint"))
        os.makedirs(os.path.dirname(dest), 0o755, exist_ok=True)
        if spec["part"] == br.PYROUTE2:
            _unpack(data, dest, spec["checksum"])
        else:
            write_atomic(dest, data, 0o644)

    def remove(self, runtime_dir):
        """state=absent: the copies this module writes, then their directories when empty."""
        where = br.paths(runtime_dir)
        for part, path in sorted(where.items()):
            if part == br.PYROUTE2 and os.path.isfile(os.path.join(path, STAMP)):
                if not self.files.check_mode:
                    shutil.rmtree(path)
                self.files.item("runtime", path, True, "remove", part=part)
            elif part == br.LIBBPF:
                self.files.remove(path)
        for path in (os.path.dirname(where[br.LIBBPF]), runtime_dir):
            self.files.remove_empty_directory(path)
