# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Traffic classes for tc_classifier: from an Ansible list of dicts to the entries of its
``tc_class_rules`` map (layout in bpf/README.md, "tc_classifier"). Pure Python: it computes
what to write; the caller writes it (bpf_syscall.map_update_batch, then map_update).

A class list, first match wins, at most MAX_RULES items::

    - {name: voice, id: 1, proto: udp, dport: 10000-20000, dscp: ef}
    - {name: web, id: 2, proto: tcp, dport: [80, 443]}     # a list of 2: a range
    - {name: dns, id: 3, dport: 53}                       # any protocol with ports
    - {name: ssh_is_default, id: 0, proto: tcp, dport: 22}  # id 0: the default class

Keys: ``id`` (required): the class counted, 0..255, 0 being the default class of packets no
rule matches; ``name`` (required unless id is 0): the class label; ``proto``: IP protocol name
(PROTOCOLS) or number 1..255; ``dport``: destination port, ``"lo-hi"`` or ``[lo, hi]``
(inclusive; only TCP, UDP, SCTP and UDP-Lite first fragments have ports); ``dscp``: 0..63 or
a name (DSCP_NAMES). A rule matches when every condition it sets holds; a rule without
conditions matches every packet. Several rules may share an id (with one name).

The map holds two generations of match tables and a selector: :func:`update_plan` gives the
inactive generation's entries and the selector entry that activates them, to write in that
order, so packets see the old rule set or the new one, never a mix. The caller reads the
selector first (:func:`active_generation`); to change nothing when the rules are in force
already, it compares ``compile_tables(parse_rules(classes))`` with the GEN_SIZE values of the
active generation, from :func:`generation_base`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import re
import struct

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

MAX_RULES = 64
MAX_CLASS_ID = 255
DEFAULT_CLASS_ID = 0
DEFAULT_CLASS_NAME = "default"

# Map layout, in u64 entries (bpf/tc_classifier.bpf.c).
SELECTOR_INDEX = 0
PROTO_NOT_IP = 256
DSCP_NOT_IP = 64
PORT_NONE = 65536
GEN_PROTO = 0
GEN_DSCP = GEN_PROTO + PROTO_NOT_IP + 1
GEN_PORT = GEN_DSCP + DSCP_NOT_IP + 1
GEN_CLASS = GEN_PORT + PORT_NONE + 1
GEN_SIZE = GEN_CLASS + MAX_RULES
MAP_ENTRIES = 1 + 2 * GEN_SIZE
MAP_NAME = "tc_class_rules"

PROTOCOLS = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51, "icmpv6": 58,
             "sctp": 132, "udplite": 136}
PORT_PROTOCOLS = frozenset((6, 17, 132, 136))
DSCP_NAMES = dict([("be", 0), ("default", 0), ("ef", 46), ("va", 44), ("le", 1)]
                  + [("cs%d" % n, n * 8) for n in range(8)]
                  + [("af%d%d" % (c, d), c * 8 + d * 2) for c in range(1, 5) for d in range(1, 4)])
RULE_KEYS = ("name", "id", "proto", "dport", "dscp")

TcRule = collections.namedtuple("TcRule", "name class_id proto dport_lo dport_hi dscp")
TcRule.__doc__ = "A checked rule; proto, the port range and dscp are None when not a condition."

_KEY = struct.Struct("=I")
_VALUE = struct.Struct("=Q")
_RANGE_RE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def _int(value, what, low, high):
    if isinstance(value, bool):
        raise BpfError("%s must be a number from %d to %d, got %r" % (what, low, high, value))
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or not low <= value <= high:
        raise BpfError("%s must be a number from %d to %d, got %r" % (what, low, high, value))
    return value


def _proto(value, where):
    if isinstance(value, str) and value.strip().lower() in PROTOCOLS:
        return PROTOCOLS[value.strip().lower()]
    if isinstance(value, str) and not value.strip().isdigit():
        raise BpfError("%s: unknown protocol %r" % (where, value),
                       hint="use a number 1-255 or one of %s" % ", ".join(sorted(PROTOCOLS)))
    return _int(value, "%s: proto" % where, 1, 255)


def _dport(value, where):
    what = "%s: dport" % where
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise BpfError("%s: a list must hold 2 ports [low, high], got %r" % (what, value))
        low, high = (_int(v, what, 0, 65535) for v in value)
    elif isinstance(value, str) and _RANGE_RE.match(value):
        low, high = (_int(int(v), what, 0, 65535) for v in _RANGE_RE.match(value).groups())
    else:
        low = high = _int(value, what, 0, 65535)
    if low > high:
        raise BpfError("%s: range %d-%d is empty (low above high)" % (what, low, high))
    return low, high


def _dscp(value, where):
    if isinstance(value, str) and value.strip().lower() in DSCP_NAMES:
        return DSCP_NAMES[value.strip().lower()]
    if isinstance(value, str) and not value.strip().isdigit():
        raise BpfError("%s: unknown DSCP name %r" % (where, value),
                       hint="use a number 0-63 or one of %s" % ", ".join(sorted(DSCP_NAMES)))
    return _int(value, "%s: dscp" % where, 0, 63)


