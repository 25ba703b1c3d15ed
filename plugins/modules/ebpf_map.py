#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ebpf_map
short_description: Set entries of a map pinned by ebpf_program (configuration data)
version_added: "0.1.0"
description:
  - Writes entries into an array or hash map that M(ebpf.observability.ebpf_program) pinned, for
    data a program reads at run time. Programs see the new values at once; nothing is reloaded.
    (tc_classifier's classes have their own module, M(ebpf.observability.ebpf_tc_rules).)
  - Idempotent from the kernel. The values the map holds are compared with the final value of
    every entry; when they match (and, with O(exclusive=true), the map holds nothing else)
    nothing is written.
  - When something differs, the entries are written in list order, so a list can encode a
    write sequence that programs never see half-applied (a key may appear more than once; its
    last value is the one compared). With O(exclusive=true) the other entries are removed
    first, so a full hash map has room for the new ones.
  - A hash map's capacity is checked before anything is written. When the entries it holds,
    less those removed, plus the new keys would exceed its C(max_entries), the task fails and
    the map is left as it was (in check mode too). If the kernel refuses a write anyway (a
    program filled the map meanwhile), every entry already written is put back to its previous
    value before the task fails.
  - Per-CPU maps hold counters, not configuration, and are refused.
author:
  - ebpf.observability contributors (@ebpf-observability)
extends_documentation_fragment:
  - ebpf.observability.ebpf
options:
  name:
    description: The O(ebpf.observability.ebpf_program#module:name) of the loaded object.
    type: str
    required: true
  map:
    description: Name of the map (as pinned under C(maps/)).
    type: str
    required: true
  entries:
    description:
      - Entries to write, in order.
    type: list
    elements: dict
    required: true
    suboptions:
      key:
        description: Key as a hex string of exactly the map's key size, or an integer (little-endian).
        type: raw
        required: true
      value:
        description: Value as a hex string of exactly the map's value size, or an integer (little-endian).
        type: raw
        required: true
  exclusive:
    description:
      - Also remove every other entry (hash maps) or zero it (array maps, whose entries cannot be removed).
    type: bool
    default: false
seealso:
  - module: ebpf.observability.ebpf_program
"""

EXAMPLES = r"""
# tc_classifier's rule table (ebpf_tc_rules fills it from readable classes): raw 8-byte slots.
- name: Two rule slots of the classifier, every other slot zeroed
  ebpf.observability.ebpf_map:
    name: tc_classifier
    map: tc_class_rules
    entries:
      - {key: 0, value: 0}
      - {key: 1, value: "0x0a00000000000000"}
    exclusive: true

- name: Set one 4-byte key to an 8-byte value, leaving the other slots as they are
  ebpf.observability.ebpf_map:
    name: tc_classifier
    map: tc_class_rules
    entries:
      - {key: 2, value: "0x0100000000000000"}
"""

RETURN = r"""
path:
  description: Pin path of the map.
  returned: always
  type: str
  sample: /sys/fs/bpf/ebpf_observability/tc_classifier/maps/tc_class_rules
map:
  description: The map as the kernel reports it.
  returned: always
  type: dict
  contains:
    id:
      description: Kernel map id.
      type: int
    type:
      description: Map type.
      type: str
      sample: array
    key_size:
      description: Key size in bytes.
      type: int
    value_size:
      description: Value size in bytes.
      type: int
    max_entries:
      description: Maximum number of entries.
      type: int
writes:
  description: Number of writes made (or, in check mode, that would be made).
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ebpf.observability.plugins.module_utils.backends.maps import MapBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.module_runner import run_backend


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            map=dict(type="str", required=True),
            entries=dict(type="list", elements="dict", required=True, options=dict(
                key=dict(type="raw", required=True, no_log=False),
                value=dict(type="raw", required=True),
            )),
            exclusive=dict(type="bool", default=False),
            pin_root=dict(type="path", default="/sys/fs/bpf/ebpf_observability"),
        ),
        supports_check_mode=True,
    )

    def action():
        p = module.params
        backend = MapBackend(p["name"], p["map"], p["pin_root"], check_mode=module.check_mode)
        try:
            return backend, backend.apply(p["entries"], exclusive=p["exclusive"])
        finally:
            backend.close()

    run_backend(module, action)


if __name__ == "__main__":
    main()
