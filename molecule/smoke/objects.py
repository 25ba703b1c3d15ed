"""The BPF objects the smoke scenario loads, packed for a single transfer.

The test object (tests/bpf/test_object.bpf.c, built by tests/integration/bpf_objects.py) is
named smoke_test; every object `make bpf` built in bpf/ keeps its name. They are written to a tar
whose bytes depend only on the objects' contents (fixed mtime, owner and mode), so unpacking it
again on a target changes nothing. Prints {"tar": path, "objects": [name, ...]}.
"""
import glob
import json
import os
import sys
import tarfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from bpf_objects import BUILD, build_test_objects  # noqa: E402  pylint: disable=wrong-import-position

TAR = os.path.join(BUILD, "smoke-objects.tar")


def find_objects():
    """{name: path} of the objects to load."""
    found = {"smoke_test": build_test_objects()["base"]}
    for path in sorted(glob.glob(os.path.join(REPO, "bpf", "*.bpf.o"))):
        found[os.path.basename(path)[:-len(".bpf.o")]] = path
    return found


def pack(found, tar_path):
    """Writes `found` as NAME.bpf.o members of a reproducible tar at tar_path."""
    with tarfile.open(tar_path + ".tmp", "w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(found):
            info = tar.gettarinfo(found[name], arcname=name + ".bpf.o")
            info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = 0, 0o644, 0, 0, "root", "root"
            with open(found[name], "rb") as f:
                tar.addfile(info, f)
    os.replace(tar_path + ".tmp", tar_path)


def main():
    found = find_objects()
    pack(found, TAR)
    json.dump({"tar": TAR, "objects": sorted(found)}, sys.stdout)


if __name__ == "__main__":
    main()
