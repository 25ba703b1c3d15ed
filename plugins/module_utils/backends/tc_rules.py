# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install a tc_classifier class list into its pinned rules map, deciding from the kernel:
the rules in force are the active generation's tables, read back from the map."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.backends import tc_rules_encoding as tc_rules
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.backends.maps import MapBackend

_VALUE = struct.Struct("=Q")


class TcRulesBackend(MapBackend):
    """The decisions and kernel writes behind the ebpf_tc_rules module."""

    def __init__(self, name, pin_root, check_mode=False):
        super(TcRulesBackend, self).__init__(name, tc_rules.MAP_NAME, pin_root, check_mode=check_mode)
        if (self.info["max_entries"], self.info["value_size"]) != (tc_rules.MAP_ENTRIES, _VALUE.size):
            raise BpfError("map %s of %s has %d entries of %d bytes, not the tc_classifier layout (%d of %d)" % (
                tc_rules.MAP_NAME, name, self.info["max_entries"], self.info["value_size"],
                tc_rules.MAP_ENTRIES, _VALUE.size),
                hint="load the collection's tc_classifier object under this name")

    def active(self):
        """(active generation, its table values as the kernel holds them)."""
        entries = sc.map_lookup_batch(self.fd, self.info["key_size"], self.info["value_size"], self.info["max_entries"])
        values = [0] * tc_rules.MAP_ENTRIES
        for key, value in entries:
            values[struct.unpack("=I", key)[0]] = _VALUE.unpack(value)[0]
        generation = values[tc_rules.SELECTOR_INDEX] & 1
        base = tc_rules.generation_base(generation)
        return generation, values[base:base + tc_rules.GEN_SIZE]

    def apply_classes(self, classes):
        wanted = tc_rules.compile_tables(tc_rules.parse_rules(classes))
        generation, in_force = self.active()
        changed = wanted != in_force
        if changed and not self.check_mode:
            items, selector = tc_rules.update_plan(classes, generation)
            sc.map_update_batch(self.fd, items)
            sc.map_update(self.fd, selector[0], selector[1])
            generation ^= 1
        return {
            "changed": changed,
            "path": self.path,
            "generation": generation,
            "class_names": tc_rules.class_names(classes),
            "rules": len(tc_rules.parse_rules(classes)),
        }
