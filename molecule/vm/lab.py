"""A lab of qemu VMs (TCG) booted from the cached guest image, one kernel per VM.

    python3 molecule/vm/lab.py up   --dir DIR --vm NAME:SUITE[:USERLAND] [--vm ...]
    python3 molecule/vm/lab.py down --dir DIR
    python3 molecule/vm/lab.py wait --dir DIR NAME [--after-boot BOOT_ID]

`up` boots the VMs in parallel (each on its own qcow2 overlay of the cached image, SSH forwarded
from 127.0.0.1), waits until each prints its readiness marker on the serial console and prints
the instances as JSON (instance, address, user, port, identity_file, suite, kernel, boot_id).
`down` stops only the qemu processes named by the pidfiles in DIR and removes what `up` made.
`wait` power-cycles a VM that printed the kernel's "reboot: machine restart" and then nothing for
STALL_SECONDS: qemu's reset under TCG occasionally leaves the guest silent, and a fresh start of the
same VM (same overlay, port and kernel) is the boot the caller waits for; the result says so.
SUITE is a key of kernels.SUITES (bookworm: 6.1, trixie: 6.12, bullseye: 5.10). DIR holds the lab's SSH key,
overlays, serial logs, pidfiles and lab.json.
"""
import argparse
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import image
import kernels

MAX_VMS = 2  # one emulated CPU each on a 2-core host
READY = re.compile(rb"EBPF-LAB-READY boot=([0-9a-f]{32})")
BOOT_TIMEOUT = float(os.environ.get("EBPF_LAB_BOOT_TIMEOUT", "240"))
STALL_SECONDS = float(os.environ.get("EBPF_LAB_STALL_SECONDS", "60"))
RESTART = b"reboot: machine restart"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ssh_key(lab_dir):
    key = os.path.join(lab_dir, "id_ed25519")
    if not os.path.exists(key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ebpf-lab", "-f", key], check=True)
    with open(key + ".pub") as f:
        return key, f.read().strip()


def _paths(lab_dir, name):
    return {ext: os.path.join(lab_dir, "%s.%s" % (name, ext)) for ext in ("qcow2", "serial", "pid", "argv")}


def _qemu_argv(name, kernel, paths, port, public_key):
    cmdline = " ".join([
        "root=/dev/nvme0n1", "rw", "console=ttyS0", "net.ifnames=0", "systemd.hostname=" + name,
        # systemd's tmpfiles provision.conf writes /root/.ssh/authorized_keys from this credential;
        # where systemd predates it (Debian 11), the image's ebpf-lab-key.service from the second.
        '"systemd.set_credential=ssh.authorized_keys.root:%s"' % public_key,
        "ebpf_lab.authorized_key=" + base64.b64encode(public_key.encode()).decode(),
    ])
    return [
        "qemu-system-x86_64", "-name", name, "-nodefaults",
        # qemu64, not max: TCG emulates the vector extensions max offers, which the guests' libc
        # and Python then use; Python-heavy work (each Ansible task) ran 9-12 % faster.
        "-accel", "tcg,thread=multi", "-cpu", os.environ.get("EBPF_LAB_CPU", "qemu64"), "-smp", "1", "-m", "1024",
        "-kernel", kernel["vmlinuz"], "-append", cmdline,
        "-drive", "file=%s,if=none,id=root,format=qcow2,discard=unmap" % paths["qcow2"],
        "-device", "nvme,serial=lab-root,drive=root",
        # restrict=on: the guest reaches nothing outside; only the SSH forward comes in.
        "-netdev", "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22" % port,
        "-device", "virtio-net-pci,netdev=net0",
        "-display", "none", "-monitor", "none", "-serial", "file:" + paths["serial"],
        "-pidfile", paths["pid"], "-daemonize",
    ]


def _boot(lab_dir, manifest, name, suite, userland, public_key):
    kernel = manifest["kernels"][suite]
    if suite not in manifest["userland_kernels"][userland]:
        raise RuntimeError("the %s image holds no modules of %s's kernel" % (userland, suite))
    paths = _paths(lab_dir, name)
    for path in paths.values():
        if os.path.exists(path):
            os.unlink(path)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", manifest["images"][userland],
                    paths["qcow2"]], check=True)
    for _attempt in range(3):
        port = _free_port()
        started = time.monotonic()
        argv = _qemu_argv(name, kernel, paths, port, public_key)
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode == 0:
            with open(paths["argv"], "w") as f:
                json.dump(argv, f)  # what a power cycle starts again
            return {"instance": name, "suite": suite, "userland": userland, "kernel": kernel["release"], "port": port,
                    "started": started}
        if "host forwarding" not in result.stderr:
            break
    raise RuntimeError("qemu for %s failed: %s" % (name, result.stderr.strip()))


