"""exporter decoders: every decoder against hand-built key bytes, and the label chain."""
import os
import platform
import socket
import struct

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.exporter.metrics_config import DECODER_NAMES
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.decoders import SKIP, DecodeFailure, Decoders
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.host_names import DecodeError
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.syscall_names import syscall_names
from decoder_cases import label_of, decode


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


def test_btf_enum_of_a_kernel_older_than_the_enum_and_unreadable_btf(tmp_path):
    # skb_drop_reason appeared in 5.17: on 5.10 the raw tracepoint variant counts drops as reason 0
    assert decode(["uint", dict(DROP_REASON, enum="no_such_enum_here")], b"\0\0\0\0") == "unknown:0"
    assert decode(["uint", dict(DROP_REASON, enum="no_such_enum_here", allow_unknown=True)], b"\1\0\0\0") == "1"
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
