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

_KEY = struct.Struct("=I")
_VALUE = struct.Struct("=Q")
_TABLE = struct.Struct("=%dQ" % tc_rules.GEN_SIZE)


class TcRulesBackend(MapBackend):
    """The decisions and kernel writes behind the ebpf_tc_rules module."""

    def __init__(self, name, pin_root, check_mode=False):
        super(TcRulesBackend, self).__init__(name, tc_rules.MAP_NAME, pin_root, check_mode=check_mode)
        layout = (self.info["type_name"], self.info["max_entries"], self.info["value_size"])
        if layout != ("array", tc_rules.MAP_ENTRIES, _VALUE.size):
            raise BpfError(
                "map %s of %s is a %s of %d entries of %d bytes, not the tc_classifier layout (an array of %d of %d)"
                % ((tc_rules.MAP_NAME, name) + layout + (tc_rules.MAP_ENTRIES, _VALUE.size)),
                hint="load the collection's tc_classifier object under this name")

    def active(self):
        """(active generation, its table values as the kernel holds them)."""
        selector = sc.map_lookup(self.fd, _KEY.pack(tc_rules.SELECTOR_INDEX), _VALUE.size)
        generation = _VALUE.unpack(selector)[0] & 1 if selector else 0
        raw = sc.array_lookup_range(self.fd, _VALUE.size, tc_rules.generation_base(generation), tc_rules.GEN_SIZE)
        values = list(_TABLE.unpack_from(raw)) if len(raw) == _TABLE.size else None
        if values is None:
            raise BpfError("map %s (%s) returned %d of the %d values of generation %d" % (
                tc_rules.MAP_NAME, self.path, len(raw) // _VALUE.size, tc_rules.GEN_SIZE, generation))
        return generation, values

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
