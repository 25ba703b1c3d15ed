"""exporter decoders: every decoder against hand-built key bytes, and the label chain."""
import ctypes
import os
import platform
import socket
import struct
import uuid

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.exporter.metrics_config import (
    DECODER_NAMES, parse_metrics_config,
)
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.decoders import SKIP, DecodeFailure, Decoders
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.host_names import DecodeError, KernelSymbols
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.syscall_names import syscall_names


def label_of(decoders, size=8):
    """A LabelConfig with this decoder chain (config dicts or decoder names), through the parser."""
    decoders = [{"name": d} if isinstance(d, str) else d for d in decoders]
    config = {"metrics": {"counters": [{"name": "m", "help": "h", "labels": [
        {"name": "l", "size": size, "decoders": decoders}]}]}}
    return parse_metrics_config(config).counters[0].labels[0]


def decode(chain, raw, decoders=None):
    """Decode raw bytes through a chain given as config dicts (or decoder names)."""
    return (decoders or Decoders()).label_decoder(label_of(chain, len(raw) or 1)).decode(raw)


@pytest.mark.parametrize("raw, text", [
    (b"\x2a", "42"),
    (struct.pack("<H", 0xBEEF), "48879"),
    (struct.pack("<I", 4000000000), "4000000000"),
    (struct.pack("<Q", 2 ** 64 - 1), "18446744073709551615"),
])
def test_uint_reads_host_order(raw, text):
    assert decode(["uint"], raw) == text


def test_uint_rejects_odd_sizes():
    outcome = decode(["uint"], b"\1\2\3")
    assert isinstance(outcome, DecodeFailure) and outcome.decoder == "uint"
    assert "unknown value length 3" in outcome.message


def test_string_stops_at_nul():
    assert decode(["string"], b"syslog-ng\0\0\0garbage") == "syslog-ng"
    assert decode(["string"], b"exactly16bytes!!") == "exactly16bytes!!"
    assert decode(["string"], b"\xffbad\0") == "\ufffdbad"  # invalid UTF-8 is replaced, not fatal


def test_hex():
    assert decode(["hex"], b"\x00\xab\x10\xff") == "00ab10ff"


def test_static_map():
    mapping = {"name": "static_map", "static_map": {1: "read", 2: "write"}}
    assert decode(["uint", mapping], b"\1") == "read"
    assert decode(["uint", mapping], b"\3") == "unknown:3"
    assert decode(["uint", dict(mapping, allow_unknown=True)], b"\3") == "3"
    assert decode(["uint", {"name": "static_map"}], b"\1") == "empty mapping"
    assert decode(["uint", {"name": "static_map", "static_map": {}}], b"\1") == "unknown:1"


def test_regexp_keeps_or_drops():
    chain = ["string", {"name": "regexp", "regexps": ["^systemd-journal$", "^syslog-ng$"]}]
    assert decode(chain, b"syslog-ng\0\0\0") == "syslog-ng"
    assert decode(chain, b"bash\0\0\0\0\0\0\0\0") is SKIP


def test_regexp_gives_the_capture_group_or_the_match():
    # ebpf_exporter (decoder/regexp.go): one group -> that group, none -> the matched text only.
    assert decode(["string", {"name": "regexp", "regexps": ["^(systemd).*$", "^syslog-ng$"]}],
                  b"systemd-bananad\0") == "systemd"
    assert decode(["string", {"name": "regexp", "regexps": ["sys"]}], b"xsysx") == "sys"  # unanchored
    kswapd = {"name": "regexp", "regexps": ["^(kswapd)[0-9]+$"]}
    assert decode(["string", kswapd], b"kswapd0\0") == decode(["string", kswapd], b"kswapd1\0") == "kswapd"
    # A group that takes no part in the match gives the empty value.
    assert decode(["string", {"name": "regexp", "regexps": ["^a(b)?"]}], b"ac") == ""


def test_regexp_with_two_groups_gives_nothing_and_the_next_pattern_is_tried():
    two = {"name": "regexp", "regexps": ["^(k)(swapd)"]}
    assert decode(["string", two], b"kswapd0\0") is SKIP
    assert decode(["string", dict(two, regexps=["^(k)(swapd)", "^(kswap)d"])], b"kswapd0\0") == "kswap"
    assert decode(["string", dict(two, regexps=["^(?:k)(swapd)"])], b"kswapd0\0") == "swapd"  # non-capturing


