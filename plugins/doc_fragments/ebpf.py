# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation every module of the collection shares: the pin root and the attributes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):  # pylint: disable=too-few-public-methods

    DOCUMENTATION = r"""
options:
  pin_root:
    description:
      - Directory on bpffs under which M(ebpf.observability.ebpf_program) pins each object in a
        directory of its own.
    type: path
    default: /sys/fs/bpf/ebpf_observability
attributes:
  action_group:
    description: Use C(group/ebpf.observability.ebpf) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - ebpf.observability.ebpf
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: full
"""
