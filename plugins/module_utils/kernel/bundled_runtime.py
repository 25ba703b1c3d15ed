# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The libraries the collection ships to hosts whose distribution lacks them: libbpf 1.x
(``libbpf.so.1``; Debian 11 and Ubuntu 22.04 have only libbpf 0.x) and pyroute2 0.7 (pure
Python; Debian 11 has 0.5). They live in a runtime directory of the collection's own
(``<install_dir>/runtime``: ``lib/libbpf.so.1``, ``python/pyroute2/``), never system-wide.

``lacking()`` asks the host itself what it lacks (pyroute2 by its package metadata, without
importing it); ``activate(dir)`` makes the copies in ``dir`` the ones loaded for what the host lacks.
The system's libraries win wherever they are recent enough.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import os
import sys

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import shared_library

LIBBPF = "libbpf"
PYROUTE2 = "pyroute2"
PARTS = (LIBBPF, PYROUTE2)
PYROUTE2_MINIMUM = (0, 7)
# Where modules other than ebpf_host look (they have no install_dir option): the environment's
# EBPF_OBSERVABILITY_RUNTIME_DIR, else the ebpf_programs role's default install directory's.
ENVIRONMENT = "EBPF_OBSERVABILITY_RUNTIME_DIR"
DEFAULT_DIR = "/usr/local/lib/ebpf_observability/runtime"


def paths(runtime_dir):
    """{part: where its copy lives under ``runtime_dir``}."""
    return {LIBBPF: os.path.join(runtime_dir, "lib", "libbpf.so.1"), PYROUTE2: os.path.join(runtime_dir, "python")}


def version_tuple(text):
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit()) if piece[:1].isdigit() else ""
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def pyroute2_too_old(version):
    """Whether a pyroute2 release (its version text) is older than PYROUTE2_MINIMUM."""
    return version_tuple(version) < PYROUTE2_MINIMUM


def system_pyroute2_version():
    """The version of the pyroute2 the host's Python would import (from its package metadata,
    without importing it), or None."""
    # importlib.metadata: Python 3.8+, as on every target
    from importlib import metadata  # pylint: disable=import-outside-toplevel
    try:
        return metadata.version("pyroute2")
    except metadata.PackageNotFoundError:
        return None


def system_has_libbpf():
    """Whether the host's dynamic linker finds libbpf 1.x (``libbpf.so.1``)."""
    try:
        ctypes.CDLL(shared_library.soname_of(LIBBPF))
    except OSError:
        return False
    return True


def _lacks(part):
    if part == LIBBPF:
        return not system_has_libbpf()
    version = system_pyroute2_version()
    return version is None or pyroute2_too_old(version)


_SYSTEM = {}  # "lacking": the answer for the host's own libraries, asked once per process


def lacking():
    """The parts the host's own libraries do not provide: [] where libbpf.so.1 and pyroute2 >=
    0.7 are installed. Asked once per process, before activate() puts a copy in the way: the
    shipped pyroute2's metadata would answer for the host afterwards, and its copy would never be
    compared with the controller's again."""
    if "lacking" not in _SYSTEM:
        _SYSTEM["lacking"] = [part for part in PARTS if _lacks(part)]
    return list(_SYSTEM["lacking"])


def default_dir():
    return os.environ.get(ENVIRONMENT) or DEFAULT_DIR


def activate(runtime_dir=None, parts=None):
    """Use the copies under ``runtime_dir`` (default: default_dir()) for ``parts`` (default: those
    there that the host lacks). Returns the parts activated."""
    where = paths(runtime_dir or default_dir())
    found = [part for part in (PARTS if parts is None else parts) if os.path.exists(where[part])]
    active = []
    for part in found if parts is not None else [p for p in found if p in lacking()]:
        if part == LIBBPF:
            shared_library.add_search_dir(os.path.dirname(where[LIBBPF]))
        else:
            if where[PYROUTE2] not in sys.path:
                sys.path.insert(0, where[PYROUTE2])
            for name in [m for m in sys.modules if m == "pyroute2" or m.startswith("pyroute2.")]:
                del sys.modules[name]  # an older release imported before: the copy from now on
        active.append(part)
    return active
