"""The lab's guest images: Debian root file systems (qcow2) holding the modules of the lab
kernels they boot, plus each kernel's vmlinuz, cached outside the repository. The bookworm
userland boots every lab kernel; the bullseye (Debian 11) userland boots Linux 5.10, as a
Debian 11 host runs it: python 3.9, pyroute2 0.5, no libbpf 1.x, no libxdp.

The cache entry is keyed by a hash of the recipe (this file, kernels.py and everything under
guest/), so a changed recipe rebuilds automatically and an unchanged one is found in
milliseconds. Usage (root): python3 molecule/vm/image.py [--rebuild]; prints the manifest.
"""
import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import kernels

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST = os.path.join(HERE, "guest")
CACHE = os.environ.get("EBPF_LAB_CACHE", "/var/cache/ebpf-observability-lab")
SUITE = "bookworm"
# Each userland: its package list (under guest/) and the suites whose kernels it boots.
USERLANDS = {"bookworm": {"packages": "packages.txt", "kernels": list(kernels.SUITES)},
             "bullseye": {"packages": "packages-bullseye.txt", "kernels": ["bullseye"]}}
DISK_SIZE = "3G"
# Units that would spend the guests' emulated CPU on what the lab never uses, or try to reach
# outside (the guests have no network beyond the lab host anyway); masked in the image.
MASKED_UNITS = ["apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service",
                "fstrim.timer", "getty@tty1.service", "serial-getty@ttyS0.service", "systemd-binfmt.service",
                "proc-sys-fs-binfmt_misc.automount", "modprobe@dm_mod.service", "modprobe@drm.service",
                "modprobe@efi_pstore.service", "modprobe@fuse.service"]
ENABLED_UNITS = ["ebpf-lab-net.service", "ebpf-lab-ready.service", "ebpf-lab-key.service"]


def _recipe_files():
    files = [os.path.join(HERE, "image.py"), os.path.join(HERE, "kernels.py")]
    for root, dirs, names in os.walk(GUEST):
        dirs.sort()
        files += [os.path.join(root, name) for name in sorted(names)]
    return files


