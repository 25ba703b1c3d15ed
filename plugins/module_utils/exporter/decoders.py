# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Label decoders: turn the bytes of a map key into Prometheus label values.

Semantics follow cloudflare/ebpf_exporter's ``decoder`` package. A label reads ``size`` bytes
of the key; its decoders run as a chain, each one's output (bytes) feeding the next, and the
last output is the label value. Integers are in host byte order (little-endian on x86_64 and
aarch64). ``uint`` prints a number in decimal, so decoders that take a number (``syscall``,
``errno``, ``cgroup``) come after ``uint``; ``ksym``, ``ifname``, ``majorminor``, ``inet_ip``,
``hex`` and ``string`` read the raw key bytes.

A decoder may reject an entry (``regexp`` when no pattern matches): the whole map entry is
then left out, which is not an error. A decoder that fails (a wrong field size, text that is
not a number) raises DecodeError, which :class:`LabelDecoder` turns into a
:class:`DecodeFailure`: the caller leaves the entry out and counts the failure under the
decoder's name. Decoding a label never raises for bad data.

Which decoder names exist, and what each prints for a value it cannot resolve:

=============  ==============================================================================
uint           1, 2, 4 or 8 bytes -> decimal; other sizes fail
string         bytes up to the first NUL
hex            lower-case hex of the bytes
static_map     text -> mapped text; unknown text -> ``unknown:<text>``, or the text itself
               with ``allow_unknown: true``; no ``static_map`` key -> ``empty mapping``
regexp         the first pattern (in order) that matches anywhere in the text gives the value:
               its capture group if it has one, else the matched text; a pattern with two or
               more groups gives nothing (the next one is tried); no value -> the entry is dropped
