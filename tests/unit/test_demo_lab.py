"""The demo lab's inventory (molecule/vm/demo.py): each VM in the group of its kernel suite with
how to reach it, and a declaration of programs the ebpf_programs role knows."""
import os
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "molecule", "vm"))

import demo  # noqa: E402  pylint: disable=wrong-import-position

INSTANCES = [
    {"instance": "lab-61", "suite": "bookworm", "kernel": "6.1.0-57-cloud-amd64", "address": "127.0.0.1",
     "port": 40001, "user": "root", "identity_file": "/lab/id_ed25519", "boot_id": "a" * 32},
    {"instance": "lab-612", "suite": "trixie", "kernel": "6.12.118+deb13-cloud-amd64", "address": "127.0.0.1",
     "port": 40002, "user": "root", "identity_file": "/lab/id_ed25519", "boot_id": "b" * 32},
]


def test_each_vm_is_in_its_suite_group_with_how_to_reach_it():
    inv = demo.inventory(INSTANCES)
    children = inv["all"]["children"]
    assert sorted(children) == ["bookworm", "trixie"]
    assert list(children["bookworm"]["hosts"]) == ["lab-61"]
    assert list(children["trixie"]["hosts"]) == ["lab-612"]
    host = children["trixie"]["hosts"]["lab-612"]
    assert (host["ansible_host"], host["ansible_port"], host["ansible_user"]) == ("127.0.0.1", 40002, "root")
    assert host["ansible_ssh_private_key_file"] == "/lab/id_ed25519"
    assert host["demo_kernel"] == "6.12.118+deb13-cloud-amd64"
    assert "StrictHostKeyChecking=no" in host["ansible_ssh_common_args"]


def test_the_demo_declares_programs_the_role_knows():
    with open(demo.SKELETON) as f:
        declared = yaml.safe_load(f)["all"]["vars"]["ebpf_programs"]
    with open(os.path.join(REPO, "roles", "ebpf_programs", "vars", "main.yml")) as f:
        catalog = yaml.safe_load(f)["_ebpf_programs_builtin"]
    assert sorted(p["name"] for p in declared) == sorted(catalog)
    assert len(demo.VMS) == 2 and sorted(suite for _name, suite, _userland in demo.VMS) == ["bookworm", "trixie"]


def test_the_demo_vms_are_what_lab_up_takes():
    """lab.up takes (name, kernel suite, userland), as `lab.py up --vm NAME:SUITE:USERLAND` parses them."""
    import lab  # pylint: disable=import-outside-toplevel
    for vm in demo.VMS:
        assert lab._vm(":".join(vm)) == vm  # pylint: disable=protected-access