def test_chain_feeds_each_output_to_the_next():
    # uint -> static_map -> regexp: the regexp sees the mapped text, not the number.
    chain = ["uint", {"name": "static_map", "static_map": {"1": "read", "2": "write"}},
             {"name": "regexp", "regexps": ["^w.*"]}]
    assert decode(chain, b"\2") == "write"
    assert decode(chain, b"\1") is SKIP


@pytest.mark.parametrize("machine, number, name", [
    # ebpf_exporter's names (decoder/syscalls_amd64.go, syscalls_arm64.go)
    ("x86_64", 0, "read"), ("x86_64", 7, "poll_time64"), ("x86_64", 17, "pread"), ("x86_64", 18, "pwrite"),
    ("x86_64", 40, "sendfile64"), ("x86_64", 94, "chown"), ("x86_64", 155, "pivotroot"), ("x86_64", 156, "sysctl"),
    ("x86_64", 189, "setxattr"), ("x86_64", 214, "printargs"), ("x86_64", 227, "clock_settime64"),
    ("x86_64", 229, "clock_getres_time64"), ("x86_64", 231, "exit"), ("x86_64", 321, "bpf"),
    ("x86_64", 335, "unknown_syscall:335"), ("x86_64", 461, "lsm_list_modules"),
    ("x86_64", 462, "unknown_syscall:462"), ("aarch64", 63, "read"), ("aarch64", 42, "nfsservctl"),
    ("aarch64", 67, "pread"), ("aarch64", 94, "exit"), ("aarch64", 243, "recvmmsg_time64"),
    ("aarch64", 280, "bpf"), ("aarch64", 79, "newfstatat"), ("arm64", 56, "openat"),
])
def test_syscall_names(machine, number, name):
    assert decode(["uint", "syscall"], struct.pack("<Q", number), Decoders(machine=machine)) == name


def test_syscall_tables_have_ebpf_exporters_size():
    assert len(syscall_names("x86_64")) == 373 and len(syscall_names("aarch64")) == 317


@pytest.mark.parametrize("machine, number, name", [
    ("x86_64", 17, "pread64"), ("x86_64", 231, "exit_group"), ("x86_64", 336, "uprobe"),
    ("x86_64", 469, "file_setattr"), ("aarch64", 94, "exit_group"), ("aarch64", 42, "unknown_syscall:42"),
])
def test_kernel_syscall_names_on_request(machine, number, name):
    decoders = Decoders(machine=machine, syscall_names="kernel")
    assert decode(["uint", "syscall"], struct.pack("<Q", number), decoders) == name


def test_syscall_unknown_and_invalid():
    decoders = Decoders(machine="x86_64")
    assert decode(["uint", "syscall"], struct.pack("<Q", 400), decoders) == "unknown_syscall:400"
    with pytest.raises(ValueError):
        Decoders(syscall_names="strace")
    assert decode(["uint", "syscall"], struct.pack("<I", 1), Decoders(machine="riscv64")) == "unknown_syscall:1"
    assert decoders.decode_syscall(b"-1") == b"unknown_syscall:18446744073709551615"  # Go's uint64(-1)
    outcome = decode(["hex", "syscall"], b"\xab", decoders)
    assert isinstance(outcome, DecodeFailure) and outcome.decoder == "syscall"


def test_syscall_table_matches_this_host():
    expected = {"x86_64": {39: "getpid", 321: "bpf"}, "aarch64": {172: "getpid", 280: "bpf"}}.get(platform.machine())
    if expected is None:
        pytest.skip("no syscall table for %s" % platform.machine())
    decoders = Decoders()
    for number, name in expected.items():
        assert decoders.decode_syscall(b"%d" % number) == name.encode()


@pytest.mark.parametrize("number, name", [
    (2, "ENOENT"), (11, "EAGAIN"), (35, "EDEADLK"), (95, "ENOTSUP"), (133, "EHWPOISON"),
    (0, "unknown:0"), (41, "unknown:41"), (9999, "unknown:9999"),
])
def test_errno(number, name):
    assert decode(["uint", "errno"], struct.pack("<I", number)) == name


def test_errno_needs_a_number():
    outcome = decode(["string", "errno"], b"-5")
    assert isinstance(outcome, DecodeFailure) and outcome.decoder == "errno"


