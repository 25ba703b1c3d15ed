# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libbpf 1.x (``libbpf.so.1``) through ctypes: open and load CO-RE objects, walk their
programs and maps, pin and unpin, and capture libbpf's log (including the verifier log); its
low-level bpf_* wrappers (signatures in bpf_structs) serve the bpf_syscall modules.

Written against the libbpf 1.1 ABI that Debian 12 ships; newer libbpf accepts the same
option-struct layouts. Integer returns are ``-errno``; pointer returns are NULL with errno set.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import ctypes
import os
import platform
import re
import threading

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import shared_library
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_structs import BPF_WRAPPER_SIGNATURES
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError, errno_error

LIBBPF_SONAME = "libbpf.so.1"
LIBBPF_ERRNO_BASE = 4000
LIBBPF_ERRNO_TEXT = {
    4001: "something wrong in libelf",
    4002: "not an ELF file, or a corrupted one",
    4003: "kernel version mismatch",
    4004: "kernel version missing in the object",
    4005: "relocation failed",
    4006: "failed to load the program (see the verifier log)",
    4007: "invalid program type",
    4008: "write error",
    4009: "program too big",
    4010: "incorrect kernel version",
    4011: "kernel does not support this program type",
    4012: "wrong pid in netlink message",
    4013: "invalid netlink sequence",
    4014: "netlink parse error",
}
LOG_WARN, LOG_INFO, LOG_DEBUG = 0, 1, 2
_FAILED_PROG_RE = re.compile(r"prog '([^']+)': (?:-- BEGIN PROG LOAD LOG|BPF program load failed|failed to load)")
# The lines of the verifier log that an error message carries (the end holds the failing insn).
VERIFIER_LOG_TAIL = 40

_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


class _OpenOpts(ctypes.Structure):
    """struct bpf_object_open_opts as of libbpf 1.1."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("object_name", ctypes.c_char_p),
        ("relaxed_maps", ctypes.c_bool),
        ("pin_root_path", ctypes.c_char_p),
        ("_removed_attach_prog_fd", ctypes.c_uint32),
        ("kconfig", ctypes.c_char_p),
        ("btf_custom_path", ctypes.c_char_p),
        ("kernel_log_buf", ctypes.c_char_p),
        ("kernel_log_size", ctypes.c_size_t),
        ("kernel_log_level", ctypes.c_uint32),
    ]


_P = ctypes.c_void_p
_SIGNATURES = {
    # name: (restype, argtypes)
    "libbpf_version_string": (ctypes.c_char_p, []),
    "libbpf_set_print": (_P, [_PRINT_FN]),
    "libbpf_probe_bpf_prog_type": (ctypes.c_int, [ctypes.c_int, _P]),
    "bpf_object__open_file": (_P, [ctypes.c_char_p, ctypes.POINTER(_OpenOpts)]),
    "bpf_object__load": (ctypes.c_int, [_P]),
    "bpf_object__close": (None, [_P]),
    "bpf_object__next_program": (_P, [_P, _P]),
    "bpf_object__next_map": (_P, [_P, _P]),
    "bpf_program__name": (ctypes.c_char_p, [_P]),
    "bpf_program__section_name": (ctypes.c_char_p, [_P]),
    "bpf_program__type": (ctypes.c_int, [_P]),
    "bpf_program__expected_attach_type": (ctypes.c_int, [_P]),
    "bpf_program__fd": (ctypes.c_int, [_P]),
    "bpf_program__set_autoload": (ctypes.c_int, [_P, ctypes.c_bool]),
    "bpf_program__autoload": (ctypes.c_bool, [_P]),
    "bpf_program__insn_cnt": (ctypes.c_size_t, [_P]),
    "bpf_map__name": (ctypes.c_char_p, [_P]),
    "bpf_map__type": (ctypes.c_int, [_P]),
    "bpf_map__key_size": (ctypes.c_uint32, [_P]),
    "bpf_map__value_size": (ctypes.c_uint32, [_P]),
    "bpf_map__max_entries": (ctypes.c_uint32, [_P]),
    "bpf_map__map_flags": (ctypes.c_uint32, [_P]),
    "bpf_map__fd": (ctypes.c_int, [_P]),
    "bpf_map__is_internal": (ctypes.c_bool, [_P]),
    "bpf_map__set_pin_path": (ctypes.c_int, [_P, ctypes.c_char_p]),
    "bpf_map__reuse_fd": (ctypes.c_int, [_P, ctypes.c_int]),
    "bpf_map__pin_path": (ctypes.c_char_p, [_P]),
    "bpf_map__is_pinned": (ctypes.c_bool, [_P]),
    "bpf_map__initial_value": (_P, [_P, ctypes.POINTER(ctypes.c_size_t)]),
    "bpf_map__set_initial_value": (ctypes.c_int, [_P, ctypes.c_void_p, ctypes.c_size_t]),
    "bpf_program__attach": (_P, [_P]),
    "bpf_program__attach_tracepoint": (_P, [_P, ctypes.c_char_p, ctypes.c_char_p]),
    "bpf_program__attach_raw_tracepoint": (_P, [_P, ctypes.c_char_p]),
    "bpf_program__attach_kprobe": (_P, [_P, ctypes.c_bool, ctypes.c_char_p]),
    "bpf_program__attach_uprobe": (_P, [_P, ctypes.c_bool, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]),
    "bpf_link__pin": (ctypes.c_int, [_P, ctypes.c_char_p]),
    "bpf_link__fd": (ctypes.c_int, [_P]),
    "bpf_link__disconnect": (None, [_P]),
    "bpf_link__destroy": (ctypes.c_int, [_P]),
}

_lock = threading.Lock()
_lib = None
_captures = []  # stack of lists collecting libbpf messages


# va_list is a small struct that vsnprintf consumes; va_copy is a plain copy on x86_64 (24 bytes)
# and aarch64 (32 bytes), which lets the text be measured first and then formatted whole.
_VA_LIST_SIZE = 32 if platform.machine() in ("aarch64", "arm64") else 24


def _on_print(level, fmt, args):
    if level == LOG_DEBUG or not _captures:
        return 0
    copy = ctypes.create_string_buffer(ctypes.string_at(args, _VA_LIST_SIZE), _VA_LIST_SIZE)
    size = _libc.vsnprintf(None, 0, fmt, ctypes.addressof(copy))
    buf = ctypes.create_string_buffer(max(size, 0) + 1)
    _libc.vsnprintf(buf, len(buf), fmt, args)
    _captures[-1].append(buf.value.decode("utf-8", "replace"))
    return 0


_libc = ctypes.CDLL(None, use_errno=True)
_libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
_libc.vsnprintf.restype = ctypes.c_int
PRINT_CALLBACK = _PRINT_FN(_on_print)  # referenced for the life of the process (libxdp prints through it too)


def lib():
    """The loaded libbpf, with signatures declared and the log callback installed."""
    global _lib
    if _lib is not None:  # the bpf_syscall modules call this once per operation
        return _lib
    with _lock:
        if _lib is None:
            handle = shared_library.load(LIBBPF_SONAME, dict(_SIGNATURES, **BPF_WRAPPER_SIGNATURES),
                                         hint="install libbpf 1.x on this host (Debian/Ubuntu: apt-get install libbpf1; "
                                              "Fedora/RHEL: dnf install libbpf)")
            handle.libbpf_set_print(PRINT_CALLBACK)
            _lib = handle
    return _lib


def version():
    """libbpf's version string, e.g. ``v1.1``."""
    return lib().libbpf_version_string().decode()


