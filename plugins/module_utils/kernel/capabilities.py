# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Process capabilities, so a missing privilege is reported before the kernel refuses."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError, PermissionHint

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39


def effective(status_path="/proc/self/status"):
    """The effective capability mask of this process (from the kernel's CapEff)."""
    with open(status_path) as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def has(cap, mask=None):
    mask = effective() if mask is None else mask
    return bool(mask & (1 << cap))


def require_bpf(mask=None):
    """CAP_BPF (5.8+) or CAP_SYS_ADMIN is needed to load and pin programs."""
    mask = effective() if mask is None else mask
    if not (has(CAP_BPF, mask) or has(CAP_SYS_ADMIN, mask)):
        raise BpfError("this process may not use bpf(): it lacks CAP_BPF and CAP_SYS_ADMIN",
                       hint=PermissionHint.TEXT + " (with Ansible: become: true)")
