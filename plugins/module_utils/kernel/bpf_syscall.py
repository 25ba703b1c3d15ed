# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bpf(2) system call, through libbpf's low-level bpf_* wrappers where libbpf 1.1 has the
call and its options and through ctypes otherwise, as one namespace.

Object pins, ids, object info, map element access (fast enough for the exporter's map reads),
small programs for feature probes and tests, links. Callers import this module
(``bpf_syscall as sc``); the code lives in

* bpf_call: BpfFd, errors, the raw syscall entry point;
* bpf_consts: the UAPI constants and their names (bpf_structs holds the layouts and libbpf's
  option structs);
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