@pytest.mark.parametrize("raw, text", [
    (bytes([1, 1, 1, 1]), "1.1.1.1"),
    (bytes([192, 0, 2, 200]), "192.0.2.200"),
    (socket.inet_pton(socket.AF_INET6, "2001:db8::1"), "2001:db8::1"),
    (socket.inet_pton(socket.AF_INET6, "2001:db8:0:1:0:0:0:1"), "2001:db8:0:1::1"),
    (socket.inet_pton(socket.AF_INET6, "1:0:2:3:4:5:6:7"), "1:0:2:3:4:5:6:7"),
    (socket.inet_pton(socket.AF_INET6, "::ffff:10.0.0.1"), "10.0.0.1"),  # IPv4-mapped prints as IPv4
    (socket.inet_pton(socket.AF_INET6, "::"), "::"),
    (b"\1\2\3", "?010203"),
])
def test_inet_ip(raw, text):
    assert decode(["inet_ip"], raw) == text


def test_dname():
    assert decode(["string", "dname"], b"\x07example\x03com\x00\x00\x00") == "example.com"
    assert decode(["dname"], b"\x03www\x07example\x03org") == "www.example.org"
    assert decode(["string", "dname"], b"\x00\x00") == "."
    assert decode(["dname"], b"\x09short") == "\tshort"  # a length past the end: input unchanged


def test_ifname_names_interfaces_of_this_namespace():
    for index, name in socket.if_nameindex():
        assert decode(["ifname"], struct.pack("<I", index)) == name
        assert decode(["ifindex"], struct.pack("<I", index) + b"\0\0\0\0") == name
    unused = max(index for index, _name in socket.if_nameindex()) + 1000
    assert decode(["ifname"], struct.pack("<I", unused)) == "unknown:%d" % unused
    assert isinstance(decode(["ifname"], b"\1\0"), DecodeFailure)


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


def test_label_decoder_decodes_each_value_once():
    calls = []
    decoders = Decoders()
    original = decoders.function("uint")

    def counting_uint(data, conf=None):
        calls.append(data)
        return original(data, conf)

    decoders._functions["uint"] = counting_uint
    label_decoder = decoders.label_decoder(label_of([{"name": "uint"}], 4))
    raws = [struct.pack("<I", i % 3) for i in range(30)]
    outcomes, dropped = label_decoder.lookup(raws)
    assert [outcomes[r] for r in raws[:3]] == ["0", "1", "2"] and not dropped
    assert len(calls) == 3
    label_decoder.lookup(raws + [struct.pack("<I", 7)])
    assert len(calls) == 4


def test_label_decoder_retries_failures_and_keeps_skips(tmp_path):
    path = tmp_path / "partitions"
    decoders = Decoders(partitions_path=str(path))
    label_decoder = decoders.label_decoder(label_of([{"name": "majorminor"}], 4))
    raw = struct.pack("<I", os.makedev(8, 0))
    outcomes, dropped = label_decoder.lookup([raw])
    assert isinstance(outcomes[raw], DecodeFailure) and dropped
    path.write_text("major minor  #blocks  name\n\n   8        0  100 sda\n")
    outcomes, dropped = label_decoder.lookup([raw])
    assert outcomes[raw] == "sda" and not dropped

    skipper = decoders.label_decoder(label_of(["string", {"name": "regexp", "regexps": ["^a.*"]}], 4))
    outcomes, dropped = skipper.lookup([b"bcd\0", b"abc\0"])
    assert outcomes[b"bcd\0"] is SKIP and outcomes[b"abc\0"] == "abc" and dropped
    assert skipper.lookup([b"abc\0"])[1] is False


def test_label_cache_is_bounded():
    decoders = Decoders()
    label_decoder = decoders.label_decoder(label_of([{"name": "uint"}], 4), cache_limit=10)
    label_decoder.lookup([struct.pack("<I", i) for i in range(8)])
    outcomes, _dropped = label_decoder.lookup([struct.pack("<I", i) for i in range(100, 105)])
    assert len(label_decoder.cache) == 5 and outcomes[struct.pack("<I", 104)] == "104"


def test_config_and_decoder_set_agree_on_names():
    assert set(Decoders().names()) == set(DECODER_NAMES)


def test_unknown_decoder_name():
    with pytest.raises(DecodeError, match="unknown decoder 'usym'"):
        Decoders().function("usym")
    assert "ifname" in Decoders().names() and "ifindex" in Decoders().names()


DROP_REASON = {"name": "btf_enum", "enum": "skb_drop_reason", "strip_prefix": "SKB_DROP_REASON_"}


def test_btf_enum_names_values_from_this_kernel():
    decoders = Decoders()
    values = decoders.btf_enum("skb_drop_reason")
    no_socket = [value for value, name in values.items() if name == "SKB_DROP_REASON_NO_SOCKET"]
    assert len(no_socket) == 1
    assert decode(["uint", DROP_REASON], struct.pack("<I", no_socket[0]), decoders) == "NO_SOCKET"
    assert decode(["uint", DROP_REASON], struct.pack("<I", 0), decoders) == "SKB_NOT_DROPPED_YET"  # prefix absent: kept
    assert decode(["uint", dict(DROP_REASON, strip_prefix="")], struct.pack("<I", no_socket[0]), decoders) == \
        "SKB_DROP_REASON_NO_SOCKET"


