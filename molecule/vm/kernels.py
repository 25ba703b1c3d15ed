"""Debian's cloud kernels for the lab guests, fetched with a private apt state.

Each suite gets its own sources list, lists, archive cache and (empty) dpkg status under the lab
cache, so the host's apt configuration and lists are never read or changed.
"""
import glob
import os
import re
import shutil
import subprocess
import sys

MIRROR = os.environ.get("EBPF_LAB_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("EBPF_LAB_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
META_PACKAGE = "linux-image-cloud-amd64"

# The suites whose kernels the lab boots, and the kernel series each ships. bullseye's (Debian
# 11's) is booted under the same bookworm userland: the fleets that still run Linux 5.10.
SUITES = {"bookworm": "6.1", "trixie": "6.12", "bullseye": "5.10"}
APT_HELPER = "/usr/lib/apt/apt-helper"
IMAGE_PATTERN = re.compile(r"^linux-image-(\d+\.\d+\.\d+-\d+)-cloud-amd64$")


def _sources(suite):
    signed = "[signed-by=%s]" % KEYRING
    return "".join("deb %s %s %s main\n" % (signed, url, name)
                   for url, name in ((MIRROR, suite), (MIRROR, suite + "-updates"),
                                     (SECURITY_MIRROR, suite + "-security")))


def _apt_state(state_dir, suite):
    """Creates the private apt state of one suite; returns the apt-get options that select it."""
    for sub in ("etc/sources.list.d", "etc/preferences.d", "lists/partial", "archives/partial"):
        os.makedirs(os.path.join(state_dir, sub), exist_ok=True)
    with open(os.path.join(state_dir, "etc", "sources.list"), "w") as f:
        f.write(_sources(suite))
    status = os.path.join(state_dir, "status")
    if not os.path.exists(status):
        open(status, "w").close()
    settings = {
        "Dir::Etc::SourceList": os.path.join(state_dir, "etc", "sources.list"),
        "Dir::Etc::SourceParts": os.path.join(state_dir, "etc", "sources.list.d"),
        "Dir::Etc::Preferences": os.path.join(state_dir, "etc", "preferences"),
        "Dir::Etc::PreferencesParts": os.path.join(state_dir, "etc", "preferences.d"),
        "Dir::State": state_dir,
        "Dir::State::Lists": os.path.join(state_dir, "lists"),
        "Dir::State::status": status,
        "Dir::Cache": state_dir,
        "Dir::Cache::Archives": os.path.join(state_dir, "archives"),
        "APT::Sandbox::User": "root",
    }
    options = []
    for key, value in settings.items():
        options += ["-o", "%s=%s" % (key, value)]
    return options


def _download(options, package, dest):
    os.makedirs(dest, exist_ok=True)
    subprocess.run(["apt-get", "-q"] + options + ["download", package], cwd=dest, check=True,
                   stdout=subprocess.DEVNULL)
    debs = [name for name in os.listdir(dest) if name.startswith(package + "_") and name.endswith(".deb")]
    if len(debs) != 1:
        raise RuntimeError("apt-get download %s left %r in %s; expected one package" % (package, debs, dest))
    return os.path.join(dest, debs[0])


def _candidates(state_dir):
    """The suite's versioned cloud image packages, newest release first, from the Packages indexes
    apt fetched (deb822 stanzas)."""
    found = set()
    for index in glob.glob(os.path.join(state_dir, "lists", "*_binary-amd64_Packages*")):
        # apt may keep its lists compressed; its helper reads them whichever way they are stored
        text = subprocess.run([APT_HELPER, "cat-file", index], check=True, capture_output=True, text=True).stdout
        for stanza in text.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " ")
            if IMAGE_PATTERN.match(fields.get("Package", "")):
                found.add(fields["Package"])
    return sorted(found, key=lambda n: [int(x) for x in re.split(r"[.-]", IMAGE_PATTERN.match(n).group(1))],
                  reverse=True)


def _download_newest(options, state_dir, dest):
    """The kernel the metapackage names; when the mirror's pool lacks it or the metapackage (an
    index can list a kernel before its pool serves it), the newest cloud kernel that downloads,
    said on stderr. Returns (package, deb)."""
    try:
        meta = _download(options, META_PACKAGE, dest)
        # The metapackage depends on exactly one versioned image package: "linux-image-R (= V)".
        package = _field(meta, "Depends").split(",")[0].split("|")[0].split()[0]
        return package, _download(options, package, dest)
    except subprocess.CalledProcessError:
        pass
    for name in _candidates(state_dir):
        try:
            deb = _download(options, name, dest)
        except subprocess.CalledProcessError:
            continue
        sys.stderr.write("%s: the kernel its metapackage names does not download; the newest that does: %s\n"
                         % (os.path.basename(state_dir), name))
        return name, deb
    raise RuntimeError("no cloud kernel of %s downloads from %s" % (os.path.basename(state_dir), MIRROR))


def _field(deb, name):
    return subprocess.run(["dpkg-deb", "--field", deb, name], check=True, capture_output=True,
                          text=True).stdout.strip()


def fetch(suite, state_root, dest):
    """Downloads the newest cloud kernel of `suite` and unpacks it under `dest`.

    Returns {"suite", "series", "package", "version", "release", "vmlinuz", "modules"}: vmlinuz
    and modules are paths under `dest`."""
    state_dir = os.path.join(state_root, suite)
    options = _apt_state(state_dir, suite)
    subprocess.run(["apt-get", "-q", "-q"] + options + ["update"], check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(dest, ignore_errors=True)
    debs = os.path.join(dest, "debs")
    package, deb = _download_newest(options, state_dir, debs)
    unpacked = os.path.join(dest, "unpacked")
    subprocess.run(["dpkg-deb", "--extract", deb, unpacked], check=True)
    release = package[len("linux-image-"):]
    modules = [path for path in (os.path.join(unpacked, "usr", "lib", "modules", release),
                                 os.path.join(unpacked, "lib", "modules", release)) if os.path.isdir(path)]
    vmlinuz = os.path.join(unpacked, "boot", "vmlinuz-" + release)
    if not modules or not os.path.isfile(vmlinuz):
        raise RuntimeError("%s holds no boot/vmlinuz-%s or modules/%s" % (deb, release, release))
    return {"suite": suite, "series": SUITES[suite], "package": package, "version": _field(deb, "Version"),
            "release": release, "vmlinuz": vmlinuz, "modules": modules[0]}
