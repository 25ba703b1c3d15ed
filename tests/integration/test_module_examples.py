"""Every module's EXAMPLES block, run as written through ansible-playbook against localhost and
the collection's own objects (bpf/), inside a network namespace of the test's own whose veth is
called eth0 as in the examples. What the test supplies around them: the objects the examples
name loaded first, the built objects where the examples say /usr/local/lib/ebpf_observability,
and module_defaults sending every path into the test's pin root and a temporary directory (set
for the action group, group/ebpf.observability.ebpf). Each example task must succeed, and its
result must hold what RETURN says is always returned, with the type RETURN states."""
import ast
import json
import os
import platform
import shutil
import tempfile

import pytest
import yaml

from bpf_objects import build_product_objects
from netns import veth_netns_pair
from test_playbooks import REPO, run_playbook

INSTALL_DIR = "/usr/local/lib/ebpf_observability/"
# The objects each module's examples expect loaded (under their object's name).
PRELOAD = {
    "ebpf_attach": ["xdp_counter", "tc_classifier", "net_tracepoints", "syscall_latency"],
    "ebpf_info": ["syscall_latency", "kprobe_syscall_latency"],
    "ebpf_map": ["tc_classifier"],
    "ebpf_tc_rules": ["tc_classifier"],
    "ebpf_program": [],
    "ebpf_host": [],
}
TYPES = {"str": str, "int": int, "bool": bool, "list": list, "dict": dict, "float": (int, float)}


def returned_always(spec):
    return dict((key, doc) for key, doc in spec.items() if doc.get("returned") == "always")


def module_docs(module):
    """(EXAMPLES as a task list, RETURN as a dict) of plugins/modules/<module>.py."""
    with open(os.path.join(REPO, "plugins", "modules", module + ".py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    docs = dict((node.targets[0].id, node.value.value) for node in tree.body
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in ("EXAMPLES", "RETURN"))
    return yaml.safe_load(docs["EXAMPLES"]), yaml.safe_load(docs["RETURN"]) or {}


def _with_objects(value, objects_dir):
    """The examples' object paths (the role's install directory) pointed at the built objects."""
    if isinstance(value, str):
        return value.replace(INSTALL_DIR, objects_dir + "/")
    if isinstance(value, list):
        return [_with_objects(v, objects_dir) for v in value]
    if isinstance(value, dict):
        return dict((k, _with_objects(v, objects_dir)) for k, v in value.items())
    return value


def examples_play(module, work, pin_root, objects):
    """The play around the module's examples, its results written to <work>/<module>.json."""
    tasks, _return = module_docs(module)
    objects_dir = os.path.dirname(objects["xdp_counter"])
    registers = []
    for index, task in enumerate(tasks):
        task.setdefault("register", "example_%d" % index)
        registers.append(task["register"])
    with open(os.path.join(REPO, "roles", "ebpf_programs", "vars", "main.yml"), encoding="utf-8") as f:
        catalog = yaml.safe_load(f)["_ebpf_programs_builtin"]
    by_arch = os.path.join(work, module, "objects")
    os.makedirs(by_arch)
    os.symlink(objects_dir, os.path.join(by_arch, platform.machine()))
    return {
        "name": "The EXAMPLES of " + module,
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {"_ebpf_programs_catalog": catalog, "ebpf_build_objects_dir": by_arch},
        "module_defaults": {
            "group/ebpf.observability.ebpf": {"pin_root": os.path.join(pin_root, module)},
            "ebpf.observability.ebpf_attach": {"events_dir": os.path.join(work, module, "events")},
            "ebpf.observability.ebpf_host": dict((option, os.path.join(work, module, option))
                                                 for option in ("install_dir", "config_dir", "events_dir")),
        },
        "tasks": [{
            "name": "Load the objects the examples name",
            "ebpf.observability.ebpf_program": {"name": "{{ item }}", "src": objects_dir + "/{{ item }}.bpf.o"},
            "loop": PRELOAD[module],
        }] + _with_objects(tasks, objects_dir) + [{
            "name": "Record the examples' results",
            "ansible.builtin.copy": {
                "dest": os.path.join(work, module + ".json"),
                "content": "{{ [%s] | to_json }}" % ", ".join(registers),
                "mode": "0644",
            },
        }],
    }


@pytest.mark.playbook
def test_examples_run_as_written(pin_root):
    """One playbook, a play per module (each under a pin root and directory of its own)."""
    objects = build_product_objects()
    work = tempfile.mkdtemp(prefix="rel-examples-")
    results = {}
    try:
        plays = [examples_play(module, work, pin_root, objects) for module in sorted(PRELOAD)]
        playbook = os.path.join(work, "examples.yml")
        with open(playbook, "w", encoding="utf-8") as f:
            yaml.safe_dump(plays, f, sort_keys=False)
        with veth_netns_pair("rel-ex", ifnames=("eth0", "eth1"), addresses=True):
            out, _outcomes = run_playbook(playbook, {})
        assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
        for module in PRELOAD:
            with open(os.path.join(work, module + ".json"), encoding="utf-8") as f:
                results[module] = json.load(f)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for module in sorted(PRELOAD):
        tasks, spec = module_docs(module)
        assert len(results[module]) == len(tasks)
        for task, result in zip(tasks, results[module]):
            assert not result.get("failed") and not result.get("skipped"), (module, task["name"], result)
            if list(task)[1] != "ebpf.observability." + module:
                continue  # an example showing another module with this one's result
            for key, doc in returned_always(spec).items():
                assert key in result, "%s: %s: RETURN says %s is always returned" % (module, task["name"], key)
                assert isinstance(result[key], TYPES[doc["type"]]), (module, key, result[key])


@pytest.mark.parametrize("module", sorted(PRELOAD))
def test_return_samples_have_their_type(module):
    """A RETURN sample is a value of the type the entry states (contained entries too)."""
    def walk(spec, where):
        for key, doc in spec.items():
            if "sample" in doc:
                sample = doc["sample"]
                if doc["type"] == "list" and "elements" in doc and not isinstance(sample, list):
                    sample = [sample]
                assert isinstance(sample, TYPES[doc["type"]]), (where + key, sample)
            walk(doc.get("contains") or {}, where + key + ".")
    walk(module_docs(module)[1], module + ": ")
