"""exporter decoders that name things of the host: kernel symbols and stacks (ksym, kstack),
cgroups (cgroup) and block devices (majorminor), against files made here and this kernel."""
import ctypes
import os
import struct
import uuid

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.exporter.decoders import DecodeFailure, Decoders
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.host_names import KernelSymbols
from decoder_cases import decode


def write_kallsyms(path, lines):
    path.write_text("".join("%016x %s %s%s\n" % (addr, kind, name, extra) for addr, kind, name, extra in lines))


def test_ksym_names_the_nearest_preceding_symbol(tmp_path):
    path = tmp_path / "kallsyms"
    write_kallsyms(path, [
        (0xffffffff81000000, "T", "_text", ""),
        (0xffffffff81234560, "T", "mark_page_accessed", ""),
        (0xffffffffc0001000, "t", "nft_do_chain", "\t[nf_tables]"),
        (0xffffffff81100000, "T", "do_sys_open", ""),
    ])
    decoders = Decoders(kallsyms_path=str(path))
    assert decode(["ksym"], struct.pack("<Q", 0xffffffff81234560), decoders) == "mark_page_accessed"
    assert decode(["ksym"], struct.pack("<Q", 0xffffffff81100000), decoders) == "do_sys_open"
    # Inside a function: the symbol before it (ebpf_exporter's kallsyms decoder), process_timeout+4 style.
    assert decode(["ksym"], struct.pack("<Q", 0xffffffff81234564), decoders) == "mark_page_accessed"
    assert decode(["ksym"], struct.pack("<Q", 0xffffffff8123455f), decoders) == "do_sys_open"
    # A module's symbol keeps the rest of its kallsyms line, as ebpf_exporter splits it on spaces.
    assert decode(["ksym"], struct.pack("<Q", 0xffffffffc0001000), decoders) == "nft_do_chain\t[nf_tables]"
    assert decode(["ksym"], struct.pack("<Q", 0xffffffffc0001010), decoders) == "nft_do_chain\t[nf_tables]"
    # Below the first symbol there is none.
    assert decode(["ksym"], struct.pack("<Q", 0xffffffff80ffffff), decoders) == "unknown_addr:0xffffffff80ffffff"
    assert decode(["ksym"], struct.pack("<Q", 6), decoders) == "unknown_addr:0x6"


def test_ksym_hidden_addresses_are_an_error(tmp_path):
    path = tmp_path / "kallsyms"
    write_kallsyms(path, [(0, "T", "_text", ""), (0, "T", "vfs_read", "")])
    outcome = decode(["ksym"], struct.pack("<Q", 0xffffffff81000000), Decoders(kallsyms_path=str(path)))
    assert isinstance(outcome, DecodeFailure) and "kptr_restrict" in outcome.message


def test_kstack_names_each_frame_up_to_the_first_zero(tmp_path):
    path = tmp_path / "kallsyms"
    write_kallsyms(path, [(0x1000, "T", "mark_page_accessed", ""), (0x2000, "T", "unmap_page_range", ""),
                          (0x3000, "t", "bpf_prog_x", "\t[bpf]")])
    decoders = Decoders(kallsyms_path=str(path))
    stack = struct.pack("<5Q", 0x1008, 0x2010, 0x3000, 0, 0x1000)
    assert decode(["kstack"], stack, decoders) == "mark_page_accessed\nunmap_page_range\nbpf_prog_x\t[bpf]"
    assert decode(["kstack"], struct.pack("<2Q", 0x10, 0x1000), decoders) == "??\nmark_page_accessed"
    assert decode(["kstack"], bytes(16), decoders) == ""
    outcome = decode(["kstack"], b"\1" * 12, decoders)
    assert isinstance(outcome, DecodeFailure) and outcome.decoder == "kstack"