def _pid(lab_dir, name):
    """The pid of the lab's qemu for `name`, or None when it is not running (a pid reused by an
    unrelated process is not ours: its command line must name our pidfile)."""
    pidfile = _paths(lab_dir, name)["pid"]
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if pidfile.encode() in argv else None


def _stop(lab_dir, name, sig):
    """Sends `sig` to the VM's qemu and waits up to 10 s for it to end; True when none runs."""
    pid = _pid(lab_dir, name)
    if pid:
        os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while _pid(lab_dir, name) and time.monotonic() < deadline:
            time.sleep(0.1)
    return _pid(lab_dir, name) is None


def _markers(lab_dir, name):
    try:
        with open(_paths(lab_dir, name)["serial"], "rb") as f:
            return [m.decode() for m in READY.findall(f.read())]
    except FileNotFoundError:
        return []


def _stalled_restart(lab_dir, name, since):
    """The VM printed "reboot: machine restart" as the last thing on its console, and nothing for
    STALL_SECONDS (and at least since the monotonic time `since`)."""
    path = _paths(lab_dir, name)["serial"]
    try:
        quiet = time.time() - os.stat(path).st_mtime
        with open(path, "rb") as f:
            f.seek(max(0, os.stat(path).st_size - 4096))
            tail = f.read().rstrip()
    except OSError:
        return False
    return tail.endswith(RESTART) and quiet > STALL_SECONDS and time.monotonic() - since > STALL_SECONDS


def power_cycle(lab_dir, name):
    """Stops the VM's qemu and starts it again with the same command line (overlay, port, kernel)."""
    paths = _paths(lab_dir, name)
    with open(paths["argv"]) as f:
        argv = json.load(f)
    _stop(lab_dir, name, signal.SIGKILL)
    subprocess.run(argv, check=True, capture_output=True)


def wait_ready(lab_dir, name, after_boot=None, timeout=BOOT_TIMEOUT, result=None):
    """Waits for the readiness marker of a boot other than `after_boot`; returns its boot id. After
    a reboot (`after_boot` given), a VM silent after its restart is power-cycled once (`result`,
    a dict, gets power_cycled: true)."""
    start = time.monotonic()
    deadline = start + timeout
    cycled = False
    while time.monotonic() < deadline:
        boots = [boot for boot in _markers(lab_dir, name) if boot != after_boot]
        if boots:
            return boots[-1]
        if _pid(lab_dir, name) is None:
            break
        if after_boot and not cycled and _stalled_restart(lab_dir, name, start):
            power_cycle(lab_dir, name)
            cycled = True
            deadline = time.monotonic() + timeout
            if result is not None:
                result["power_cycled"] = True
            sys.stderr.write("%s printed nothing for %d s after restarting: power-cycled\n" % (name, STALL_SECONDS))
        time.sleep(0.5)
    with open(_paths(lab_dir, name)["serial"], "rb") as f:
        tail = f.read()[-3000:].decode(errors="replace")
    state = "still running" if _pid(lab_dir, name) else "not running"
    raise RuntimeError("VM %s printed no readiness marker within %d s (qemu %s); serial console tail:\n%s"
                       % (name, timeout, state, tail))


