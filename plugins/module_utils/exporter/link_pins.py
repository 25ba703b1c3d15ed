# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bpf_link attachments of the configured objects, from the names of their link pins.

Listing bpf_links needs CAP_SYS_ADMIN and opening a link pin needs write permission (a writable
link could detach its program), so the least-privileged exporter sees neither. But ebpf_attach
pins every link it makes under ``<pin_dir>/links/``, named by pin_state.pin_key, and a pinned
link holds its attachment: the names alone tell which program is attached where, given only the
search and read permission on ``links/`` that --grant-access gives the exporter's group (never
on the pins in it).

* ``<program>-<hook>-<target>`` for a tracing hook (kprobe, tracepoint, tp_btf, ...): attached,
  with no interface; ``<program>-perf_event-<event>-cpu<N>``: one attachment per CPU;
* ``<program>-tc-<interface>-<direction>`` (TCX): attached to that interface when an interface of
  that name exists in the exporter's network namespace. The name is compared with pin_key's for
  every interface there, so names pin_key had to hash (``eth0.100``) are found too. A TCX link
  whose interface went away is released by the kernel but its pin stays: it is not counted,
  unless an interface of the same name has appeared since.

Links of other tools, not pinned there, are not seen; with CAP_SYS_ADMIN the exporter lists the
kernel's links instead (kernel.attachments).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_state import LINKS_DIR, pin_key

# ebpf_attach's hooks without an interface (backends.attach_tracing.TRACING_HOOKS, attach_btf's
# BTF_HOOKS, the perf_event hook (a link per CPU) and the usdt hook (a link per probe location); the exporter does not import backends) and
# TC's directions.
TRACING_HOOKS = ("tracepoint", "raw_tracepoint", "kprobe", "kretprobe", "uprobe", "uretprobe",
                 "tp_btf", "fentry", "fexit", "fmod_ret", "lsm", "perf_event", "usdt",
                 "kprobe_multi", "kretprobe_multi", "uprobe_multi", "uretprobe_multi")
DIRECTIONS = ("ingress", "egress")


def pinned_link_attachments(pin_dir, programs, interfaces=None):
    """[{kind: "pinned_link", prog_id, interface}] of the link pins in ``<pin_dir>/links`` whose program is one of
    ``programs`` ({pin name: prog_info}); ``interfaces`` defaults to this network namespace's
    interface names. Raises BpfError when the directory cannot be listed."""
    names = bpffs.list_pins(os.path.join(pin_dir, LINKS_DIR))
    if not names:
        return []
    if interfaces is None:
        interfaces = [name for _index, name in socket.if_nameindex()]
    found = []
    for program, info in programs.items():
        tc = dict((pin_key(program, "tc", interface, direction), interface)
                  for interface in interfaces for direction in DIRECTIONS)
        tracing = tuple("%s-%s-" % (program, hook) for hook in TRACING_HOOKS)  # program names are pin-safe
        for name in names:
            if name in tc:
                found.append({"kind": "pinned_link", "prog_id": info["id"], "interface": tc[name]})
            elif name.startswith(tracing):
                found.append({"kind": "pinned_link", "prog_id": info["id"], "interface": ""})
    return found