def test_ksym_loads_lazily_and_rereads_on_miss(tmp_path):
    path = tmp_path / "kallsyms"
    symbols = KernelSymbols(str(path), refresh_interval=0)
    decoders = Decoders(kallsyms_path=str(path))
    decoders.kernel_symbols = symbols
    assert symbols._addrs is None  # nothing read until the first ksym label
    write_kallsyms(path, [(0x2000, "T", "first", "")])
    assert decode(["ksym"], struct.pack("<Q", 0x2000), decoders) == "first"
    write_kallsyms(path, [(0x1000, "t", "loaded_later", "\t[mod]"), (0x2000, "T", "first", "")])
    assert decode(["ksym"], struct.pack("<Q", 0x1000), decoders) == "loaded_later\t[mod]"
    slow = KernelSymbols(str(path), refresh_interval=3600)
    assert slow.lookup(0x2000) == b"first"
    write_kallsyms(path, [(0x10, "T", "third", "")])
    assert slow.lookup(0x10) is None  # a miss within the interval does not re-read


def test_ksym_against_this_kernel():
    with open("/proc/kallsyms") as handle:
        for line in handle:
            addr, _kind, name = line.split()[:3]
            if name == "bpf_map_lookup_elem":
                break
        else:
            pytest.skip("bpf_map_lookup_elem not in /proc/kallsyms")
    if int(addr, 16) == 0:
        pytest.skip("kallsyms addresses are hidden (kptr_restrict)")
    assert decode(["ksym"], struct.pack("<Q", int(addr, 16))) == "bpf_map_lookup_elem"
    assert decode(["ksym"], struct.pack("<Q", int(addr, 16) + 1)) == "bpf_map_lookup_elem"


def test_ksym_failure_is_reported(tmp_path):
    outcome = decode(["ksym"], struct.pack("<Q", 1), Decoders(kallsyms_path=str(tmp_path / "missing")))
    assert isinstance(outcome, DecodeFailure) and outcome.decoder == "ksym" and "cannot read" in outcome.message


def test_cgroup_paths_from_directory_inodes(tmp_path):
    root = tmp_path / "cgroup"
    (root / "system.slice" / "ssh.service").mkdir(parents=True)
    decoders = Decoders(cgroup_root=str(root))
    ssh = root / "system.slice" / "ssh.service"
    raw = struct.pack("<Q", os.stat(ssh).st_ino)
    assert decode(["uint", "cgroup"], raw, decoders) == str(ssh)
    assert decode(["uint", "cgroup"], struct.pack("<Q", os.stat(root).st_ino), decoders) == str(root)
    # A cgroup created after the first walk is found by walking again.
    late = root / "user.slice"
    late.mkdir()
    assert decode(["uint", "cgroup"], struct.pack("<Q", os.stat(late).st_ino), decoders) == str(late)
    assert decode(["uint", "cgroup"], struct.pack("<Q", 1 << 40), decoders) == "unknown_cgroup_id:%d" % (1 << 40)


def _mount(source, target, fstype):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(source.encode(), str(target).encode(), fstype.encode(), 0, None) != 0:
        pytest.skip("cannot mount %s: %s" % (fstype, os.strerror(ctypes.get_errno())))
    return lambda: libc.umount2(str(target).encode(), 2)  # MNT_DETACH


@pytest.fixture
def hybrid_cgroup_tree(tmp_path):
    """A tmpfs with a plain directory and cgroup2 mounted on ``unified``, as /sys/fs/cgroup of a
    host running cgroup v1 and v2 side by side."""
    if os.geteuid() != 0 or cgroup2_root() is None:
        pytest.skip("needs root and cgroup2")
    root = tmp_path / "cgroup"
    root.mkdir()
    unmounts = [_mount("tmpfs", root, "tmpfs")]
    try:
        (root / "systemd").mkdir()
        (root / "unified").mkdir()
        unmounts.append(_mount("cgroup2", root / "unified", "cgroup2"))
        yield root
    finally:
        for unmount in reversed(unmounts):
            unmount()


