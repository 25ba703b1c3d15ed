# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of ebpf_host: ships files by checksum, in at most two module runs.

The first run gets only checksums: of the built objects (``objects_dir/<architecture>/*.bpf.o``,
every architecture, since the host picks its own) and of each entry of ``files`` (its
``content`` or its controller ``src``). A host whose copies all match converges in that run.
When the host lacks some content, the module answers ``needs`` without changing anything, and
the second run sends exactly those files (base64) along with the same arguments. With
``runtime_dir``, the controller's libbpf.so.1 and pyroute2 are offered the same way
(plugin_utils/runtime_offer); a host lacking them asks for them in a run of its own first.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.ebpf.observability.plugins.plugin_utils.runtime_offer import runtime_offer

MODULE = "ebpf.observability.ebpf_host"
OBJECT_SUFFIX = ".bpf.o"


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except (IOError, OSError) as e:
        raise AnsibleActionFail("cannot read %s on the controller: %s" % (path, e.strerror))


class ActionModule(ActionBase):
    """Checksums first; contents only for what the host lacks."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset()

    def _objects(self, objects_dir):
        """({arch: {file: {checksum, key}}}, {key: path}) of the objects on the controller."""
        found, paths = {}, {}
        if not objects_dir or not os.path.isdir(objects_dir):
            return found, paths
        for arch in sorted(os.listdir(objects_dir)):
            directory = os.path.join(objects_dir, arch)
            if not os.path.isdir(directory):
                continue
            for name in sorted(os.listdir(directory)):
                if name.endswith(OBJECT_SUFFIX):
                    key = "objects/%s/%s" % (arch, name)
                    paths[key] = os.path.join(directory, name)
                    found.setdefault(arch, {})[name] = {"checksum": hashlib.sha1(_read(paths[key])).hexdigest(), "key": key}
        return found, paths

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        objects, sources = self._objects(args.get("objects_dir"))
        args["objects"] = objects
        files = []
        for index, spec in enumerate(args.get("files") or []):
            spec = dict(spec)
            if spec.get("content") is not None:
                data = spec.pop("content")
                data = data.encode("utf-8") if not isinstance(data, bytes) else data
            elif spec.get("src"):
                data = _read(spec.pop("src"))
            elif args.get("state") == "absent":
                data = b""  # only its path counts
            else:
                raise AnsibleActionFail("files[%d] (%s) needs content or src" % (index, spec.get("dest")))
            spec["key"] = "files/%d" % index
            spec["checksum"] = hashlib.sha1(data).hexdigest()
            sources[spec["key"]] = data
            files.append(spec)
        args["files"] = files
        if args.get("runtime_dir") and args.get("state", "present") == "present":
            args["runtime"] = runtime_offer(args["runtime_dir"], sources)
        res = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
        contents = {}
        # A host lacking libbpf or pyroute2 asks for them first (it plans with them), then for files.
        for _round in range(2):
            if not res.get("needs") or res.get("failed"):
                break
            for key in res["needs"]:
                if key not in sources or key in contents:
                    raise AnsibleActionFail("the host asked for %s, which this run did not offer" % key)
                data = sources[key]
                data = data if isinstance(data, bytes) else data() if callable(data) else _read(data)
                contents[key] = base64.b64encode(data).decode("ascii")
            args["contents"] = contents
            res = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
            res["shipped"] = sorted(contents)
        if res.get("needs") and not res.get("failed"):
            raise AnsibleActionFail("the host still lacks %s after they were sent" % ", ".join(res["needs"]))
        result.update(res)
        return result