def recipe_key():
    """A short hash of the recipe's file names and contents."""
    digest = hashlib.sha256()
    for path in _recipe_files():
        digest.update(os.path.relpath(path, HERE).encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(f.read() + b"\0")
    return digest.hexdigest()[:16]


def guest_packages(userland=SUITE):
    with open(os.path.join(GUEST, USERLANDS[userland]["packages"])) as f:
        return [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]


def _run(*argv, **kwargs):
    subprocess.run(list(argv), check=True, **kwargs)


def _debootstrap(rootfs, userland):
    debs = os.path.join(CACHE, "debs")
    os.makedirs(debs, exist_ok=True)
    _run("debootstrap", "--variant=minbase", "--merged-usr", "--include=" + ",".join(guest_packages(userland)),
         "--cache-dir=" + debs, userland, rootfs, kernels.MIRROR, stdout=subprocess.DEVNULL)


def _fetch_kernel(build, suite):
    """Unpacks a kernel beside the images and copies its vmlinuz there. Returns the kernel's
    manifest entry ("unpacked": its modules directory, until the images are made)."""
    kernel = kernels.fetch(suite, os.path.join(CACHE, "apt"), os.path.join(build, "kernel-" + suite))
    vmlinuz = os.path.join(build, "vmlinuz-" + suite)
    shutil.copy(kernel["vmlinuz"], vmlinuz)
    return dict(kernel, vmlinuz=vmlinuz, unpacked=kernel["modules"],
                modules=os.path.join("/usr/lib/modules", kernel["release"]))


def _add_modules(rootfs, kernel):
    """A kernel's modules into an image (depmod run by the guest's own kmod)."""
    shutil.copytree(kernel["unpacked"], os.path.join(rootfs, "usr", "lib", "modules", kernel["release"]), symlinks=True)
    _run("chroot", rootfs, "depmod", "-a", kernel["release"])


def _configure(rootfs):
    shutil.copytree(os.path.join(GUEST, "rootfs"), rootfs, dirs_exist_ok=True)
    _run("chroot", rootfs, "systemctl", "enable", "--quiet", *ENABLED_UNITS)
    _run("chroot", rootfs, "systemctl", "mask", "--quiet", *MASKED_UNITS)
    with open(os.path.join(rootfs, "etc", "hostname"), "w") as f:
        f.write("ebpf-lab\n")
    with open(os.path.join(rootfs, "etc", "hosts"), "w") as f:
        f.write("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    # An empty machine-id: every clone generates its own at first boot.
    open(os.path.join(rootfs, "etc", "machine-id"), "w").close()
    dbus_id = os.path.join(rootfs, "var", "lib", "dbus", "machine-id")
    if os.path.lexists(dbus_id):
        os.unlink(dbus_id)
    for cache in ("var/cache/apt", "var/lib/apt/lists"):
        for name in os.listdir(os.path.join(rootfs, cache)):
            path = os.path.join(rootfs, cache, name)
            if os.path.isfile(path):
                os.unlink(path)


def _disk(rootfs, build, userland):
    raw = os.path.join(build, "rootfs.raw")
    _run("truncate", "-s", DISK_SIZE, raw)
    _run("mkfs.ext4", "-q", "-F", "-L", "ebpf-lab", "-d", rootfs, raw)
    image = os.path.join(build, "rootfs.qcow2" if userland == SUITE else "rootfs-%s.qcow2" % userland)
    _run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, image)
    os.unlink(raw)
    return image


def _build(key, dest):
    started = time.monotonic()
    build = dest + ".build"
    shutil.rmtree(build, ignore_errors=True)
    os.makedirs(build)
    kernels_built = {suite: _fetch_kernel(build, suite) for suite in kernels.SUITES}
    images = {}
    for userland, spec in USERLANDS.items():
        rootfs = os.path.join(build, "rootfs-" + userland)
        _debootstrap(rootfs, userland)
        for suite in spec["kernels"]:
            _add_modules(rootfs, kernels_built[suite])
        _configure(rootfs)
        images[userland] = _disk(rootfs, build, userland).replace(build, dest)
        shutil.rmtree(rootfs)
    for suite in kernels.SUITES:
        shutil.rmtree(os.path.join(build, "kernel-" + suite))
        del kernels_built[suite]["unpacked"]
    manifest = {"recipe": key, "image": images[SUITE], "suite": SUITE, "images": images,
                "userland_kernels": {userland: spec["kernels"] for userland, spec in USERLANDS.items()},
                "kernels": {suite: dict(k, vmlinuz=k["vmlinuz"].replace(build, dest))
                            for suite, k in kernels_built.items()},
                "packages": {userland: guest_packages(userland) for userland in USERLANDS},
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "build_seconds": round(time.monotonic() - started, 1)}
    with open(os.path.join(build, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    os.rename(build, dest)
    return manifest


def _prune(keep):
    """Removes the cache entries of other recipes (the package caches stay)."""
    for name in os.listdir(CACHE):
        path = os.path.join(CACHE, name)
        if name.startswith("image-") and name != keep and os.path.isdir(path):
            shutil.rmtree(path)


def ensure_image(rebuild=False):
    """The manifest of the cached image for the current recipe, built first when missing:
    {"recipe", "image", "suite", "kernels": {suite: {"release", "version", "vmlinuz", ...}}, ...}."""
    key = recipe_key()
    dest = os.path.join(CACHE, "image-" + key)
    manifest_path = os.path.join(dest, "manifest.json")
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if rebuild and os.path.isdir(dest):
            shutil.rmtree(dest)
        if os.path.exists(manifest_path):
            with open(manifest_path) as f:
                return json.load(f)
        print("lab image: building recipe %s into %s" % (key, dest), file=sys.stderr)
        manifest = _build(key, dest)
        _prune("image-" + key)
        return manifest


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rebuild", action="store_true", help="build even when the cache holds this recipe")
    args = parser.parse_args()
    started = time.monotonic()
    manifest = ensure_image(args.rebuild)
    json.dump(manifest, sys.stdout, indent=2)
    print("\nlab image: ready in %.1f s" % (time.monotonic() - started), file=sys.stderr)


if __name__ == "__main__":
    main()
