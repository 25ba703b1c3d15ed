#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ebpf_info
short_description: Report pinned BPF objects, where programs are attached, and kernel BPF features
version_added: "0.1.0"
description:
  - Reads, and never changes, what the kernel and bpffs hold.
  - RV(objects) lists every object pinned under O(pin_root) by M(ebpf.observability.ebpf_program)
    with its programs, maps and the bpf_links M(ebpf.observability.ebpf_attach) pinned.
  - RV(attachments) says where the programs of those objects (older versions still running
    included) are attached, in every network namespace of the host (named ones under
    C(/run/netns) and those of running processes), each with its namespace; RV(interfaces) shows every interface of the network namespace the
    task runs in with its XDP programs and modes, TC filters per direction and bpf_links, each
    marked with the object that owns it.
  - RV(features) are kernel feature facts (BTF, tracefs, kprobes, uprobes, fentry, tp_btf, perf links,
    TCX, libbpf version) for roles to pick a program variant per host, for example a tracepoint
    where the kernel has no kprobes.
  - Needs root, or CAP_BPF (CAP_SYS_ADMIN on kernels before 5.8) and CAP_NET_ADMIN.
author:
  - ebpf.observability contributors (@ebpf-observability)
extends_documentation_fragment:
  - ebpf.observability.ebpf
options:
  gather:
    description:
      - Which facts to gather.
    type: list
    elements: str
    choices: [objects, attachments, interfaces, features]
    default: [objects, attachments, interfaces, features]
notes:
  - Runs in check mode like in normal mode (it only reads).
attributes:
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
requirements:
  - pyroute2 (for O(gather=attachments) and O(gather=interfaces))
seealso:
  - module: ebpf.observability.ebpf_program
  - module: ebpf.observability.ebpf_attach
"""

EXAMPLES = r"""
- name: Gather eBPF facts
  ebpf.observability.ebpf_info:
  register: ebpf

- name: Attach the kprobe variant where the kernel has kprobes, the tracepoint one elsewhere
  ebpf.observability.ebpf_attach:
    name: "{{ 'kprobe_syscall_latency' if ebpf.features.kprobes else 'syscall_latency' }}"
    program: "{{ 'syscall_enter_kp' if ebpf.features.kprobes else 'syscall_enter_tp' }}"

- name: Only the kernel features
  ebpf.observability.ebpf_info:
    gather: [features]
"""

RETURN = r"""
pin_root:
  description: The pin root read.
  returned: always
  type: str
objects:
  description: Objects pinned under O(pin_root) by M(ebpf.observability.ebpf_program) (directories
    holding its load record).
  returned: when O(gather) holds V(objects)
  type: list
  elements: dict
  contains:
    name:
      description: The object's name.
      type: str
    pin_dir:
      description: Its pin directory.
      type: str
    loaded:
      description: Whether its load record is present (always true; directories without one are
        listed under RV(foreign)).
      type: bool
    programs:
      description: Pinned programs (name, kernel_name, type, id, tag, pin).
      type: list
      elements: dict
    maps:
      description: Pinned maps (name, type, id, key_size, value_size, max_entries, map_flags, pin).
      type: list
      elements: dict
    links:
      description: Pinned bpf_links (name, pin, id, type, prog_id and what the link reports, such as
        ifindex, attach_type_name, tp_name).
      type: list
      elements: dict
