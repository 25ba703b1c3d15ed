# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libxdp (``libxdp.so.1``, xdp-tools 1.3) through ctypes: the multi-program XDP dispatcher
that xdp-loader and bpfman share (xdp-tools' ``lib/libxdp/protocol.org``).

An interface runs either one plain ("legacy") XDP program or libxdp's dispatcher, which calls up
to ten component programs (loaded as ``freplace`` extensions of its slots) in priority order,
going on to the next while a component returns one of its chain-call actions. libxdp builds a
new dispatcher for every change and swaps it in atomically; its bpffs state lives under
``<bpffs>/xdp/dispatch-<ifindex>-<dispatcher id>/`` and its lock on that directory keeps
xdp-loader, bpfman and this collection apart.

Written against the libxdp 1.3 ABI Debian 12 ships (``struct xdp_program_opts`` as of 1.3).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import os
import threading

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import libbpf
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import shared_library
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

LIBXDP_SONAME = "libxdp.so.1"
# enum xdp_attach_mode
MODES = {"drv": 1, "skb": 2, "hw": 3}
MODE_NAMES = dict((v, k) for k, v in MODES.items())
# enum xdp_action, in order
ACTIONS = ("aborted", "drop", "pass", "tx", "redirect")
MAX_COMPONENTS = 10
DEFAULT_PRIORITY = 50
STATE_DIR = "xdp"  # libxdp's directory on the bpffs mount

_P = ctypes.c_void_p


class _ProgramOpts(ctypes.Structure):
    """struct xdp_program_opts (libxdp 1.3)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("obj", _P),
        ("opts", _P),
        ("prog_name", ctypes.c_char_p),
        ("find_filename", ctypes.c_char_p),
        ("open_filename", ctypes.c_char_p),
        ("pin_path", ctypes.c_char_p),
        ("id", ctypes.c_uint32),
        ("fd", ctypes.c_int),
    ]


_SIGNATURES = {
    "libxdp_get_error": (ctypes.c_long, [_P]),
    "libxdp_strerror": (ctypes.c_int, [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]),
    "libxdp_set_print": (_P, [_P]),
    "xdp_program__create": (_P, [ctypes.POINTER(_ProgramOpts)]),
    "xdp_program__from_id": (_P, [ctypes.c_uint32]),
    "xdp_program__close": (None, [_P]),
    "xdp_program__id": (ctypes.c_uint32, [_P]),
    "xdp_program__name": (ctypes.c_char_p, [_P]),
    "xdp_program__run_prio": (ctypes.c_uint, [_P]),
    "xdp_program__set_run_prio": (ctypes.c_int, [_P, ctypes.c_uint]),
    "xdp_program__chain_call_enabled": (ctypes.c_bool, [_P, ctypes.c_int]),
    "xdp_program__set_chain_call_enabled": (ctypes.c_int, [_P, ctypes.c_uint, ctypes.c_bool]),
    "xdp_program__attach": (ctypes.c_int, [_P, ctypes.c_int, ctypes.c_int, ctypes.c_uint]),
    "xdp_program__detach": (ctypes.c_int, [_P, ctypes.c_int, ctypes.c_int, ctypes.c_uint]),
    "xdp_multiprog__get_from_ifindex": (_P, [ctypes.c_int]),
    "xdp_multiprog__close": (None, [_P]),
    "xdp_multiprog__next_prog": (_P, [_P, _P]),
    "xdp_multiprog__main_prog": (_P, [_P]),
    "xdp_multiprog__is_legacy": (ctypes.c_bool, [_P]),
    "xdp_multiprog__attach_mode": (ctypes.c_int, [_P]),
}

_lib = None
_lock = threading.Lock()


def lib():
    """The loaded libxdp, its signatures declared and its messages sent to libbpf's capture."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            handle = shared_library.load(LIBXDP_SONAME, _SIGNATURES, hint="install libxdp (Debian/Ubuntu: apt-get "
                                         "install libxdp1; Fedora/RHEL: dnf install libxdp)")
            libbpf.lib()  # libxdp loads through libbpf: its log goes to the same capture
            handle.libxdp_set_print(ctypes.cast(libbpf.PRINT_CALLBACK, _P))
            _lib = handle
    return _lib


def available():
    """Whether libxdp can be loaded on this host."""
    try:
        lib()
        return True
    except BpfError:
        return False


def _strerror(err):
    buf = ctypes.create_string_buffer(256)
    lib().libxdp_strerror(-abs(err), buf, len(buf))
    return buf.value.decode("utf-8", "replace") or os.strerror(abs(err))


def _error(what, err, log):
    said = [line.strip() for line in "".join(log).splitlines() if line.strip()]
    detail = said[-1] if said else _strerror(err)
    return BpfError("%s: %s" % (what, detail), errno=abs(err) if abs(err) in errno.errorcode else None,
                    log="".join(log) or None)


