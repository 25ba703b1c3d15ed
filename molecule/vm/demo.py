"""The demo lab: two VMs (6.1 and 6.12 kernels) that `make demo` deploys to, and their inventory.

    python3 molecule/vm/demo.py up   [--dir build/lab]   boot the VMs unless they run, write DIR/inventory.yml
    python3 molecule/vm/demo.py down [--dir build/lab]   stop them, remove the inventory

The inventory is inventory/demo.yml (next to this file: the programs to deploy and the
settings, one group per kernel suite) with each VM added to its suite's group, with how to
reach it over SSH. `up` prints the inventory's path.
"""
import argparse
import json
import os
import sys

import yaml

import lab

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SKELETON = os.path.join(HERE, "inventory", "demo.yml")
VMS = [("lab-61", "bookworm", "bookworm"), ("lab-612", "trixie", "bookworm")]  # name, kernel suite, userland
SSH_OPTIONS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"


def _running(lab_dir):
    """The lab's instances (lab.json) when every VM of the demo runs, else None."""
    try:
        with open(os.path.join(lab_dir, "lab.json")) as f:
            instances = json.load(f)
    except FileNotFoundError:
        return None
    names = sorted(i["instance"] for i in instances)
    if names != sorted(name for name, _suite, _userland in VMS) or not all(lab._pid(lab_dir, name) for name in names):  # pylint: disable=protected-access
        return None
    return instances


def inventory(instances):
    """The skeleton with every instance in the group of its suite."""
    with open(SKELETON) as f:
        inv = yaml.safe_load(f)
    children = inv["all"]["children"]
    for instance in instances:
        group = children[instance["suite"]] = children.get(instance["suite"]) or {}
        group.setdefault("hosts", {})[instance["instance"]] = {
            "ansible_host": instance["address"],
            "ansible_port": instance["port"],
            "ansible_user": instance["user"],
            "ansible_ssh_private_key_file": instance["identity_file"],
            "ansible_ssh_common_args": SSH_OPTIONS,
            "demo_kernel": instance["kernel"],
        }
    return inv


def up(lab_dir):
    instances = _running(lab_dir)
    if instances is None:
        lab.down(lab_dir)  # whatever is left of an earlier lab
        instances = lab.up(lab_dir, VMS)
    path = os.path.join(lab_dir, "inventory.yml")
    with open(path + ".tmp", "w") as f:
        f.write("# Written by molecule/vm/demo.py from molecule/vm/inventory/demo.yml: the demo lab's VMs.\n")
        yaml.safe_dump(inventory(instances), f, default_flow_style=False, sort_keys=False)
    os.replace(path + ".tmp", path)
    return path


def down(lab_dir):
    stopped = lab.down(lab_dir)
    path = os.path.join(lab_dir, "inventory.yml")
    if os.path.exists(path):
        os.unlink(path)
    return stopped


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--dir", default=os.path.join(REPO, "build", "lab"))
    args = parser.parse_args()
    lab_dir = os.path.abspath(args.dir)
    if args.command == "up":
        print(up(lab_dir))
    else:
        json.dump(down(lab_dir), sys.stdout)
        print()


if __name__ == "__main__":
    main()
