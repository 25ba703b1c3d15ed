#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ebpf_program
short_description: Load a BPF object and pin its programs and maps, or unload it
version_added: "0.1.0"
description:
  - Loads a compiled BPF ELF object (CO-RE, relocated against the running kernel's BTF) with
    libbpf and pins its programs and maps under O(pin_root)/O(name)/ on bpffs, so they outlive
    the module and can be attached with M(ebpf.observability.ebpf_attach).
  - Programs are pinned at C(progs/<program>), maps at C(maps/<map>). Every map except the
    object's C(.rodata), C(.data) and C(.bss) is pinned and B(reused) by the next load of the same
    O(name), so counters survive an upgrade of the program.
  - Idempotent from what the kernel reports. A second run with the same object changes nothing.
    A changed object (instructions, read-only data, map definitions) is loaded and replaces the
    pinned programs atomically; a rebuilt object that the kernel reports identical (same program
    tags, data and maps) keeps the programs already pinned. After a reboot (empty bpffs) the object
    is loaded again.
  - O(state=absent) unpins programs, maps and links and removes the directory. It refuses while
    any of the object's programs (including an older version still using its maps, and every
    earlier version the load record keeps while the kernel still runs it, such as one left
    attached by an upgrade with O(replace_maps=true)) is attached to an interface (XDP, TC) or
    through a bpf_link, naming where; O(force=true) detaches first.
  - Touches only what it made. A directory at O(pin_root)/O(name) without the collection's load
    record, or holding pins the record does not name (another tool's), is refused, with or
    without O(force), naming what it holds; so is a pin root or object directory that another user
    owns or can write (bpffs mounts are often world-writable), and a pin root inside another
    object's directory.
  - Needs root, or CAP_BPF (CAP_SYS_ADMIN on kernels before 5.8), and libbpf 1.x (C(libbpf.so.1)).
author:
  - ebpf.observability contributors (@ebpf-observability)
extends_documentation_fragment:
  - ebpf.observability.ebpf
options:
  name:
    description:
      - Identity of the loaded object; its pins live in O(pin_root)/O(name)/.
      - Letters, digits, C(_) and C(-), not starting with C(-), at most 128 characters. No C(.)
        (bpffs refuses names containing it) and no C(/).
    type: str
    required: true
  src:
    description:
      - Path of the BPF object file (C(.bpf.o)) on the target host.
      - Required with O(state=present).
    type: path
  state:
    description:
      - V(present) loads and pins the object; V(absent) unloads it.
    type: str
    choices: [present, absent]
    default: present
  programs:
    description:
      - Names of the object's programs (its C functions) to load and pin; all when omitted.
      - A name the object does not hold is an error that lists the programs it has.
      - An empty list is an error (V(programs must name at least one program; omit it to load
        all)); it never means all programs.
    type: list
    elements: str
  replace_maps:
    description:
      - When a pinned map's definition (type, key or value size, max entries, flags) differs from
        the object's, replace the map, and drop a pinned map the object no longer defines (their
        contents are lost), instead of failing.
    type: bool
    default: false
  force:
    description:
      - With O(state=absent), detach the object's programs from every interface and link first
        instead of refusing.
    type: bool
    default: false
notes:
  - Check mode loads the object into the kernel without pinning anything (so the verifier runs and
    the program tags can be compared), then releases it; nothing persists.
  - Supports diff mode; the diff shows programs (name, type, tag, id) and maps (name, type, sizes,
    max entries) before and after.
requirements:
  - libbpf 1.x (C(libbpf.so.1); Debian and Ubuntu package C(libbpf1))
  - bpffs mounted at C(/sys/fs/bpf)
  - pyroute2 for O(state=absent) (it checks XDP and TC attachments)
seealso:
  - module: ebpf.observability.ebpf_attach
  - module: ebpf.observability.ebpf_info
"""

EXAMPLES = r"""
- name: Load the XDP counter and pin it
  ebpf.observability.ebpf_program:
    name: xdp_counter
    src: /usr/local/lib/ebpf_observability/xdp_counter.bpf.o

- name: Load only some programs of an object
  ebpf.observability.ebpf_program:
    name: net_tracepoints
    src: /usr/local/lib/ebpf_observability/net_tracepoints.bpf.o
    programs: [skb_kfree, tcp_retransmit]

- name: Upgrade to an object whose map grew (the old map and its counters are dropped)
  ebpf.observability.ebpf_program:
    name: xdp_counter
    src: /usr/local/lib/ebpf_observability/xdp_counter.bpf.o
    replace_maps: true

- name: Unload, detaching it from every interface first
  ebpf.observability.ebpf_program:
    name: xdp_counter
    state: absent
    force: true
"""

RETURN = r"""
name:
  description: The object's name.
  returned: always
  type: str
  sample: xdp_counter
pin_dir:
  description: Directory holding the object's pins.
  returned: always
  type: str
  sample: /sys/fs/bpf/ebpf_observability/xdp_counter
programs:
  description: The pinned programs after the run (empty after O(state=absent)). In check mode
    programs about to be loaded have RV(programs[].id) null.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Program (C function) name, also the pin's file name.
      type: str
      sample: xdp_counter
    kernel_name:
      description: Name the kernel reports (truncated to 15 characters).
      type: str
    type:
      description: Kernel program type.
      type: str
      sample: xdp
    id:
      description: Kernel program id.
      type: int
      sample: 118
    tag:
      description: Kernel program tag (hash of its instructions), 16 hex digits.
      type: str
      sample: c1449139186ca030
    pin:
      description: Pin path on bpffs.
      type: str
      sample: /sys/fs/bpf/ebpf_observability/xdp_counter/progs/xdp_counter
maps:
  description: The pinned maps after the run (empty after O(state=absent)).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Map name, also the pin's file name.
      type: str
    type:
      description: Kernel map type.
      type: str
      sample: percpu_hash
    id:
      description: Kernel map id (unchanged across upgrades that reuse the map).
      type: int
    key_size:
      description: Key size in bytes.
      type: int
    value_size:
      description: Value size in bytes.
      type: int
    max_entries:
      description: Maximum number of entries.
      type: int
    map_flags:
      description: Map flags.
      type: int
    pin:
      description: Pin path on bpffs.
      type: str
detached:
  description: Attachments removed (or, in check mode, to be removed) by O(force=true).
  returned: when O(state=absent) detached something
  type: list
  elements: str
  sample: ["xdp (drv) on eth0"]
verifier_log:
  description: Tail of the verifier log when the kernel rejected a program (the failing
    instruction is at the end).
  returned: on verifier rejection
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ebpf.observability.plugins.module_utils.backends.module_runner import run_backend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            src=dict(type="path"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            programs=dict(type="list", elements="str"),
            pin_root=dict(type="path", default="/sys/fs/bpf/ebpf_observability"),
            replace_maps=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
        ),
        required_if=[("state", "present", ["src"])],
        supports_check_mode=True,
    )

    def action():
        p = module.params
        backend = ProgramBackend(p["name"], p["pin_root"], check_mode=module.check_mode)
        if p["state"] == "present":
            return backend, backend.present(p["src"], programs=p["programs"], replace_maps=p["replace_maps"])
        return backend, backend.absent(force=p["force"])

    run_backend(module, action)


if __name__ == "__main__":
    main()
