# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bpf(2) system call through ctypes, without libbpf, as one namespace.

Used where a call must be fast (map reads for exporters) or must work on a host without
libbpf: object pins, ids, object info, map element access, small programs for feature
probes and tests, links. Callers import this module (``bpf_syscall as sc``); the code lives in

* bpf_call: the syscall entry point, BpfFd, errors;
* bpf_consts: the UAPI constants and their names (bpf_structs holds the layouts);
* bpf_objects: pins, ids, object info, telling fds apart;
* bpf_maps: map creation and element access, single and batched;
* bpf_progs: small programs, test runs, statistics, links, program queries.

Every function that returns a file descriptor returns a BpfFd; every function that takes one
accepts a BpfFd or a plain int. Every kernel failure raises BpfError.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# pylint: disable=wildcard-import,unused-wildcard-import
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_call import *  # noqa: F401,F403
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_consts import *  # noqa: F401,F403
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_objects import *  # noqa: F401,F403
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_maps import *  # noqa: F401,F403
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_progs import *  # noqa: F401,F403