def up(lab_dir, vms):
    """Boots `vms` ([(name, kernel suite, userland)]) and waits until each accepts SSH; returns the instances."""
    if len(vms) > MAX_VMS:
        raise ValueError("at most %d VMs at once on this host, got %d" % (MAX_VMS, len(vms)))
    lab_dir = os.path.abspath(lab_dir)
    os.makedirs(lab_dir, exist_ok=True)
    running = [name for name, _suite, _userland in vms if _pid(lab_dir, name)]
    if running:
        raise RuntimeError("VMs %s already run from %s: run `down` first" % (", ".join(running), lab_dir))
    manifest = image.ensure_image()
    key, public_key = _ssh_key(lab_dir)
    instances = []
    try:
        for name, suite, userland in vms:
            instances.append(_boot(lab_dir, manifest, name, suite, userland, public_key))
        for instance in instances:
            instance["boot_id"] = wait_ready(lab_dir, instance["instance"])
            instance["boot_seconds"] = round(time.monotonic() - instance.pop("started"), 1)
            instance.update(address="127.0.0.1", user="root", identity_file=key)
    except BaseException:
        down(lab_dir)
        raise
    with open(os.path.join(lab_dir, "lab.json"), "w") as f:
        json.dump(instances, f, indent=2)
    return instances


def down(lab_dir):
    """Stops the qemu processes this lab directory started and removes their files."""
    lab_dir = os.path.abspath(lab_dir)
    if not os.path.isdir(lab_dir):
        return []
    names = sorted(name[:-len(".qcow2")] for name in os.listdir(lab_dir) if name.endswith(".qcow2"))
    names += sorted(name[:-len(".pid")] for name in os.listdir(lab_dir)
                    if name.endswith(".pid") and name[:-len(".pid")] not in names)
    for name in names:
        if not _stop(lab_dir, name, signal.SIGTERM):
            _stop(lab_dir, name, signal.SIGKILL)
        for path in _paths(lab_dir, name).values():
            if os.path.exists(path):
                os.unlink(path)
    lab_json = os.path.join(lab_dir, "lab.json")
    if os.path.exists(lab_json):
        os.unlink(lab_json)
    return names


def _vm(spec):
    """NAME:SUITE[:USERLAND]: the kernel of SUITE under the USERLAND image (default bookworm)."""
    name, _sep, rest = spec.partition(":")
    suite, _sep, userland = rest.partition(":")
    userland = userland or image.SUITE
    if suite not in kernels.SUITES or userland not in image.USERLANDS or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise argparse.ArgumentTypeError("expected NAME:SUITE[:USERLAND] with SUITE one of %s and USERLAND one of %s, "
                                         "got %r" % (", ".join(kernels.SUITES), ", ".join(image.USERLANDS), spec))
    return name, suite, userland


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="boot VMs and wait until they accept SSH")
    p_up.add_argument("--dir", required=True)
    p_up.add_argument("--vm", type=_vm, action="append", required=True, metavar="NAME:SUITE[:USERLAND]")
    p_down = sub.add_parser("down", help="stop the lab's VMs and remove their files")
    p_down.add_argument("--dir", required=True)
    p_wait = sub.add_parser("wait", help="wait for a VM's next readiness marker (after a reboot)")
    p_wait.add_argument("--dir", required=True)
    p_wait.add_argument("--after-boot", help="boot id to skip: the boot before the reboot")
    p_wait.add_argument("name")
    args = parser.parse_args()
    if args.command == "up":
        json.dump(up(args.dir, args.vm), sys.stdout, indent=2)
    elif args.command == "down":
        json.dump(down(args.dir), sys.stdout)
    else:
        result = {}
        result["boot_id"] = wait_ready(os.path.abspath(args.dir), args.name, args.after_boot, result=result)
        json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
