# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The usdt hook of ebpf_attach: a program written with libbpf's ``usdt.bpf.h`` (``BPF_USDT``,
``bpf_usdt_arg``) at a USDT probe, with libbpf's semantics and its section syntax
``usdt/<binary>:<provider>:<name>``.

The target is ``<binary>:<provider>:<name>``; the binary a path, or a library or program name
found as for uprobes. Every location of the probe in the binary (kernel.usdt_notes) gets a
uprobe with the probe's semaphore as its reference counter (so code guarded by the semaphore
runs while the probe is attached), linked to the program (BPF_LINK_CREATE, BPF_PERF_EVENT;
Linux 5.15+) with a BPF cookie naming the entry of the object's ``__bpf_usdt_specs`` map that
holds the location's argument spec, as libbpf's attach would. Each link is pinned at
``links/<program>-usdt-spec<N>-<target>``, N being that entry: the pins are the record of
which entries are taken, so attachments of several probes share the map as they do in libbpf.

A new version of the program takes new entries and new links, pinned before the old ones go.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re

from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_state import MAPS_DIR, pin_key
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import perf_event
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import usdt_notes
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import (
    ATTACH, REPLACE, AttachError, Hook, pin_link, prog_facts, read_link, unpin_link,
)
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_tracing import resolve_binary
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

SPECS_MAP = "__bpf_usdt_specs"
_SPEC_PIN = re.compile(r"^(.+)-usdt-spec(\d+)-")


def parse_target(target):
    """(binary path, provider, name) of ``<binary>:<provider>:<name>``."""
    parts = (target or "").rsplit(":", 2)
    if len(parts) != 3 or not all(parts):
        raise AttachError("invalid usdt target %r" % target, "invalid_argument",
                          hint="expected <binary>:<provider>:<name>, for example python3:python:function__entry "
                               "or /usr/lib/x86_64-linux-gnu/libc.so.6:libc:setjmp")
    return resolve_binary(parts[0]), parts[1], parts[2]