def parse_rules(classes):
    """Check a class list (see the module docstring) and return a tuple of TcRule."""
    if classes is None:
        return ()
    if not isinstance(classes, (list, tuple)):
        raise BpfError("tc classes must be a list of rules, got %s" % type(classes).__name__)
    if len(classes) > MAX_RULES:
        raise BpfError("tc classes: %d rules given, at most %d are supported" % (len(classes), MAX_RULES))
    rules = []
    names = {DEFAULT_CLASS_ID: DEFAULT_CLASS_NAME}
    for index, item in enumerate(classes):
        where = "tc classes[%d]" % index
        if not isinstance(item, dict):
            raise BpfError("%s: expected a mapping, got %s" % (where, type(item).__name__))
        unknown = sorted(str(k) for k in set(item) - set(RULE_KEYS))
        if unknown:
            raise BpfError("%s: unknown key(s) %s; expected %s" % (where, ", ".join(unknown), ", ".join(RULE_KEYS)))
        if "id" not in item:
            raise BpfError("%s: id is required (the class counted, 1-%d; 0 is the default class)" % (where, MAX_CLASS_ID))
        class_id = _int(item["id"], "%s: id" % where, 0, MAX_CLASS_ID)
        name = item.get("name")
        if name is None and class_id == DEFAULT_CLASS_ID:
            name = DEFAULT_CLASS_NAME
        if not isinstance(name, str) or not name.strip():
            raise BpfError("%s: name is required: a non-empty string, the class label" % where)
        if names.setdefault(class_id, name) != name:
            raise BpfError("%s: class id %d is named %r here and %r elsewhere; one id has one name"
                           % (where, class_id, name, names[class_id]))
        proto = _proto(item["proto"], where) if item.get("proto") is not None else None
        dport_lo = dport_hi = None
        if item.get("dport") is not None:
            dport_lo, dport_hi = _dport(item["dport"], where)
            if proto is not None and proto not in PORT_PROTOCOLS:
                raise BpfError("%s: protocol %d has no ports, so a dport condition never matches" % (where, proto),
                               hint="ports exist for tcp, udp, sctp and udplite")
        dscp = _dscp(item["dscp"], where) if item.get("dscp") is not None else None
        rules.append(TcRule(name, class_id, proto, dport_lo, dport_hi, dscp))
    return tuple(rules)


def class_names(classes):
    """{class id: name} of a class list, the default class included: the static_map of the
    ``class`` label of tc_classifier.yaml."""
    names = {DEFAULT_CLASS_ID: DEFAULT_CLASS_NAME}
    for rule in parse_rules(classes):
        names[rule.class_id] = rule.name
    return names


def compile_tables(rules):
    """The GEN_SIZE u64 values of one generation for a tuple of TcRule: per field value the set
    of rules it satisfies (bit i: rule i), then the class id of each rule."""
    table = [0] * GEN_SIZE
    proto_any = dscp_any = port_any = 0
    for bit, rule in enumerate(rules):
        mask = 1 << bit
        if rule.proto is None:
            proto_any |= mask
        else:
            table[GEN_PROTO + rule.proto] |= mask
        if rule.dscp is None:
            dscp_any |= mask
        else:
            table[GEN_DSCP + rule.dscp] |= mask
        if rule.dport_lo is None:
            port_any |= mask
        table[GEN_CLASS + bit] = rule.class_id
    for index in range(PROTO_NOT_IP):
        table[GEN_PROTO + index] |= proto_any
    table[GEN_PROTO + PROTO_NOT_IP] = proto_any
    for index in range(DSCP_NOT_IP):
        table[GEN_DSCP + index] |= dscp_any
    table[GEN_DSCP + DSCP_NOT_IP] = dscp_any
    # Port sets are constant between range ends: sweep the boundaries instead of every port.
    edges = sorted(set([0, PORT_NONE] + [p for r in rules if r.dport_lo is not None for p in (r.dport_lo, r.dport_hi + 1)]))
    for start, end in zip(edges, edges[1:]):
        mask = port_any
        for bit, rule in enumerate(rules):
            if rule.dport_lo is not None and rule.dport_lo <= start and end - 1 <= rule.dport_hi:
                mask |= 1 << bit
        table[GEN_PORT + start:GEN_PORT + end] = [mask] * (end - start)
    table[GEN_PORT + PORT_NONE] = port_any
    return table


def generation_base(generation):
    """Index of the first entry of a generation's block (0 or 1)."""
    return 1 + (generation & 1) * GEN_SIZE


def active_generation(selector_value):
    """The generation the programs use, from the selector entry's value (bytes), or 0 for None."""
    return _VALUE.unpack(selector_value[:8])[0] & 1 if selector_value else 0


def update_plan(classes, active=0):
    """What to write to tc_class_rules to install a class list while generation ``active`` is in
    use: (items, selector), items being the (key, value) byte pairs of the other generation's
    block (for map_update_batch) and selector the (key, value) pair that activates it, to write
    after them."""
    generation = (active & 1) ^ 1
    base = generation_base(generation)
    values = compile_tables(parse_rules(classes))
    items = [(_KEY.pack(base + index), _VALUE.pack(value)) for index, value in enumerate(values)]
    return items, (_KEY.pack(SELECTOR_INDEX), _VALUE.pack(generation))
