"""Simulated hosts on this machine for fleet runs of the roles: each host is an inventory entry
with ``ansible_connection: local``, its own veth pair (``<prefix><i>a`` in this namespace, where
its programs attach; its peer in a network namespace of its own), pin root, host lock, and every
directory the programs role writes under one work directory. No traffic leaves the machine (nothing is
sent at all)."""
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

from netns import ip

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SITE = os.path.join(REPO, "playbooks", "site.yml")
DIRS = ("install_dir", "events_dir", "config_dir", "bin_dir", "systemd_dir")


def host_vars(work, prefix, index, tracing):
    """The inventory vars of simulated host ``index``."""
    name = "%s%d" % (prefix, index)
    root = os.path.join(work, name)
    programs = [
        {"name": "xdp_counter", "attach": [{"hook": "xdp", "interface": name + "a", "mode": "skb"}]},
        {"name": "tc_classifier", "rules": [{"name": "dns", "id": 1, "dport": 53}],
         "attach": [{"hook": "tc", "interface": name + "a", "direction": "ingress"}]},
    ]
    if tracing:  # host-wide programs run on every syscall of the machine: on a few hosts only
        programs += [{"name": "syscall_latency"}, {"name": "net_tracepoints"}]
    # A host of its own has a host lock of its own: the interpreter the modules run under names
    # this host's lock file (the lock is host-wide, and these hosts share one kernel).
    os.makedirs(root, exist_ok=True)
    python = os.path.join(root, "python")
    with open(python, "w") as f:
        f.write('#!/bin/sh\nEBPF_OBSERVABILITY_LOCK=%s exec %s "$@"\n' % (os.path.join(root, "host.lock"), sys.executable))
    os.chmod(python, 0o755)
    out = {"ansible_connection": "local", "ansible_python_interpreter": python,
           "ebpf_programs": programs, "ebpf_programs_pin_root": "/sys/fs/bpf/ebpfo_%s" % name,
           "ebpf_programs_python": sys.executable, "ebpf_programs_manage_packages": False}
    for var in DIRS:
        out["ebpf_programs_" + var] = os.path.join(root, var)
        os.makedirs(out["ebpf_programs_" + var], exist_ok=True)
    return name, out


@contextlib.contextmanager
def fleet(count, prefix="ebpfsim", tracing_hosts=2):
    """(inventory path, {host: vars}) of ``count`` simulated hosts; removes everything after."""
    work = tempfile.mkdtemp(prefix=prefix + "-")
    hosts, made = {}, []
    try:
        for index in range(count):
            name, hvars = host_vars(work, prefix, index, index < tracing_hosts)
            ip("netns", "add", name)
            made.append(name)
            ip("link", "add", name + "a", "type", "veth", "peer", "name", name + "b", "netns", name)
            ip("link", "set", name + "a", "up")
            ip("-n", name, "link", "set", name + "b", "up")
            hosts[name] = hvars
        inventory = os.path.join(work, "inventory.json")
        with open(inventory, "w") as f:
            json.dump({"all": {"hosts": hosts}}, f)
        yield inventory, hosts
    finally:
        for name in made:
            subprocess.run(["ip", "link", "del", name + "a"], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        for hvars in hosts.values():
            subprocess.run(["rm", "-rf", "--one-file-system", hvars["ebpf_programs_pin_root"]], check=False)
        shutil.rmtree(work, ignore_errors=True)


def run_site(inventory, forks, build_dir, *options, extra=None):
    """ansible-playbook site.yml over the simulated fleet; the completed process."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "build", "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_HOST_KEY_CHECKING="0")
    variables = dict({"ebpf_site_exporter": False, "ebpf_build_output_dir": build_dir}, **(extra or {}))
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory, "-f", str(forks),
           "-e", json.dumps(variables)] + list(options) + [SITE]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, check=False)
