# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module of the collection does around its backend: turn BpfError into a
failure that carries the kernel's answer, refuse options of the wrong type (option_types), pass
warnings on, and keep the diff only in diff mode.
A module that changes the host's eBPF state holds the host lock (state/host_lock) for its whole
run, outside check mode."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ebpf.observability.plugins.module_utils.backends import option_types
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bundled_runtime
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.state.host_lock import HostLock


def run_backend(module, action, changes_state=True, types_checked=False, runtime_dir=None):
    """``action()`` returns (backend, result dict); exits the module. With ``changes_state`` (every
    module but ebpf_info) the action runs under the host lock unless in check mode. The options'
    types are checked here unless ``types_checked`` (option_types.check_before_conversion did).
    The collection's copies of what the host lacks (libbpf.so.1, pyroute2) in ``runtime_dir``
    (default: bundled_runtime.default_dir()) are used where they are."""
    if not types_checked:
        option_types.check_module(module)
    bundled_runtime.activate(runtime_dir)
    backend = None
    lock = HostLock(module._name) if changes_state and not module.check_mode else None
    try:
        if lock is not None:
            lock.acquire()
        try:
            backend, result = action()
        finally:
            if lock is not None:
                lock.release()
    except BpfError as e:
        extra = {}
        if e.log:
            extra["verifier_log"] = e.log
        if e.errno:
            extra["errno"] = e.errno
        module.fail_json(msg=str(e), **extra)
    for warning in getattr(backend, "warnings", []):
        module.warn(warning)
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)