def test_cgroup_ids_of_mount_points_are_their_mounted_roots(hybrid_cgroup_tree):
    root = hybrid_cgroup_tree
    unified = root / "unified"
    covered = os.lstat(root / "systemd").st_ino  # a plain tmpfs directory
    assert os.stat(unified).st_ino == 1  # the cgroup2 root: bpf_get_current_cgroup_id() of the root cgroup
    decoders = Decoders(cgroup_root=str(root))
    assert decode(["uint", "cgroup"], struct.pack("<Q", 1), decoders) == str(unified)
    assert decode(["uint", "cgroup"], struct.pack("<Q", covered), decoders) == str(root / "systemd")
    child = unified / ("ebpf-obs-metrics-%s" % uuid.uuid4().hex[:8])
    child.mkdir()
    try:
        child_id = os.stat(child).st_ino
        assert decode(["uint", "cgroup"], struct.pack("<Q", child_id), decoders) == str(child)
    finally:
        child.rmdir()
    # A removed cgroup keeps its path (ebpf_exporter's monitor never forgets one), even across walks.
    fresh = Decoders(cgroup_root=str(root))
    assert decode(["uint", "cgroup"], struct.pack("<Q", 1 << 40), decoders) == "unknown_cgroup_id:%d" % (1 << 40)
    assert decode(["uint", "cgroup"], struct.pack("<Q", child_id), decoders) == str(child)
    assert decode(["uint", "cgroup"], struct.pack("<Q", child_id), fresh) == "unknown_cgroup_id:%d" % child_id


def cgroup2_root():
    with open("/proc/mounts") as handle:
        for line in handle:
            _source, mountpoint, fstype = line.split()[:3]
            if fstype == "cgroup2" and mountpoint.startswith("/sys/fs/cgroup"):
                return mountpoint
    return None


@pytest.fixture
def cgroup_dir():
    root = cgroup2_root()
    if root is None:
        pytest.skip("no cgroup2 hierarchy mounted")
    path = os.path.join(root, "ebpf-obs-metrics-%s" % uuid.uuid4().hex[:8])
    os.mkdir(path)
    yield root, path
    os.rmdir(path)


def test_cgroup_against_this_kernel(cgroup_dir):
    root, path = cgroup_dir
    # On cgroup2 the id bpf_get_current_cgroup_id() returns is the directory's inode number.
    decoders = Decoders(cgroup_root=root)
    assert decode(["uint", "cgroup"], struct.pack("<Q", os.stat(path).st_ino), decoders) == path


def test_majorminor(tmp_path):
    partitions = tmp_path / "partitions"
    partitions.write_text("major minor  #blocks  name\n\n 259        0  500107608 nvme0n1\n"
                          " 259        1     524288 nvme0n1p1\n   8       16  1953514584 sdb\n")
    decoders = Decoders(partitions_path=str(partitions))

    def dev(major, minor):  # the kernel's new_encode_dev()
        return struct.pack("<I", (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12))

    assert decode(["majorminor"], dev(259, 1), decoders) == "nvme0n1p1"
    assert decode(["majorminor"], dev(8, 16), decoders) == "sdb"
    assert decode(["majorminor"], dev(8, 300), decoders) == "unknown:8:300"
    outcome = decode(["majorminor"], dev(8, 16), Decoders(partitions_path=str(tmp_path / "none")))
    assert isinstance(outcome, DecodeFailure) and outcome.decoder == "majorminor"


def test_majorminor_against_this_kernel():
    with open("/proc/partitions") as handle:
        rows = [line.split() for line in handle.readlines()[2:] if line.strip()]
    if not rows:
        pytest.skip("no block devices")
    major, minor, _blocks, name = rows[0]
    dev = os.makedev(int(major), int(minor))
    assert decode(["majorminor"], struct.pack("<I", dev)) == name
