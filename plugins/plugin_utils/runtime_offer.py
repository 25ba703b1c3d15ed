# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's copies of libbpf.so.1 and pyroute2 that ebpf_host offers to hosts whose
distribution lacks them (module_utils/kernel/bundled_runtime, module_utils/backends/host_runtime).

libbpf: the ``libbpf.so.1`` this controller's dynamic linker loads (its path read from
/proc/self/maps once loaded), for this controller's machine. pyroute2: the package this
controller's Python imports, 0.7 or later, offered by a fingerprint of its files (names, sizes,
times) and sent, to a host that asks, as a tar archive of them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import hashlib
import io
import os
import platform
import tarfile

_cache = {}


def _libbpf_path():
    try:
        ctypes.CDLL("libbpf.so.1")
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split(None, 5)[-1].strip()
                if os.path.basename(path).startswith("libbpf.so.1"):
                    return path
    except (OSError, IOError):
        pass
    return None


def _pyroute2_package():
    """(package directory, version, entry points text) of the controller's pyroute2 0.7+, or Nones."""
    try:
        from importlib import metadata  # pylint: disable=import-outside-toplevel
        import importlib.util  # pylint: disable=import-outside-toplevel
        dist = metadata.distribution("pyroute2")
        spec = importlib.util.find_spec("pyroute2")
    except Exception:  # pylint: disable=broad-except
        return None, None, None
    version = dist.version
    if spec is None or not spec.submodule_search_locations or tuple(int(x) for x in version.split(".")[:2]) < (0, 7):
        return None, None, None
    return list(spec.submodule_search_locations)[0], version, dist.read_text("entry_points.txt") or ""


def _package_files(root):
    for directory, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(n for n in names if not n.endswith((".pyc", ".pyo"))):
            yield os.path.join(directory, name)


def _fingerprint(root, version, entry_points):
    """What identifies the package's files without reading them: names, sizes and times."""
    digest = hashlib.sha1((version + "\0" + entry_points).encode())
    for path in _package_files(root):
        st = os.stat(path)
        digest.update(("%s\0%d\0%d\0" % (os.path.relpath(path, root), st.st_size, st.st_mtime_ns)).encode())
    return digest.hexdigest()


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def _archive(root, version, entry_points):
    """The package as a tar archive (built only for a host that asks for it), with the metadata
    pyroute2 0.7 fills its namespace from: its entry points (IPRoute and the rest are entry
    points of the group ``pyroute2``), in a dist-info directory of their own."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _package_files(root):
            with open(path, "rb") as f:
                _add(tar, os.path.join("pyroute2", os.path.relpath(path, root)), f.read())
        info = "pyroute2-%s.dist-info/" % version
        _add(tar, info + "METADATA", ("Metadata-Version: 2.1\nName: pyroute2\nVersion: %s\n" % version).encode())
        _add(tar, info + "entry_points.txt", entry_points.encode())
    return buf.getvalue()


def runtime_offer(runtime_dir, sources):
    """The ebpf_host ``runtime`` argument for ``runtime_dir``; the contents go into ``sources``
    ({key: bytes, or a function returning them}) under runtime/libbpf and runtime/pyroute2.
    pyroute2's checksum is the fingerprint of its files (the host keeps it beside its copy)."""
    if "offer" not in _cache:  # once per controller process: every host gets the same copies
        root, version, entry_points = _pyroute2_package()
        libbpf = _libbpf_path()
        if libbpf:
            with open(libbpf, "rb") as f:
                libbpf = f.read()
        _cache["offer"] = (libbpf, hashlib.sha1(libbpf).hexdigest() if libbpf else None, root, version, entry_points,
                           _fingerprint(root, version, entry_points) if root else None)
    libbpf, libbpf_checksum, root, version, entry_points, fingerprint = _cache["offer"]
    offer = {"dir": runtime_dir, "machine": platform.machine(), "libbpf": None, "pyroute2": None}
    if libbpf:
        sources["runtime/libbpf"] = libbpf
        offer["libbpf"] = {"checksum": libbpf_checksum, "key": "runtime/libbpf"}
    if root:
        sources["runtime/pyroute2"] = lambda: _archive(root, version, entry_points)
        offer["pyroute2"] = {"checksum": fingerprint, "key": "runtime/pyroute2", "version": version, "fingerprint": True}
    return offer
