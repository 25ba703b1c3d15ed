# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module of the collection does around its backend: turn BpfError into a
failure that carries the kernel's answer, pass warnings on, and keep the diff only in diff mode."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError


def run_backend(module, action):
    """``action()`` returns (backend, result dict); exits the module."""
    backend = None
    try:
        backend, result = action()
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
