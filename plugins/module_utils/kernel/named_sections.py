# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ELF sections that name their target, as cloudflare/ebpf_exporter's programs write them, which
libbpf itself does not know:

* ``xdp/<interface>[,<interface>...]``: an XDP program for the interfaces named
  (``SEC("xdp/eth0,lo")``); libbpf's own ``xdp/devmap`` and ``xdp/cpumap`` keep their meaning;
* ``perf_event/type=<T>,config=<C>[,frequency=<F>|,period=<P>]``: a perf_event program run by
  the perf event of that type and config (``type=1,config=0,frequency=99``: the software CPU
  clock sampled 99 times a second), one event per online CPU. Numbers are decimal or 0x-hex;
* ``uprobe.multi/...`` and ``uretprobe.multi/...``, which libbpf knows from 1.3 on only.

libbpf 1.x opens such a program with no program type and would refuse to load it ("missing BPF
prog type"); ebpf_exporter registers section handlers for these prefixes. Handlers are global to
a process and would take ``xdp/devmap`` too, so the type is set on each such program of the
opened object instead (bpf_program__set_type, bpf_program__set_expected_attach_type).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_consts as c
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import libbpf
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError, errno_error

LIBBPF_XDP_SECTIONS = ("xdp/devmap", "xdp/cpumap")
PERF_EVENT_KEYS = ("type", "config", "frequency", "period")
_SETTERS = ("bpf_program__set_type", "bpf_program__set_expected_attach_type")


def xdp_interfaces(section):
    """The interfaces an ``xdp/<if>[,<if>...]`` section names, or None for any other section."""
    head, sep, rest = (section or "").partition("/")
    if head not in ("xdp", "xdp.frags") or not sep or section in LIBBPF_XDP_SECTIONS or not rest:
        return None
    if head == "xdp.frags" and rest in ("devmap", "cpumap"):
        return None
    return [name for name in rest.split(",") if name]


def perf_event_spec(section):
    """{type, config, frequency or period} of a ``perf_event/...`` section; None for a plain
    ``perf_event`` or any other section; BpfError naming the fault of a malformed one."""
    head, sep, rest = (section or "").partition("/")
    if head != "perf_event" or not sep:
        return None
    spec = {}
    for item in rest.split(","):
        key, eq, value = item.partition("=")
        if not eq or key not in PERF_EVENT_KEYS or key in spec:
            raise BpfError("section %s: %r is not one of type=, config=, frequency= or period= (each once)" % (section, item),
                           hint="write perf_event/type=<perf type>,config=<event>,frequency=<samples per second>")
        try:
            spec[key] = int(value, 0)
        except ValueError:
            raise BpfError("section %s: %s=%s is not a number" % (section, key, value))
        if spec[key] < 0:
            raise BpfError("section %s: %s cannot be negative" % (section, key))
    if "type" not in spec or "config" not in spec:
        raise BpfError("section %s names no event: it needs type= and config=" % section,
                       hint="for example perf_event/type=1,config=0,frequency=99 (the software CPU clock)")
    if "frequency" in spec and "period" in spec:
        raise BpfError("section %s: give frequency or period, not both" % section)
    if not spec.get("frequency") and not spec.get("period"):
        raise BpfError("section %s: a sampling event needs frequency= (per second) or period= (events per sample)" % section)
    return spec


def perf_event_canonical(spec):
    """The target string of a perf event spec (the order the section syntax documents)."""
    return ",".join("%s=%d" % (k, spec[k]) for k in PERF_EVENT_KEYS if k in spec)


def section_type(section):
    """(program type, expected attach type) a named section implies, or None."""
    if xdp_interfaces(section):
        return c.BPF_PROG_TYPE_XDP, c.BPF_XDP
    if (section or "").partition("/")[0] in ("uprobe.multi", "uretprobe.multi"):  # libbpf 1.3+ knows these itself
        return c.BPF_PROG_TYPE_KPROBE, c.BPF_TRACE_UPROBE_MULTI
    if (section or "").startswith("perf_event/"):
        perf_event_spec(section)  # a malformed section fails here, before any load
        return c.BPF_PROG_TYPE_PERF_EVENT, 0
    return None


def assign_types(programs):
    """Set the program type of each program of an opened (not loaded) libbpf.BpfObject whose
    section names its target and which libbpf left without a type."""
    lib = libbpf.lib()
    for name in _SETTERS:
        fn = getattr(lib, name)
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p, ctypes.c_int]
    for prog in programs:
        types = section_type(prog.section)
        if types is None or prog.prog_type != c.BPF_PROG_TYPE_UNSPEC:
            continue
        for setter, value in zip(_SETTERS, types):
            err = getattr(lib, setter)(prog.ptr, value)
            if err:
                raise errno_error("cannot set the program type of %s (section %s)" % (prog.name, prog.section), -err)
        prog.prog_type = types[0]
