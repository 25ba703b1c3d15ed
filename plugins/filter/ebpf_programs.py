# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the ebpf_programs role: the host plan (module_utils/backends/host_plan.py), the
user's programs as catalogue entries (host_catalog.py) and the status summary (module_utils/backends/host_status.py). Input problems come back as errors
(one sentence each, saying what to change) so the role's preflight can assert on them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ebpf.observability.plugins.module_utils.backends.host_plan import (
    ebpf_programs_device_units, ebpf_programs_plan, ebpf_programs_restore_plan, ebpf_programs_rollback,
    ebpf_programs_stale,
)
from ansible_collections.ebpf.observability.plugins.module_utils.backends.host_catalog import ebpf_programs_user_catalog
from ansible_collections.ebpf.observability.plugins.module_utils.backends.host_status import ebpf_programs_status


class FilterModule:
    """ebpf.observability filters for the ebpf_programs role."""

    def filters(self):
        return {
            "ebpf_programs_plan": ebpf_programs_plan,
            "ebpf_programs_device_units": ebpf_programs_device_units,
            "ebpf_programs_restore_plan": ebpf_programs_restore_plan,
            "ebpf_programs_stale": ebpf_programs_stale,
            "ebpf_programs_rollback": ebpf_programs_rollback,
            "ebpf_programs_status": ebpf_programs_status,
            "ebpf_programs_user_catalog": ebpf_programs_user_catalog,
        }
