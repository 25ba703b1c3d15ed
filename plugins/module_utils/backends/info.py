# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The facts behind the ebpf_info module, read from the kernel and bpffs; nothing changes.

- objects: every object the collection pinned under the pin root (a directory holding its load
  record) with its programs, maps and pinned links; ``foreign``: the other directories there
  that hold pins (another tool's), with their pins, kept apart;
- attachments: where the programs of those objects (older versions still running included)
  are attached: XDP, TC filters, bpf_links, in every network namespace of the host;
- interfaces: every interface of the task's network namespace with the XDP modes its driver
  supports (xdp_features; null where the kernel cannot tell), its XDP program and mode,
  its TC filters per direction and the TCX links on it, each marked with the object that owns
  it (null: not ours);
- features: what the kernel offers for attaching (features.facts()).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import attachments as att
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import libxdp
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import capabilities
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import xdp_features
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend, public_view
from ansible_collections.ebpf.observability.plugins.module_utils.state import pin_state
from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_state import LINKS_DIR

GATHER = ("objects", "attachments", "interfaces", "features")
DIRECTIONS = ("ingress", "egress")
XDP_KEYS = ("mode", "prog_id", "link_id")
TC_KEYS = ("prio", "handle", "prog_id")
IF_LINK_KEYS = ("link_id", "link_type", "attach_type_name", "prog_id")
LINK_KEYS = ("ifindex", "attach_type_name", "tp_name", "perf_event_type_name", "func_name", "file_name")


def _links(pin_dir):
    found = []
    directory = os.path.join(pin_dir, LINKS_DIR)
    for name in bpffs.list_pins(directory):
        path = os.path.join(directory, name)
        try:
            with sc.obj_get(path) as fd:
                info = sc.link_info(fd)
        except BpfError:
            continue  # not a link (or not readable): nothing to report
        entry = {"name": name, "pin": path, "id": info["id"], "type": info["type_name"], "prog_id": info["prog_id"]}
        entry.update((k, info[k]) for k in LINK_KEYS if info.get(k) is not None)
        found.append(entry)
    return found


class InfoBackend:
    """Gathers the facts; ``gather`` names the parts wanted (GATHER)."""

    def __init__(self, pin_root=bpffs.DEFAULT_PIN_ROOT, gather=GATHER):
        unknown = set(gather) - set(GATHER)
        if unknown:
            raise BpfError("unknown fact set(s): %s" % ", ".join(sorted(unknown)), hint="choose from %s" % ", ".join(GATHER))
        self.pin_root = bpffs.check_pin_root(pin_root)
        self.gather = gather
        self.warnings = []
        self._owners = None
        self._backends = None
        self._everything = None

    def run(self):
        capabilities.require_bpf()
        res = {"changed": False, "pin_root": self.pin_root}
        if "objects" in self.gather:
            res["objects"] = self.objects()
            res["foreign"] = self.foreign()
        if "attachments" in self.gather or "interfaces" in self.gather:
            with Netlink() as nl:
                if "attachments" in self.gather:
                    res["attachments"] = self.attachments(nl)
                if "interfaces" in self.gather:
                    res["interfaces"] = self.interfaces(nl)
        if "features" in self.gather:
            res["features"] = features.facts()
        return res

    # -- objects ------------------------------------------------------------------------------

    def backends(self):
        """{object name: ProgramBackend} of every object directory under the pin root."""
        if self._backends is None:
            self._backends = {}
            for name in bpffs.list_pins(self.pin_root):
                if os.path.isdir(os.path.join(self.pin_root, name)):
                    try:
                        self._backends[name] = ProgramBackend(name, self.pin_root, check_mode=True)
                    except BpfError as e:
                        self.warnings.append("cannot read object %s: %s" % (name, e))
        return self._backends

    def ours(self):
        """The backends of the directories the collection made: those holding a load record."""
        return dict((n, b) for n, b in self.backends().items() if b.before and b.before["state"])

    def foreign(self):
        """Directories under the pin root that hold pins but no load record (another tool's):
        never counted among the collection's objects, never pruned or removed by it."""
        out = []
        for name, backend in sorted(self.backends().items()):
            if backend.before and not backend.before["state"]:
                pins = pin_state.foreign_pins(backend.pin_dir, None)
                if pins:
                    out.append({"name": name, "path": backend.pin_dir, "pins": pins})
        return out

    def objects(self):
        out = []
        for name, backend in sorted(self.ours().items()):
            view = public_view(backend.before)
            out.append({"name": name, "pin_dir": backend.pin_dir, "loaded": bool(backend.before and backend.before["state"]),
                        "programs": view.get("programs", []), "maps": view.get("maps", []), "links": _links(backend.pin_dir)})
        return out

    def owners(self):
        """{prog_id: (object, program)} for every program of our objects, older versions too."""
        if self._owners is None:
            self._owners = {}
            for name, backend in self.ours().items():
                by_kernel_name = dict((p["kernel_name"], p["name"]) for p in backend.before["programs"])
                for prog_id in backend.owned_prog_ids():
                    try:
                        with sc.prog_fd_by_id(prog_id) as fd:
                            kernel_name = sc.prog_info(fd)["name"]
                    except BpfError:
                        continue
                    self._owners[prog_id] = (name, by_kernel_name.get(kernel_name, kernel_name))
        return self._owners

    def _mark(self, entry):
        owner = self.owners().get(entry.get("prog_id"))
        entry["object"], entry["program"] = owner if owner else (None, None)
        return entry

    # -- attachments and interfaces -------------------------------------------------------

    def everything(self, nl):
        """Every attachment of every loaded program in this network namespace (one scan)."""
        if self._everything is None:
            self._everything = att.find_attachments(sc.prog_ids(), nl)
        return self._everything

    def attachments(self, nl):
        """Every attachment of our programs, in every network namespace of the host."""
        found = att.find_attachments(list(self.owners()), nl, other_namespaces=True)
        return [dict(self._mark(dict(a)), description=att.describe(a)) for a in found]

    def interfaces(self, nl):
        by_ifindex = {}
        for a in self.everything(nl):
            if a.get("ifindex"):
                by_ifindex.setdefault(a["ifindex"], []).append(a)
        qdiscs = nl.hook_qdiscs()
        xdp_modes = xdp_features.xdp_modes() or {}
        out = []
        for ifindex, name in nl.interfaces():
            found = by_ifindex.get(ifindex, [])
            out.append({
                "name": name, "ifindex": ifindex, "up": nl.link_is_up(ifindex), "tc_qdisc": qdiscs.get(ifindex),
                "xdp_modes": xdp_modes.get(ifindex),
                "xdp": self._dispatchers(ifindex, [self._pick(a, XDP_KEYS) for a in found if a["kind"] == "xdp"]),
                "tc": dict((d, [self._pick(a, TC_KEYS) for a in found if a["kind"] == "tc" and a["direction"] == d]) for d in DIRECTIONS),
                "links": [self._pick(a, IF_LINK_KEYS) for a in found if a["kind"] == "link"],
            })
        return out

    def _dispatchers(self, ifindex, xdp):
        """XDP entries, libxdp's dispatcher with its components in run order (ours marked)."""
        if not xdp or not libxdp.available():
            return xdp
        try:
            found = libxdp.dispatcher(ifindex)
        except BpfError as e:
            self.warnings.append("cannot read the XDP dispatcher of ifindex %d: %s" % (ifindex, e))
            return xdp
        for entry in xdp:
            if found and not found["legacy"] and entry["prog_id"] == found["prog_id"]:
                entry["dispatcher"] = [self._mark(dict(c)) for c in found["components"]]
        return xdp

    def _pick(self, attachment, keys):
        return self._mark(dict((k, attachment.get(k)) for k in keys))