def has(symbol):
    """Whether the loaded libbpf exports ``symbol`` (features differ between 1.x releases)."""
    return getattr(lib(), symbol, None) is not None


@contextlib.contextmanager
def capture_log():
    """Collect libbpf's warning and info messages (the verifier log among them) in a list."""
    messages = []
    _captures.append(messages)
    try:
        yield messages
    finally:
        _captures.remove(messages)


def describe_errno(err):
    err = abs(err)
    if err >= LIBBPF_ERRNO_BASE:
        return LIBBPF_ERRNO_TEXT.get(err, "libbpf error %d" % err)
    return os.strerror(err)


def verifier_log_tail(messages, lines=VERIFIER_LOG_TAIL):
    """The last lines of the log libbpf printed for a failed load: the failing instruction
    and the verifier's verdict are at the end."""
    text = "".join(messages)
    begin = text.rfind("-- BEGIN PROG LOAD LOG --")
    if begin >= 0:
        end = text.find("-- END PROG LOAD LOG --", begin)
        text = text[begin + len("-- BEGIN PROG LOAD LOG --"):end if end >= 0 else None]
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def _load_error(filename, err, messages):
    """A BpfError for a failed bpf_object__load: which program, the verifier's verdict (the
    last line of its log) in the message, the log's tail attached."""
    text = "".join(messages)
    progs = _FAILED_PROG_RE.findall(text)
    tail = verifier_log_tail(messages)
    if "BEGIN PROG LOAD LOG" in text:
        verdict = [line for line in tail.splitlines() if not line.startswith("processed ")]
        what = "the BPF verifier rejected program %s of %s" % (progs[-1] if progs else "?", filename)
        if verdict:
            what += ": " + verdict[-1].strip()
        return BpfError(what, log=tail)
    what = "the kernel refused to load %s" % filename
    if progs:
        what += " (program %s)" % progs[-1]
    errno = abs(err) if abs(err) < LIBBPF_ERRNO_BASE else None
    detail = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if detail:
        what += ": " + detail[-1]
    elif errno is None:
        what += ": " + describe_errno(err)
    return BpfError(what, errno=errno, log=text.strip() or None)


def _errno():
    return ctypes.get_errno() or 1


