"""Pure logic of the kernel layer: names, object-file checks, hashes, log tails, capabilities."""
import os

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import capabilities
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import libbpf
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import object_file
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError, errno_error


@pytest.mark.parametrize("name", ["xdp_counter", "a", "A-1_b", "x" * 128])
def test_good_names(name):
    assert bpffs.check_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a.b", "-a", "x" * 129, "a b", None, 3])
def test_bad_names(name):
    with pytest.raises(BpfError) as err:
        bpffs.check_name(name, "object name")
    assert "invalid object name" in str(err.value)


def test_pin_path_stays_under_root():
    assert bpffs.pin_path("/sys/fs/bpf/root", "obj", "progs") == "/sys/fs/bpf/root/obj/progs"
    with pytest.raises(BpfError):
        bpffs.pin_path("/sys/fs/bpf/root", "..")


def test_tmp_pins_are_not_listed(tmp_path):
    (tmp_path / "count").write_text("")
    (tmp_path / ("count" + bpffs.TMP_SUFFIX)).write_text("")
    assert bpffs.list_pins(str(tmp_path)) == ["count"]
    assert bpffs.list_pins(str(tmp_path / "missing")) == []


def test_makedirs_reports_what_it_created(tmp_path):
    created = bpffs.makedirs(str(tmp_path / "a" / "b"))
    assert created == [str(tmp_path / "a"), str(tmp_path / "a" / "b")]
    assert bpffs.makedirs(str(tmp_path / "a" / "b")) == []
    bpffs.remove_dirs(created)
    assert not (tmp_path / "a").exists()


def test_pin_root_must_be_absolute():
    with pytest.raises(BpfError) as err:
        bpffs.check_pin_root("relative/path")
    assert "absolute" in str(err.value)


def _elf(machine, little=True):
    order = "little" if little else "big"
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4] = 2
    header[5] = 1 if little else 2
    header[18:20] = machine.to_bytes(2, order)
    return bytes(header)


def test_object_file_checks(tmp_path):
    bpf = tmp_path / "ok.bpf.o"
    bpf.write_bytes(_elf(object_file.EM_BPF))
    assert object_file.read_checked(str(bpf)).startswith(b"\x7fELF")
    big_endian_bpf = tmp_path / "be.bpf.o"
    big_endian_bpf.write_bytes(_elf(object_file.EM_BPF, little=False))
    assert object_file.read_checked(str(big_endian_bpf))
    x86 = tmp_path / "x86.o"
    x86.write_bytes(_elf(62))
    with pytest.raises(BpfError) as err:
        object_file.read_checked(str(x86))
    assert "machine 62, not for BPF" in str(err.value)
    with pytest.raises(BpfError) as err:
        object_file.read_checked(str(tmp_path))
    assert "not a regular file" in str(err.value)
    short = tmp_path / "short.o"
    short.write_bytes(b"\x7fELF")
    with pytest.raises(BpfError):
        object_file.read_checked(str(short))


def test_content_hash_covers_load_parameters():
    base = object_file.content_hash(b"obj", None)
    assert base == object_file.content_hash(b"obj", None)
    assert base != object_file.content_hash(b"obj", ["count_xdp"])
    assert base != object_file.content_hash(b"obj2", None)


def test_verifier_log_tail_keeps_the_end_of_the_load_log():
    body = "".join("%d: insn\n" % i for i in range(100))
    messages = ["libbpf: prog 'p': BPF program load failed: Permission denied\n",
                "libbpf: prog 'p': -- BEGIN PROG LOAD LOG --\n" + body + "R1 offset is outside of the packet\n"
                "-- END PROG LOAD LOG --\n"]
    tail = libbpf.verifier_log_tail(messages, lines=5)
    assert tail.splitlines() == ["96: insn", "97: insn", "98: insn", "99: insn", "R1 offset is outside of the packet"]
    error = libbpf._load_error("x.bpf.o", -13, messages)  # pylint: disable=protected-access
    assert str(error) == "the BPF verifier rejected program p of x.bpf.o: R1 offset is outside of the packet"


def test_load_error_without_verifier_log_names_the_cause():
    error = libbpf._load_error("x.bpf.o", -4005, ["libbpf: prog 'p': failed to load: relo failed\n"])  # pylint: disable=protected-access
    assert "the kernel refused to load x.bpf.o (program p)" in str(error)
    assert libbpf.describe_errno(-4002).startswith("not an ELF")


def test_capabilities_from_mask(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t%016x\n" % (1 << capabilities.CAP_BPF))
    mask = capabilities.effective(str(status))
    assert capabilities.has(capabilities.CAP_BPF, mask)
    capabilities.require_bpf(mask)
    capabilities.require_bpf(1 << capabilities.CAP_SYS_ADMIN)
    with pytest.raises(BpfError) as err:
        capabilities.require_bpf(1 << capabilities.CAP_NET_ADMIN)
    assert "lacks CAP_BPF" in str(err.value) and "become: true" in str(err.value)


def test_error_text():
    err = errno_error("cannot pin /x", -1)
    assert str(err).startswith("cannot pin /x (EPERM: ")
    assert "Run as root" in str(err)
    assert str(BpfError("plain", hint="do this")) == "plain. Do this"
    assert os.strerror(2) in str(BpfError("x", errno=2))
