#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ebpf_tc_rules
short_description: Install tc_classifier's traffic classes
version_added: "0.1.0"
description:
  - Compiles an ordered list of traffic classes (first match wins) into the match tables of the
    collection's C(tc_classifier) program and installs them in its pinned C(tc_class_rules) map.
    The running programs use the new classes from the next packet on; nothing is reloaded.
  - The map holds two generations of tables and a selector. The inactive generation is written
    first and the selector switched last, so packets see the old class list or the new one,
    never a mix.
  - Idempotent from the kernel. The tables of the generation in force are read back from the map
    and compared with the compiled list; when they are equal nothing is written.
author:
  - ebpf.observability contributors (@ebpf-observability)
extends_documentation_fragment:
  - ebpf.observability.ebpf
options:
  name:
    description: The O(ebpf.observability.ebpf_program#module:name) the tc_classifier object was loaded under.
    type: str
    default: tc_classifier
  classes:
    description:
      - Traffic classes in match order, at most 64. Packets no class matches count in the
        default class, id 0.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Label of the class in the metrics (required unless O(classes[].id=0)).
        type: str
      id:
        description: Class id, 0 to 255 (0 is the default class). Several classes may share one id and name.
        type: int
        required: true
      proto:
        description: IP protocol, a name (tcp, udp, icmp, icmpv6, sctp, udplite, gre, esp, ah, igmp) or a number.
        type: raw
      dport:
        description: Destination port, C(N), C("lo-hi") or C([lo, hi]) (TCP, UDP, SCTP and UDP-Lite).
        type: raw
      dscp:
        description: DSCP, 0 to 63 or a name (ef, afXY, csN, be, va, le).
        type: raw
attributes:
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
seealso:
  - module: ebpf.observability.ebpf_program
  - module: ebpf.observability.ebpf_map
"""

EXAMPLES = r"""
- name: Classify voice, web and DNS traffic
  ebpf.observability.ebpf_tc_rules:
    classes:
      - {name: voice, id: 1, proto: udp, dport: 10000-20000, dscp: ef}
      - {name: web, id: 2, proto: tcp, dport: [80, 443]}
      - {name: dns, id: 3, dport: 53}
"""

RETURN = r"""
path:
  description: Pin path of the rules map.
  returned: always
  type: str
generation:
  description: The table generation in force after the run (0 or 1).
  returned: always
  type: int
rules:
  description: Number of classes installed.
  returned: always
  type: int
class_names:
  description: Class id to name, the default class included (the C(static_map) of the exporter's C(class) label).
  returned: always
  type: dict
  sample: {"0": default, "1": voice}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ebpf.observability.plugins.module_utils.backends.module_runner import run_backend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.tc_rules import TcRulesBackend


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", default="tc_classifier"),
            classes=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str"),
                id=dict(type="int", required=True),
                proto=dict(type="raw"),
                dport=dict(type="raw"),
                dscp=dict(type="raw"),
            )),
            pin_root=dict(type="path", default="/sys/fs/bpf/ebpf_observability"),
        ),
        supports_check_mode=True,
    )

    def action():
        p = module.params
        classes = [dict((k, v) for k, v in c.items() if v is not None) for c in p["classes"]]
        backend = TcRulesBackend(p["name"], p["pin_root"], check_mode=module.check_mode)
        try:
            return backend, backend.apply_classes(classes)
        finally:
            backend.close()

    run_backend(module, action)


if __name__ == "__main__":
    main()