class Program:
    """A program of an open BpfObject."""

    def __init__(self, obj, ptr):
        self._obj = obj
        self.ptr = ptr
        lb = lib()
        self.name = lb.bpf_program__name(ptr).decode()
        self.section = (lb.bpf_program__section_name(ptr) or b"").decode()
        self.prog_type = lb.bpf_program__type(ptr)

    @property
    def fd(self):
        return lib().bpf_program__fd(self.ptr)

    @property
    def autoload(self):
        return bool(lib().bpf_program__autoload(self.ptr))

    @autoload.setter
    def autoload(self, value):
        err = lib().bpf_program__set_autoload(self.ptr, bool(value))
        if err:
            raise errno_error("cannot change autoload of program %s" % self.name, err)

    def insn_count(self):
        return lib().bpf_program__insn_cnt(self.ptr)


class Map:
    """A map of an open BpfObject."""

    def __init__(self, obj, ptr):
        self._obj = obj
        self.ptr = ptr
        lb = lib()
        self.name = lb.bpf_map__name(ptr).decode()
        self.map_type = lb.bpf_map__type(ptr)
        self.key_size = lb.bpf_map__key_size(ptr)
        self.value_size = lb.bpf_map__value_size(ptr)
        self.max_entries = lb.bpf_map__max_entries(ptr)
        self.map_flags = lb.bpf_map__map_flags(ptr)
        self.internal = bool(lb.bpf_map__is_internal(ptr))

    @property
    def fd(self):
        return lib().bpf_map__fd(self.ptr)

    @property
    def pin_path(self):
        path = lib().bpf_map__pin_path(self.ptr)
        return path.decode() if path else None

    @pin_path.setter
    def pin_path(self, path):
        err = lib().bpf_map__set_pin_path(self.ptr, path.encode() if path else None)
        if err:
            raise errno_error("cannot set the pin path of map %s" % self.name, err)

    @property
    def pinned(self):
        return bool(lib().bpf_map__is_pinned(self.ptr))

    def initial_value(self):
        """Initial contents (for .rodata/.data/.bss maps), as bytes, or None."""
        size = ctypes.c_size_t(0)
        ptr = lib().bpf_map__initial_value(self.ptr, ctypes.byref(size))
        if not ptr:
            return None
        return ctypes.string_at(ptr, size.value)

    def set_initial_value(self, data):
        buf = ctypes.create_string_buffer(bytes(data), len(data))
        err = lib().bpf_map__set_initial_value(self.ptr, buf, len(data))
        if err:
            raise errno_error("cannot set the initial value of map %s (it must be %d bytes)"
                              % (self.name, self.value_size), err)

    def definition(self):
        return {
            "type": self.map_type,
            "key_size": self.key_size,
            "value_size": self.value_size,
            "max_entries": self.max_entries,
            "map_flags": self.map_flags,
        }


class BpfObject:
    """An open (and possibly loaded) BPF object file. Use as a context manager: closing it
    releases every fd libbpf holds; what was pinned stays in the kernel."""

    def __init__(self, path, object_name=None, pin_root_path=None):
        lb = lib()
        opts = _OpenOpts()
        opts.sz = ctypes.sizeof(_OpenOpts)
        if object_name:
            opts.object_name = object_name.encode()
        if pin_root_path:
            opts.pin_root_path = pin_root_path.encode()
        with capture_log() as log:
            ptr = lb.bpf_object__open_file(path.encode(), ctypes.byref(opts))
        if not ptr:
            err = _errno()
            said = [line.strip() for line in "".join(log).splitlines() if line.strip()]
            # libbpf's own last word names the cause (an extern it cannot resolve, a section it does
            # not know); the errno alone ("No such file or directory") would blame the file
            raise BpfError("libbpf cannot open %s: %s" % (path, said[-1] if said else describe_errno(err)),
                           errno=None if said or err >= LIBBPF_ERRNO_BASE else err, log="".join(log) or None,
                           hint=None if said else "it must be a BPF ELF object built with clang -target bpf")
        self.path = path
        self.ptr = ptr
        self.open_log = log
        self.programs = []
        prog = lb.bpf_object__next_program(ptr, None)
        while prog:
            self.programs.append(Program(self, prog))
            prog = lb.bpf_object__next_program(ptr, prog)
        self.maps = []
        m = lb.bpf_object__next_map(ptr, None)
        while m:
            self.maps.append(Map(self, m))
            m = lb.bpf_object__next_map(ptr, m)

    def program(self, name):
        for prog in self.programs:
            if prog.name == name:
                return prog
        return None

    def load(self):
        """Load maps and programs into the kernel (CO-RE relocations against the running
        kernel's BTF). A verifier rejection raises BpfError carrying the verifier log."""
        with capture_log() as log:
            err = lib().bpf_object__load(self.ptr)
        if err:
            raise _load_error(os.path.basename(self.path), err, log)
        return log

    def close(self):
        if self.ptr:
            lib().bpf_object__close(self.ptr)
            self.ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # pylint: disable=broad-except
            pass


def probe_prog_type(prog_type):
    """Whether the running kernel can load programs of ``prog_type`` (libbpf's own probe)."""
    ret = lib().libbpf_probe_bpf_prog_type(prog_type, None)
    return ret == 1
