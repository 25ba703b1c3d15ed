"""Every option and sub-option of every module, given a value of the wrong type, is a clear error
naming its path, and the host stays exactly as it was (the modules run in-process here, with
arguments that would change the host if the wrong value were accepted)."""
import importlib
import os
import struct
from unittest import mock

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend
from test_program_backend import REPO, tree

MODULES_PKG = "ansible_collections.ebpf.observability.plugins.modules."
MODULES = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "plugins", "modules")) if f.endswith(".py"))
# Values no declared type accepts, per type (Ansible would convert the others' wrong values).
WRONG = {"str": ["a"], "path": {"a": 1}, "int": {"a": 1}, "bool": "maybe", "list": {"a": 1}, "dict": ["a"]}
SAMPLE = {"str": "x", "path": "/nonexistent", "int": 1, "bool": True, "list": [], "dict": {}, "raw": 1}


class ModuleExit(Exception):
    def __init__(self, result):
        super(ModuleExit, self).__init__(result)
        self.result = result


def argument_spec(name):
    """The argument_spec a module hands AnsibleModule."""
    module = importlib.import_module(MODULES_PKG + name)
    captured = {}

    def stub(argument_spec, **_kw):
        captured.update(argument_spec)
        raise ModuleExit(None)
    with mock.patch.object(module, "AnsibleModule", stub), \
            mock.patch.object(module, "check_before_conversion", lambda *_a: None, create=True):  # reads no options
        with pytest.raises(ModuleExit):
            module.main()
    return captured


def run(name, args):
    """The module's result (failed=True on fail_json), run in-process."""
    module = importlib.import_module(MODULES_PKG + name)

    def exit_json(_self, **result):
        raise ModuleExit(dict(result, failed=False))

    def fail_json(_self, msg, **result):
        raise ModuleExit(dict(result, msg=msg, failed=True))
    with patch_module_args(args), mock.patch.object(basic.AnsibleModule, "exit_json", exit_json), \
            mock.patch.object(basic.AnsibleModule, "fail_json", fail_json):
        with pytest.raises(ModuleExit) as caught:
            module.main()
    return caught.value.result


def sample(spec):
    """A value of each required option, of the declared type."""
    return dict((k, SAMPLE[o.get("type", "str")]) for k, o in spec.items() if o.get("required"))


def wrong_cases(spec, base, prefix=""):
    """(path, args): ``base`` with one option or sub-option given a value of the wrong type."""
    for key, opt in sorted(spec.items()):
        kind = opt.get("type", "str")
        if kind in WRONG:
            yield prefix + key, dict(base, **{key: WRONG[kind]})
        subs = opt.get("options")
        if kind == "list" and opt.get("elements") in ("str", "path"):
            yield prefix + key + "[0]", dict(base, **{key: [["a"]]})
        elif subs:
            element = dict(sample(subs), **(base.get(key) or [{}])[0]) if kind == "list" else dict(sample(subs), **(base.get(key) or {}))
            for path, sub_args in wrong_cases(subs, element, prefix + key + ("[0]." if kind == "list" else ".")):
                yield path, dict(base, **{key: [sub_args] if kind == "list" else sub_args})


@pytest.fixture
def host(pin_root, attach_obj, veth_pair, tmp_path, built):
    """Arguments per module that would change this host, and a snapshot of everything they touch."""
    tc = built["tc_classifier"]
    ProgramBackend("tc_classifier", pin_root).present(tc)
    events = str(tmp_path / "events")
    args = {
        "ebpf_program": dict(name="obj", src=tc, pin_root=pin_root),
        "ebpf_attach": dict(name="att", program="xdp_udp", interface=veth_pair.ifname, pin_root=pin_root, events_dir=events),
        "ebpf_map": dict(name="att", map="packets", entries=[{"key": 1, "value": 7}], pin_root=pin_root),
        "ebpf_tc_rules": dict(name="tc_classifier", classes=[{"name": "dns", "id": 1, "dport": 53}], pin_root=pin_root),
        "ebpf_info": dict(pin_root=pin_root),
        "ebpf_host": dict(kernel=False, files=[{"dest": str(tmp_path / "f"), "content": "x"}], pin_root=pin_root,
                          events_dir=events, config_dir=str(tmp_path / "etc"), install_dir=str(tmp_path / "lib")),
    }

    def snapshot():
        with Netlink() as nl, sc.obj_get(attach_obj["pin_dir"] + "/maps/packets") as fd:
            return (tree(pin_root), sorted(os.listdir(str(tmp_path))), nl.xdp_query(nl.ifindex(veth_pair.ifname)),
                    sc.map_lookup(fd, struct.pack("<I", 1), 8))
    return args, snapshot


def test_every_module_is_covered(host):
    assert sorted(host[0]) == MODULES


@pytest.mark.parametrize("name", MODULES)
def test_a_wrong_type_at_any_depth_is_a_clear_error_and_changes_nothing(host, name):
    args, snapshot = host
    before = snapshot()
    cases = list(wrong_cases(argument_spec(name), args[name]))
    assert cases
    for path, case in cases:
        res = run(name, case)
        assert res["failed"], (path, res)
        leaf = path.rsplit(".", 1)[-1].split("[")[0]
        assert leaf in res["msg"], (path, res["msg"])
        assert snapshot() == before, path


def test_a_list_given_for_a_name_names_its_path(host):
    args, snapshot = host
    before = snapshot()
    res = run("ebpf_tc_rules", dict(args["ebpf_tc_rules"], classes=[{"name": ["a"], "id": 1}]))
    assert res["failed"] and "classes[0].name must be a string, not a list (['a'])" in res["msg"]
    assert snapshot() == before
