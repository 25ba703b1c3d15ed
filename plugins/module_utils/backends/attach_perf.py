# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The perf_event hook of ebpf_attach: a perf_event program run by a sampling perf event (a
hardware or software counter) on every online CPU, as cloudflare/ebpf_exporter attaches the
programs of its ``perf_event/type=T,config=C,frequency=F`` sections.

The target is that section's ``type=T,config=C,frequency=F`` (or ``period=P``), from the
program's section or the ``target`` option (kernel.named_sections). One perf event is opened per
online CPU (every task on it) and linked to the program (BPF_LINK_CREATE, BPF_PERF_EVENT; Linux
5.15+); each link is pinned at ``links/<program>-perf_event-<target>-cpu<N>``, which keeps the
event open after the module ends. A new version of the program gets new links pinned over the
old ones, CPU by CPU; a CPU that comes online later is covered by the next run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_state import pin_key
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import named_sections
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import perf_event
from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach_common import (
    ATTACH, REPLACE, AttachError, Hook, pin_link, prog_facts, read_link, unpin_link, wait_link_gone,
)
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError

CPU_POSSIBLE = "/sys/devices/system/cpu/possible"


class PerfEventHook(Hook):
    """See the module docstring. ``section`` is the program's ELF section (None when unknown)."""

    name = "perf_event"

    def __init__(self, backend, section=None):
        super(PerfEventHook, self).__init__(backend)
        target = backend.target
        try:
            spec = named_sections.perf_event_spec("perf_event/" + target) if target else named_sections.perf_event_spec(section)
        except BpfError as e:
            raise AttachError(e.msg, "invalid_argument", hint=e.hint)
        if spec is None:
            raise AttachError("hook perf_event needs the event: the program's section names none", "invalid_argument",
                              hint="set target, for example type=1,config=0,frequency=99 (the software CPU clock)")
        self.spec = spec
        self.canonical = named_sections.perf_event_canonical(spec)
        self.cpus = perf_event.cpu_list()

    def _path(self, cpu):
        return os.path.join(self.prog.links_dir, pin_key(self.prog.link_prefix, "perf_event", self.canonical, "cpu%d" % cpu))

    def validate(self):
        try:
            features.require_perf_link("a perf_event")
        except BpfError as e:
            raise AttachError(e.msg, "unsupported", hint=e.hint)

    # -- kernel state -----------------------------------------------------------------

    def read(self):
        """{cpu: link_info or None} for the online CPUs; under "stale", links pinned for CPUs
        that are offline now."""
        links = dict((cpu, read_link(self._path(cpu))) for cpu in self.cpus)
        stale = {}
        for cpu in self._possible():
            if cpu not in links:
                link = read_link(self._path(cpu))
                if link is not None:
                    stale[cpu] = link
        return {"links": links, "stale": stale}

    @staticmethod
    def _possible():
        try:
            return perf_event.cpu_list(CPU_POSSIBLE)
        except (IOError, OSError, ValueError):
            return []

    def _matches(self, link):
        if link.get("type_name") != "perf_event":
            return False
        if "perf_event_type_name" not in link:  # before Linux 6.6 the kernel reports nothing more
            return True
        # the type is not compared: the kernel reports the PMU that serves the event, which for
        # the software CPU clock is a PMU of its own on recent kernels, not type 1
        return (link["perf_event_type_name"], link.get("config")) == ("event", self.spec["config"])

    def _ours(self, link):
        return bool(link and link["prog_id"] == self.prog.id and self._matches(link))

    def attached(self, state):
        return all(self._ours(link) for link in state["links"].values())

    def holds_ours(self, state):
        return any(link is not None for link in state["links"].values()) or bool(state["stale"])

    def needs_attach(self, state):
        if self.attached(state):
            return None
        return REPLACE if any(link is not None for link in state["links"].values()) else ATTACH

    # -- changes --------------------------------------------------------------------------

    def attach(self, state, action):
        what = self.canonical
        made = []
        try:
            for cpu, old in sorted(state["links"].items()):
                if self._ours(old):
                    continue
                try:
                    perf = perf_event.open_counter(self.spec["type"], self.spec["config"], cpu, self.spec.get("frequency", 0),
                                                   self.spec.get("period", 0), "%s on CPU %d" % (what, cpu))
                except BpfError as e:
                    kind = "unknown_target" if e.errno in (errno.ENOENT, errno.EOPNOTSUPP) else "attach_failed"
                    raise AttachError(e.msg, kind, errno=e.errno, hint=e.hint)
                with perf:
                    with perf_event.link_perf_event(self.prog.fd, perf, "%s on CPU %d" % (what, cpu)) as link:
                        pin_link(link, self._path(cpu))
                made.append((cpu, old))
        except BpfError:
            if action == ATTACH:  # nothing was attached before: leave nothing half made
                for cpu, _old in made:
                    unpin_link(self._path(cpu), "perf_event link of %s" % self.prog.label)
            raise
        for _cpu, old in made:
            if old is not None:
                wait_link_gone(old["id"], "the previous perf_event link")

    def detach(self, state):
        for cpu in sorted(set(state["links"]) | set(state["stale"])):
            unpin_link(self._path(cpu), "perf_event link of %s on CPU %d" % (self.prog.label, cpu))

    # -- views ----------------------------------------------------------------------------

    def _view(self, cpus, link_ids, prog_id, name):
        return {"hook": self.name, "target": self.canonical, "cpus": cpus, "link_ids": link_ids,
                "link_pins": [self._path(cpu) for cpu in cpus], "prog_id": prog_id, "prog_name": name}

    def view(self, state):
        present = sorted((cpu, link) for cpu, link in list(state["links"].items()) + list(state["stale"].items()) if link)
        if not present:
            return {}
        prog_ids = sorted(set(link["prog_id"] for _cpu, link in present))
        prog_id = prog_ids[0] if len(prog_ids) == 1 else prog_ids
        name = (prog_facts(prog_ids[0]) or {}).get("name")
        return self._view([cpu for cpu, _link in present], [link["id"] for _cpu, link in present], prog_id, name)

    def predict(self, state, action):
        return self._view(sorted(state["links"]), None, self.prog.id, self.prog.info["name"])