class UsdtHook(Hook):
    """See the module docstring."""

    name = "usdt"

    def __init__(self, backend):
        super(UsdtHook, self).__init__(backend)
        self.canonical = (backend.target or "").strip()
        self.path, self.provider, self.probe = parse_target(self.canonical)
        self.locations = None
        self.specs_pin = os.path.join(self.prog.pin_dir, MAPS_DIR, SPECS_MAP) if self.prog.pin_dir else None

    def _path(self, spec_id):
        return os.path.join(self.prog.links_dir, pin_key(self.prog.link_prefix, "usdt", "spec%d" % spec_id, self.canonical))

    def validate(self):
        for check in (features.require_uprobes, lambda: features.require_perf_link("a usdt")):
            try:
                check()
            except BpfError as e:
                raise AttachError(e.msg, "unsupported", hint=e.hint)
        if not self.specs_pin or not os.path.exists(self.specs_pin):
            raise AttachError("%s has no %s map: a usdt program is written with libbpf's usdt.bpf.h (BPF_USDT, "
                              "bpf_usdt_arg) and loaded by ebpf_program" % (self.prog.label, SPECS_MAP), "program_type_mismatch")
        self._locations()

    def _locations(self):
        if self.locations is None:
            if not os.path.isfile(self.path):
                raise AttachError("usdt target file %s does not exist" % self.path, "unknown_target", errno=errno.ENOENT)
            try:
                found = usdt_notes.probes(self.path)
                self.locations = sorted((p for p in found if (p["provider"], p["name"]) == (self.provider, self.probe)),
                                        key=lambda p: p["offset"])
                self.specs = [usdt_notes.spec_bytes(p["args"], p["arch"]) for p in self.locations]
            except BpfError as e:
                raise AttachError("%s: %s" % (self.canonical, e), "unknown_target", hint=e.hint)
            if not self.locations:
                known = sorted(set("%s:%s" % (p["provider"], p["name"]) for p in found))
                raise AttachError("%s has no USDT probe %s:%s" % (self.path, self.provider, self.probe), "unknown_target",
                                  hint="its probes: %s" % (", ".join(known) or "none (no .note.stapsdt)"))
        return self.locations

    # -- kernel state -----------------------------------------------------------------

    def _taken(self):
        """{spec id: pin name} of every usdt link pin of the object, ours or its other programs'."""
        taken = {}
        for entry in bpffs.list_pins(self.prog.links_dir) or []:
            m = _SPEC_PIN.match(entry)
            if m:
                taken[int(m.group(2))] = entry
        return taken

    def read(self):
        """{links: {spec id: link_info}} of this program's links at this target."""
        links = {}
        for spec_id, entry in self._taken().items():
            if entry == os.path.basename(self._path(spec_id)):
                links[spec_id] = read_link(os.path.join(self.prog.links_dir, entry))
        return {"links": links}

    def _spec(self, spec_id):
        with sc.obj_get(self.specs_pin) as fd:
            return sc.map_lookup(fd, spec_id.to_bytes(4, "little"), usdt_notes.SPEC_SIZE)

    def attached(self, state):
        links = state["links"]
        want = self._locations()
        if len(links) != len(want):
            return False
        for (spec_id, link), location, spec in zip(sorted(links.items()), want, self.specs):
            if not link or link["prog_id"] != self.prog.id or link.get("type_name") != "perf_event":
                return False
            if "offset" in link and (link.get("file_name"), link["offset"]) != (self.path, location["offset"]):
                return False
            if self._spec(spec_id) != spec:
                return False
        return True

    def holds_ours(self, state):
        return bool(state["links"])

    def needs_attach(self, state):
        if self.attached(state):
            return None
        return REPLACE if state["links"] else ATTACH

    # -- changes --------------------------------------------------------------------------

    def _free_ids(self, count):
        with sc.obj_get(self.specs_pin) as fd:
            capacity = sc.map_info(fd)["max_entries"]
        taken = self._taken()
        free = [i for i in range(capacity) if i not in taken]
        if len(free) < count:
            raise AttachError("%s: the object's %s map has %d free entries, %d locations need one each"
                              % (self.canonical, SPECS_MAP, len(free), count), "attach_failed",
                              hint="compile the program with a larger BPF_USDT_MAX_SPEC_CNT")
        return free[:count]

    def attach(self, state, action):
        locations = self._locations()
        ids = self._free_ids(len(locations))
        made = []
        try:
            with sc.obj_get(self.specs_pin) as specs:
                for spec_id, location, spec in zip(ids, locations, self.specs):
                    sc.map_update(specs, spec_id.to_bytes(4, "little"), spec)
                    what = "usdt %s at offset %#x" % (self.canonical, location["offset"])
                    with perf_event.open_probe("uprobe", self.path, location["offset"], False, what,
                                               ref_ctr_offset=location["semaphore"]) as perf:
                        with perf_event.link_perf_event(self.prog.fd, perf, what, cookie=spec_id) as link:
                            pin_link(link, self._path(spec_id))
                    made.append(spec_id)
        except BpfError:
            for spec_id in made:
                unpin_link(self._path(spec_id), "usdt link of %s" % self.prog.label)
            raise
        for spec_id in state["links"]:  # the new links run: the old ones go (unpin_link waits for each)
            unpin_link(self._path(spec_id), "the previous usdt link of %s" % self.prog.label)

    def detach(self, state):
        for spec_id in sorted(state["links"]):
            unpin_link(self._path(spec_id), "usdt link of %s" % self.prog.label)

    # -- views ----------------------------------------------------------------------------

    def view(self, state):
        links = sorted((i, link) for i, link in state["links"].items() if link)
        if not links:
            return {}
        prog_ids = sorted(set(link["prog_id"] for _i, link in links))
        return {"hook": self.name, "target": self.canonical, "path": self.path, "spec_ids": [i for i, _link in links],
                "link_ids": [link["id"] for _i, link in links], "link_pins": [self._path(i) for i, _link in links],
                "prog_id": prog_ids[0] if len(prog_ids) == 1 else prog_ids,
                "prog_name": (prog_facts(prog_ids[0]) or {}).get("name")}

    def predict(self, state, action):
        return {"hook": self.name, "target": self.canonical, "path": self.path, "spec_ids": None, "link_ids": None,
                "link_pins": None, "prog_id": self.prog.id, "prog_name": self.prog.info["name"]}