def check_state_dir():
    """Refuse libxdp's bpffs directory when another user could change what libxdp pins there
    (a bpffs mount may be world-writable); libxdp creates it itself (mode 0700) when absent."""
    bpffs.check_trusted(os.path.join(bpffs.DEFAULT_PIN_ROOT, STATE_DIR))


def _program_facts(prog):
    lx = lib()
    return {"prog_id": lx.xdp_program__id(prog), "name": (lx.xdp_program__name(prog) or b"").decode(),
            "priority": lx.xdp_program__run_prio(prog),
            "chain_call_actions": [a for i, a in enumerate(ACTIONS) if lx.xdp_program__chain_call_enabled(prog, i)]}


def dispatcher(ifindex):
    """What runs at the XDP hook of ``ifindex`` as libxdp sees it: None when nothing runs there,
    ``{"legacy": True, "prog_id"}`` for one plain program, else the dispatcher:
    ``{"legacy": False, "prog_id", "mode", "components": [{prog_id, name, priority,
    chain_call_actions}]}`` in run order."""
    lx = lib()
    with libbpf.capture_log() as log:
        mp = lx.xdp_multiprog__get_from_ifindex(ifindex)
        err = lx.libxdp_get_error(mp)
    if err:
        if abs(err) == errno.ENOENT:
            return None
        raise _error("libxdp cannot read the XDP programs of ifindex %d" % ifindex, err, log)
    try:
        main = lx.xdp_multiprog__main_prog(mp)
        found = {"legacy": bool(lx.xdp_multiprog__is_legacy(mp)),
                 "prog_id": lx.xdp_program__id(main) if main else None,
                 "mode": MODE_NAMES.get(lx.xdp_multiprog__attach_mode(mp))}
        if not found["legacy"]:
            found["components"] = []
            prog = lx.xdp_multiprog__next_prog(None, mp)
            while prog:
                found["components"].append(_program_facts(prog))
                prog = lx.xdp_multiprog__next_prog(prog, mp)
        return found
    finally:
        lx.xdp_multiprog__close(mp)


def _configure(prog, priority, actions):
    lx = lib()
    if priority is not None:
        lx.xdp_program__set_run_prio(prog, priority)
    if actions is not None:
        for i, action in enumerate(ACTIONS):
            lx.xdp_program__set_chain_call_enabled(prog, i, action in actions)


def attach(bpf_object, prog_name, ifindex, mode, priority=None, actions=None):
    """Add program ``prog_name`` of the open, not yet loaded libbpf object ``bpf_object`` (a
    libbpf.BpfObject whose maps are already set to reuse what they must share) to the dispatcher
    of ``ifindex`` in ``mode`` ("drv" or "skb"), creating the dispatcher when the interface runs
    none. libxdp loads it as an extension of a dispatcher slot. Returns the component's facts."""
    lx = lib()
    check_state_dir()
    opts = _ProgramOpts(sz=ctypes.sizeof(_ProgramOpts), obj=bpf_object.ptr, prog_name=prog_name.encode())
    with libbpf.capture_log() as log:
        prog = lx.xdp_program__create(ctypes.byref(opts))
        err = lx.libxdp_get_error(prog)
        if err:
            raise _error("libxdp cannot take program %s of %s" % (prog_name, bpf_object.path), err, log)
        try:
            _configure(prog, priority, actions)
            err = lx.xdp_program__attach(prog, ifindex, MODES[mode], 0)
            if err:
                raise _error("libxdp cannot add %s to the XDP dispatcher of ifindex %d (%s mode)" % (prog_name, ifindex, mode),
                             err, log)
            return _program_facts(prog)
        finally:
            lx.xdp_program__close(prog)


def detach(ifindex, mode, prog_id):
    """Remove component ``prog_id`` from the dispatcher of ``ifindex``: libxdp swaps in a
    dispatcher without it (or removes the dispatcher with its last component). False when the
    program no longer runs there."""
    lx = lib()
    check_state_dir()
    with libbpf.capture_log() as log:
        prog = lx.xdp_program__from_id(prog_id)
        err = lx.libxdp_get_error(prog)
        if err:
            if abs(err) == errno.ENOENT:
                return False
            raise _error("libxdp cannot open program id %d" % prog_id, err, log)
        try:
            err = lx.xdp_program__detach(prog, ifindex, MODES[mode], 0)
        finally:
            lx.xdp_program__close(prog)
        if err:
            if abs(err) == errno.ENOENT:
                return False
            raise _error("libxdp cannot remove program id %d from the XDP dispatcher of ifindex %d" % (prog_id, ifindex), err, log)
    return True