foreign:
  description: Directories under O(pin_root) that hold pins but no load record of the collection
    (another tool's). The collection never lists them among its objects, never prunes them, and
    M(ebpf.observability.ebpf_program) refuses to remove them.
  returned: when O(gather) holds V(objects)
  type: list
  elements: dict
  contains:
    name:
      description: The directory's name under O(pin_root).
      type: str
    path:
      description: Its path.
      type: str
    pins:
      description: The pins below it, relative to RV(foreign[].path).
      type: list
      elements: str
  sample: [{"name": "other", "path": "/sys/fs/bpf/ebpf_observability/other", "pins": ["m1"]}]
attachments:
  description: Every attachment of the objects' programs, as RV(attachments[].description) says.
  returned: when O(gather) holds V(attachments)
  type: list
  elements: dict
  contains:
    kind:
      description: V(xdp), V(tc) or V(link).
      type: str
    prog_id:
      description: Kernel program id.
      type: int
    object:
      description: The owning object.
      type: str
    program:
      description: The owning object's program.
      type: str
    description:
      description: One line, such as C(xdp (drv) on eth0) or C(link 12 (raw_tracepoint sys_enter)).
      type: str
    elsewhere:
      description: True for an attachment in another network namespace than the task's.
      type: bool
      returned: for attachments in another network namespace
    netns:
      description: A path of the network namespace (C(/run/netns/<name>) or C(/proc/<pid>/ns/net))
        of an XDP or TC attachment in another network namespace.
      type: str
      returned: for XDP and TC attachments in another network namespace
    netns_inode:
      description: The inode of that network namespace.
      type: int
      returned: for XDP and TC attachments in another network namespace
    tcx_position:
      description: Where a TCX link's program runs among the programs on its hook (0 runs first).
      type: int
      returned: for TCX links in the task's network namespace
    tp_name:
      description: The tracepoint of a raw_tracepoint link, or of a perf_event link on Linux 6.6+.
      type: str
      returned: when the kernel reports it
    perf_event_type_name:
      description: What a perf_event link is attached to (tracepoint, kprobe, kretprobe, uprobe, uretprobe); Linux 6.6+.
      type: str
      returned: when the kernel reports it
    func_name:
      description: The kernel function of a kprobe or kretprobe link; Linux 6.6+.
      type: str
      returned: when the kernel reports it
    file_name:
      description: The file of a uprobe or uretprobe link; Linux 6.6+.
      type: str
      returned: when the kernel reports it
interfaces:
  description: Every interface of the task's network namespace and what runs on it; entries carry
    C(object) and C(program) (null when not ours).
  returned: when O(gather) holds V(interfaces)
  type: list
  elements: dict
  contains:
    name:
      description: Interface name.
      type: str
    ifindex:
      description: Interface index.
      type: int
    up:
      description: Administratively up.
      type: bool
    tc_qdisc:
      description: V(clsact), V(ingress) or null.
      type: str
    xdp_modes:
      description:
        - XDP modes the interface supports (V(skb) always; V(drv) and V(hw) as its driver
          reports them), or null where the kernel cannot tell (before Linux 6.3).
      type: list
      elements: str
      sample: [skb, drv]
    xdp:
      description: XDP programs (mode, prog_id, link_id when attached through a bpf_link); libxdp's
        dispatcher with C(dispatcher), its components in run order (prog_id, name, priority,
        chain_call_actions, object, program).
      type: list
      elements: dict
    tc:
      description: BPF filters per direction (C(ingress), C(egress)), each with prio, handle, prog_id.
      type: dict
    links:
      description: bpf_links bound to the interface (TCX, XDP links) with link_id, link_type,
        attach_type_name, prog_id.
      type: list
      elements: dict
features:
  description: Kernel feature facts.
  returned: when O(gather) holds V(features)
  type: dict
  contains:
    kernel_release:
      description: The running kernel's release.
      type: str
    btf:
      description: The kernel exposes BTF (CO-RE objects can be loaded).
      type: bool
    tracefs:
      description: Where tracefs is mounted, or null.
      type: str
    tracepoints:
      description: Tracepoint programs can be loaded.
      type: bool
    raw_tracepoints:
      description: Raw tracepoint programs can be loaded.
      type: bool
    kprobes:
      description: kprobes can be attached (the kernel has CONFIG_KPROBES).
      type: bool
    uprobes:
      description: uprobes can be attached.
      type: bool
    fentry:
      description: fentry/fexit programs can be loaded (a do-nothing fentry program on C(do_nanosleep)
        loads), so the kernel has BPF trampolines.
      type: bool
    tp_btf:
      description: BTF-typed tracepoint (tp_btf) programs can be loaded (a do-nothing program on
        C(sys_enter) loads). They need no BPF trampoline.
      type: bool
    perf_link:
      description: Programs can be linked to perf events (needed for tracepoints, kprobes and uprobes).
      type: bool
    xdp:
      description: XDP programs can be loaded.
      type: bool
    tc:
      description: TC (sched_cls) programs can be loaded.
      type: bool
    tcx:
      description: TC programs can be attached through TCX links.
      type: bool
    task_storage:
      description: Task-local storage maps can be created (Linux 5.11+); without them C(syscall_latency) uses
        its variant keeping thread state in a hash.
      type: bool
    kern_ctx:
      description: TC programs may call the kfunc C(bpf_cast_to_kern_ctx) (Linux 6.3+); with it C(tc_classifier)
        uses its variant reading the headers directly.
      type: bool
    libbpf_version:
      description: Version of the libbpf the modules use, or null without libbpf.
      type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ebpf.observability.plugins.module_utils.backends.info import GATHER, InfoBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.module_runner import run_backend


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pin_root=dict(type="path", default="/sys/fs/bpf/ebpf_observability"),
            gather=dict(type="list", elements="str", choices=list(GATHER), default=list(GATHER)),
        ),
        supports_check_mode=True,
    )

    def action():
        backend = InfoBackend(module.params["pin_root"], module.params["gather"])
        return backend, backend.run()

    run_backend(module, action, changes_state=False)


if __name__ == "__main__":
    main()