syscall        decimal -> system call name (x86_64, aarch64; ebpf_exporter's names, or the
               kernel's: syscall_names), else ``unknown_syscall:<n>``
errno          decimal -> ``E...`` name, else ``unknown:<n>``
ksym           8-byte address -> the nearest kernel symbol at or before it (/proc/kallsyms;
               a module's keeps its ``\\t[module]``), else ``unknown_addr:0x<hex>``
kstack         u64 addresses up to the first 0 -> their symbols as ksym names them, one per
               line, ``??`` for an unknown one
inet_ip        4 or 16 bytes -> IPv4 / IPv6 text (IPv4-mapped IPv6 prints as IPv4)
ifname         first 4 bytes (interface index) -> interface name, else ``unknown:<n>``;
               ``ifindex`` is an alias
dname          DNS wire-format name -> dotted name (use after ``string``)
cgroup         decimal cgroup id -> cgroupfs directory path (stat() inode, so mount points
               are their mounted root), else ``unknown_cgroup_id:<n>``
majorminor     first 4 bytes (kernel dev_t encoding) -> device name from /proc/partitions,
               else ``unknown:<major>:<minor>``
pci_vendor,    decimal -> PCI vendor, device (vendor << 16 | device), class, subclass
pci_device,    (class << 8 | subclass) name from pci.ids, as ebpf_exporter looks them up
pci_class,     (pci_names); the hex id when no pci.ids is installed
pci_subclass
btf_enum       decimal -> name of that value in the kernel enum ``enum`` (read from the
               running kernel's BTF), without ``strip_prefix``; else (also on a kernel
               whose BTF has no such enum, older than it) ``unknown:<n>``, or the number with
               ``allow_unknown: true``. An extension of this collection, not an
               ebpf_exporter decoder: for enums renumbered between kernels (skb_drop_reason)
=============  ==============================================================================
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import errno as errno_module
import ipaddress
import os
import platform
import re
import socket
import struct
import sys

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import btf
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.syscall_names import syscall_names as syscall_table

from ansible_collections.ebpf.observability.plugins.module_utils.exporter.pci_names import PCI_IDS_PATHS, PciNames
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.host_names import (
    CGROUP_ROOT, KALLSYMS_PATH, PARTITIONS_PATH, CgroupPaths, DecodeError, KernelSymbols,
    partition_name,
)

LABEL_CACHE_LIMIT = 1 << 18

_BYTE_ORDER = sys.byteorder
_U64 = struct.Struct("=Q")
_ATOI_RE = re.compile(br"^[+-]?[0-9]+$")
_UINT64_MASK = (1 << 64) - 1
# Names as golang.org/x/sys/unix ErrnoName gives them where Python's errno module differs.
_ERRNO_NAMES = dict(errno_module.errorcode)
_ERRNO_NAMES.update({11: "EAGAIN", 35: "EDEADLK", 95: "ENOTSUP", 133: "EHWPOISON"})


class _Skip:
    """Marker: a decoder dropped the entry (ebpf_exporter's ErrSkipLabelSet)."""

    __slots__ = ()

    def __repr__(self):
        return "SKIP"


SKIP = _Skip()


class DecodeFailure:
    """The outcome of a label whose decoder failed: which decoder, and why."""

    __slots__ = ("decoder", "message")

    def __init__(self, decoder, message):
        self.decoder = decoder
        self.message = message

    def __repr__(self):
        return "DecodeFailure(%r, %r)" % (self.decoder, self.message)


def decode_uint(data, conf=None):
    if len(data) not in (1, 2, 4, 8):
        raise DecodeError("unknown value length %d for %r" % (len(data), data))
    return str(int.from_bytes(data, _BYTE_ORDER)).encode()


def decode_string(data, conf=None):
    end = data.find(b"\0")
    return data if end < 0 else data[:end]


def decode_hex(data, conf=None):
    return binascii.hexlify(data)


def decode_static_map(data, conf):
    if conf.static_map is None:
        return b"empty mapping"
    text = data.decode("utf-8", "replace")
    value = conf.static_map.get(text)
    if value is not None:
        return value.encode()
    if conf.allow_unknown:
        return data
    return b"unknown:" + data


def decode_regexp(data, conf):
    if not conf.regexps:
        raise DecodeError("no regexps defined in config")
    text = data.decode("utf-8", "replace")
    for pattern in conf.regexps:
        match = pattern.search(text)
        if match is None:
            continue
        if pattern.groups == 0:
            return match.group(0).encode()
        if pattern.groups == 1:
            return (match.group(1) or "").encode()
        # Two or more groups: this pattern gives no value (ebpf_exporter); try the next one.
    return SKIP


def decode_errno(data, conf=None):
    if not data.isdigit():
        raise DecodeError("error parsing %r as uint" % data.decode("utf-8", "replace"))
    number = int(data)
    if number > _UINT64_MASK:
        raise DecodeError("error parsing %r as uint" % data.decode())
    return _ERRNO_NAMES.get(number, "unknown:%d" % number).encode()


def decode_inet_ip(data, conf=None):
    if len(data) == 4:
        return str(ipaddress.IPv4Address(data)).encode()
    if len(data) == 16:
        address = ipaddress.IPv6Address(data)
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped).encode()
        return address.compressed.encode()
    if not data:
        return b"<nil>"
    return b"?" + binascii.hexlify(data)


def decode_dname(data, conf=None):
    if not data:
        return b"."
    out = bytearray(len(data))
    offset = 0
    while offset < len(data):
        length = data[offset]
        out[offset] = 0x2E  # the length byte becomes "."
        offset += 1
        if offset + length > len(data):
            return data
        out[offset:offset + length] = data[offset:offset + length]
        offset += length
    return bytes(out[1:])


def _atoi(data):
    """Parse decimal text like Go's strconv.Atoi (optional sign, digits only)."""
    if not _ATOI_RE.match(data):
        raise DecodeError("invalid syntax: %r is not a decimal integer" % data.decode("utf-8", "replace"))
    return int(data)


def _by_number(name_of):
    """A decoder naming a decimal number (Go's Atoi syntax) with ``name_of(int) -> str``."""
    return lambda data, conf=None: name_of(_atoi(data)).encode()


class Decoders:
    """The decoder set of one exporter: pure decoders plus the stateful ones' tables.

    ``machine`` picks the syscall table (default: this host's ``platform.machine()``),
    ``syscall_names`` its names: ``ebpf_exporter``'s (the default) or the ``kernel``'s.
    """

    def __init__(self, kallsyms_path=KALLSYMS_PATH, cgroup_root=CGROUP_ROOT,
                 partitions_path=PARTITIONS_PATH, machine=None, ksym_refresh_interval=60.0,
                 btf_path=btf.VMLINUX_BTF, syscall_names="ebpf_exporter", pci_ids_paths=PCI_IDS_PATHS):
        self.kernel_symbols = KernelSymbols(kallsyms_path, ksym_refresh_interval)
        self.cgroup_paths = CgroupPaths(cgroup_root)
        self.partitions_path = partitions_path
        self.btf_path = btf_path
        self._btf = None  # a btf.Btf, or the BpfError reading it gave (a kernel's BTF does not appear later)
        self._btf_enums = {}
        self._syscalls = syscall_table(machine or platform.machine(), syscall_names)
        pci = PciNames(pci_ids_paths)
        self._functions = {
            "btf_enum": self.decode_btf_enum,
            "cgroup": self.decode_cgroup,
            "dname": decode_dname,
            "errno": decode_errno,
            "hex": decode_hex,
            "ifindex": self.decode_ifname,
            "ifname": self.decode_ifname,
            "inet_ip": decode_inet_ip,
            "ksym": self.decode_ksym,
            "kstack": self.decode_kstack,
            "majorminor": self.decode_majorminor,
            "pci_class": _by_number(pci.klass),
            "pci_device": _by_number(pci.device),
            "pci_subclass": _by_number(pci.subclass),
            "pci_vendor": _by_number(pci.vendor),
            "regexp": decode_regexp,
            "static_map": decode_static_map,
            "string": decode_string,
            "syscall": self.decode_syscall,
            "uint": decode_uint,
        }

    def names(self):
        """The decoder names this set knows."""
        return tuple(sorted(self._functions))

    def function(self, name):
        """The decoding function for a decoder name: f(data: bytes, conf) -> bytes or SKIP."""
        try:
            return self._functions[name]
        except KeyError:
            raise DecodeError("unknown decoder %r" % name)

    def decode_syscall(self, data, conf=None):
        number = _atoi(data) & _UINT64_MASK
        name = self._syscalls.get(number)
        return name.encode() if name is not None else b"unknown_syscall:%d" % number

    def decode_ksym(self, data, conf=None):
        if len(data) < 8:
            raise DecodeError("ksym needs an 8-byte address, got %d bytes" % len(data))
        addr = int.from_bytes(data[:8], _BYTE_ORDER)
        name = self.kernel_symbols.lookup(addr)
        return name if name is not None else b"unknown_addr:0x%x" % addr

    def decode_kstack(self, data, conf=None):
        """u64 frame addresses up to the first 0 -> their symbols, one per line (``??`` unknown)."""
        if len(data) % 8:
            raise DecodeError("kstack needs whole 8-byte addresses, got %d bytes" % len(data))
        addrs = []
        for (addr,) in _U64.iter_unpack(data):
            if addr == 0:
                break
            addrs.append(addr)
        names = self.kernel_symbols.lookup_many(addrs)
        return b"\n".join(b"??" if name is None else name for name in names)

    def decode_ifname(self, data, conf=None):
        if len(data) < 4:
            raise DecodeError("ifname needs a 4-byte interface index, got %d bytes" % len(data))
        index = int.from_bytes(data[:4], _BYTE_ORDER)
        try:
            return socket.if_indextoname(index).encode()
        except (OSError, OverflowError):
            return b"unknown:%d" % index

    def decode_cgroup(self, data, conf=None):
        cgroup_id = _atoi(data)
        path = self.cgroup_paths.resolve(cgroup_id)
        return path.encode() if path else b"unknown_cgroup_id:%d" % cgroup_id

    def decode_majorminor(self, data, conf=None):
        if len(data) < 4:
            raise DecodeError("majorminor needs a 4-byte device number, got %d bytes" % len(data))
        dev = int.from_bytes(data[:4], _BYTE_ORDER)
        major, minor = os.major(dev), os.minor(dev)
        name = partition_name(self.partitions_path, major, minor)
        return name if name else b"unknown:%d:%d" % (major, minor)

    def btf_enum(self, name):
        """{value: constant name} of kernel enum ``name``, read from the BTF once."""
        values = self._btf_enums.get(name)
        if values is None:
            if self._btf is None:
                try:
                    self._btf = btf.read_btf(self.btf_path)
                except BpfError as exc:
                    self._btf = exc
            if isinstance(self._btf, BpfError):
                raise DecodeError(str(self._btf))
            try:
                values = self._btf.enum(name)
            except BpfError:
                values = {}  # a kernel older than the enum (skb_drop_reason: 5.17): every value is unknown
            self._btf_enums[name] = values
        return values

    def decode_btf_enum(self, data, conf):
        number = _atoi(data)
        name = self.btf_enum(conf.enum).get(number)
        if name is None:
            return data if conf.allow_unknown else b"unknown:%d" % number
        if conf.strip_prefix and name.startswith(conf.strip_prefix):
            name = name[len(conf.strip_prefix):]
        return name.encode()

    def label_decoder(self, label, cache_limit=LABEL_CACHE_LIMIT):
        """A LabelDecoder for a LabelConfig (see metrics_config)."""
        return LabelDecoder(self, label, cache_limit)


class LabelDecoder:
    """Decodes one label's raw bytes through its decoder chain, once per distinct value.

    Results are kept (as ebpf_exporter keeps decoded label sets), so a value decodes once per
    process, not once per pass: a str label value, SKIP, or a DecodeFailure.
    """

    __slots__ = ("label", "chain", "cache", "cache_limit", "dropped", "failed")

    def __init__(self, decoders, label, cache_limit=LABEL_CACHE_LIMIT):
        self.label = label
        self.chain = tuple((conf.name, decoders.function(conf.name), conf) for conf in label.decoders)
        self.cache = {}
        self.cache_limit = cache_limit
        self.dropped = set()  # raw values whose outcome is SKIP or a DecodeFailure
        self.failed = set()  # raw values whose outcome is a DecodeFailure

    def decode(self, raw):
        """Run the chain on raw bytes (uncached): a str, SKIP, or a DecodeFailure."""
        data = raw
        for name, function, conf in self.chain:
            try:
                data = function(data, conf)
            except DecodeError as exc:
                return DecodeFailure(name, str(exc))
            except (ValueError, TypeError, OverflowError) as exc:
                return DecodeFailure(name, "%s: %s" % (type(exc).__name__, exc))
            if data is SKIP:
                return SKIP
        return data.decode("utf-8", "replace")

    def lookup(self, raws):
        """Decode the distinct values of raws; return (outcomes, any_dropped).

        outcomes maps every element of raws to its outcome, so a caller can map a column with
        ``outcomes.__getitem__``; any_dropped tells whether one of them is not a str. Successes
        and SKIPs are kept for later calls; failures are tried again next time, as
        ebpf_exporter retries them (the file or interface they need may appear).
        """
        cache = self.cache
        if self.failed:
            for raw in self.failed:
                cache.pop(raw, None)
            self.dropped.difference_update(self.failed)
            self.failed.clear()
        distinct = set(raws)
        missing = distinct.difference(cache)
        if missing:
            if len(cache) + len(missing) > self.cache_limit:
                cache.clear()
                self.dropped.clear()
                missing = distinct
            decode = self.decode
            for raw in missing:
                outcome = cache[raw] = decode(raw)
                if outcome.__class__ is not str:
                    self.dropped.add(raw)
                    if outcome is not SKIP:
                        self.failed.add(raw)
        return cache, bool(self.dropped) and not self.dropped.isdisjoint(distinct)