def test_btf_enum_unknown_values():
    assert decode(["uint", DROP_REASON], struct.pack("<I", 0xFFFFFF)) == "unknown:16777215"
    assert decode(["uint", dict(DROP_REASON, allow_unknown=True)], struct.pack("<I", 0xFFFFFF)) == "16777215"


def test_btf_enum_failures_are_decoder_errors(tmp_path):
    outcome = decode(["uint", dict(DROP_REASON, enum="no_such_enum_here")], b"\1\0\0\0")
    assert isinstance(outcome, DecodeFailure) and outcome.decoder == "btf_enum"
    assert "has no enum named no_such_enum_here" in outcome.message
    missing = Decoders(btf_path=str(tmp_path / "vmlinux"))
    outcome = decode(["uint", DROP_REASON], b"\1\0\0\0", missing)
    assert isinstance(outcome, DecodeFailure) and "cannot read BTF from" in outcome.message


PCI_IDS = """# a few lines in pci.ids' format
0e11  Compaq Computer Corporation
\t1000  Triflex/Pentium Bridge, Model 1000
8086  Intel Corporation
\t1000  82542 Gigabit Ethernet Controller (Fiber)
\t\t0e11 b0df  NC6132 Gigabit Ethernet Adapter (1000-SX)
C 01  Mass storage controller
\t08  Non-Volatile memory controller
\t\t02  NVM Express
C 02  Network controller
\t00  Ethernet controller
"""


def pci(decoder, number, paths):
    return decode(["uint", decoder], struct.pack("<I", number), Decoders(pci_ids_paths=paths))


@pytest.mark.parametrize("decoder, number, name", [
    # ebpf_exporter's decoder/pci_*_test.go cases, and its keys' quirks
    ("pci_vendor", 0x8086, "Intel Corporation"),
    ("pci_vendor", 0x0e11, "unknown pci vendor: 0xe11"),  # "%02x": a vendor id below 0x1000 is never found
    ("pci_vendor", 0xdead, "unknown pci vendor: 0xdead"),
    ("pci_device", 0x80861000, "82542 Gigabit Ethernet Controller (Fiber)"),
    ("pci_device", 0x0e111000, "unknown pci device: 0xe111000"),
    ("pci_device", 0xdeadbeef, "unknown pci device: 0xdeadbeef"),
    ("pci_class", 0x02, "Network controller"),
    ("pci_class", 0xfd, "unknown pci class: 0xfd"),
    ("pci_subclass", 0x0108, "Non-Volatile memory controller"),
    ("pci_subclass", 0x0200, "Ethernet controller"),
    ("pci_subclass", 0xfd00, "unknown pci class: 0xfd"),
    ("pci_subclass", 0x010b, "unknown pci subclass: 0x0b (class 0x01)"),
])
def test_pci_names(tmp_path, decoder, number, name):
    path = tmp_path / "pci.ids"
    path.write_text(PCI_IDS)
    assert pci(decoder, number, (str(tmp_path / "absent"), str(path))) == name


@pytest.mark.parametrize("decoder, number, hex_id", [
    ("pci_vendor", 0x8086, "0x8086"), ("pci_device", 0x80861000, "0x80861000"),
    ("pci_class", 0x02, "0x02"), ("pci_subclass", 0x0108, "0x0108"),
])
def test_pci_without_a_database_gives_hex_ids(tmp_path, decoder, number, hex_id):
    assert pci(decoder, number, (str(tmp_path / "absent"),)) == hex_id


def test_pci_names_from_debians_pci_ids():
    if not os.path.exists("/usr/share/misc/pci.ids"):
        pytest.skip("Debian's pci.ids is not installed")
    paths = ("/usr/share/misc/pci.ids",)
    assert pci("pci_device", 0x80861000, paths) == "82542 Gigabit Ethernet Controller (Fiber)"
    assert pci("pci_vendor", 0x8086, paths) == "Intel Corporation"
    assert pci("pci_subclass", 0x0c03, paths) == "USB controller"
    assert pci("pci_subclass", 0x0604, paths) == "PCI bridge"
    assert pci("pci_subclass", 0x0003, paths) == "unknown pci subclass: 0x03 (class 0x00)"
