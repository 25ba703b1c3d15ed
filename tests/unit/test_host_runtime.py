"""The copies of libbpf.so.1 and pyroute2 ebpf_host ships to hosts that lack them: offered by the
controller (plugin_utils/runtime_offer), asked for by the host (backends/host_runtime), unpacked
and loaded from the collection's runtime directory (kernel/bundled_runtime). This host has both
libraries, so "lacks" is the one thing forced here; the files, the archive and the loading are real."""
import base64
import ctypes
import os
import subprocess
import sys

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.backends import host_runtime
from ansible_collections.ebpf.observability.plugins.module_utils.backends.host_files import HostFiles
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bundled_runtime, netlink_codec, shared_library
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.plugin_utils.runtime_offer import runtime_offer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def lacking_everything(monkeypatch):
    monkeypatch.setattr(bundled_runtime, "_lacks", lambda part: True)
    monkeypatch.setattr(bundled_runtime, "_SYSTEM", {})
    monkeypatch.setattr(shared_library, "_search_dirs", [])
    saved_path = list(sys.path)
    yield
    sys.path[:] = saved_path


def _converge(offer, sources, check_mode=False):
    """Like the action plugin: run, send what the host asks for, run again."""
    files = HostFiles(check_mode=check_mode)
    runtime = host_runtime.HostRuntime(offer, files)
    needs = runtime.needs()
    contents = {}
    for key in needs:
        data = sources[key]() if callable(sources[key]) else sources[key]
        contents[key] = base64.b64encode(data).decode("ascii")
    files = HostFiles(check_mode=check_mode, contents=contents)
    runtime = host_runtime.HostRuntime(offer, files)
    assert runtime.needs() == []
    return needs, runtime.apply(), files.items


def test_a_host_lacking_both_gets_them_and_a_second_run_changes_nothing(tmp_path, lacking_everything):
    sources = {}
    offer = runtime_offer(str(tmp_path / "runtime"), sources)
    needs, active, items = _converge(offer, sources)
    assert sorted(needs) == ["runtime/libbpf", "runtime/pyroute2"]
    assert sorted(active) == ["libbpf", "pyroute2"] and all(i["changed"] for i in items)
    assert os.path.isfile(tmp_path / "runtime" / "lib" / "libbpf.so.1")
    assert os.path.isfile(tmp_path / "runtime" / "python" / "pyroute2" / "__init__.py")
    assert sys.path[0] == str(tmp_path / "runtime" / "python")
    needs, active, items = _converge(offer, sources)
    assert needs == [] and not any(i["changed"] for i in items)


def test_the_shipped_pyroute2_is_the_one_imported(tmp_path):
    """In a Python without site-packages (no pyroute2 of its own), after activation, IPRoute and
    the rest of pyroute2's namespace (filled from its entry points) come from the copy; the host
    still lacks pyroute2 of its own (so its copy is compared with the controller's in every run)."""
    sources = {}
    offer = runtime_offer(str(tmp_path / "runtime"), sources)
    runtime_dir = tmp_path / "runtime"
    host_runtime._unpack(sources["runtime/pyroute2"](), str(runtime_dir / "python"), offer["pyroute2"]["checksum"])
    collections = os.path.join(REPO, "build", "collections")
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bundled_runtime as b\n"
        "print(b.lacking())\n"
        "print(b.activate(%r))\n"
        "from pyroute2 import IPRoute\n"
        "from pyroute2.netlink.rtnl.tcmsg import sched_bpf\n"
        "import pyroute2\n"
        "print(pyroute2.__file__, pyroute2.__version__, b.lacking())\n" % (collections, str(runtime_dir)))
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert "'pyroute2'" in out[0] and out[1] == "['pyroute2']"
    assert out[2].startswith(str(runtime_dir / "python" / "pyroute2" / "__init__.py") + " " + offer["pyroute2"]["version"])
    assert "'pyroute2'" in out[2]


def test_a_library_found_only_in_a_search_directory(tmp_path, monkeypatch):
    """The loader tries the soname, then the collection's directories; never another major release."""
    monkeypatch.setattr(shared_library, "_search_dirs", [])
    with open("/proc/self/maps") as f:
        libc = next(line.split()[-1] for line in f if "/libc.so.6" in line)
    os.symlink(libc, tmp_path / "libebpftest.so.7")
    with pytest.raises(BpfError) as err:
        shared_library.load("libebpftest.so.7", {}, hint="install it")
    assert "libebpftest.so.7 was not found" in str(err.value)
    shared_library.add_search_dir(str(tmp_path))
    assert isinstance(shared_library.load("libebpftest.so.7", {}, hint=""), ctypes.CDLL)


def test_check_mode_unpacks_into_a_temporary_directory_only(tmp_path, lacking_everything):
    sources = {}
    offer = runtime_offer(str(tmp_path / "runtime"), sources)
    needs, active, items = _converge(offer, sources, check_mode=True)
    assert sorted(needs) == ["runtime/libbpf", "runtime/pyroute2"] and sorted(active) == ["libbpf", "pyroute2"]
    assert all(i["changed"] for i in items) and not os.path.exists(tmp_path / "runtime")
    assert sys.path[0] != str(tmp_path / "runtime" / "python") and os.path.isdir(os.path.join(sys.path[0], "pyroute2"))


def test_nothing_to_ship_is_a_clear_refusal(tmp_path, lacking_everything):
    offer = {"dir": str(tmp_path), "machine": "aarch64", "libbpf": {"checksum": "0" * 40, "key": "runtime/libbpf"},
             "pyroute2": None}
    with pytest.raises(BpfError) as err:
        host_runtime.HostRuntime(offer, HostFiles())
    text = str(err.value)
    assert "controller's copy is for aarch64: install libbpf 1.x on the host" in text
    assert "(0.7 or later is needed) and the controller's Python has none to ship" in text


def test_a_host_with_both_is_offered_nothing_it_takes(tmp_path, monkeypatch):
    monkeypatch.setattr(bundled_runtime, "_lacks", lambda part: False)
    monkeypatch.setattr(bundled_runtime, "_SYSTEM", {})
    sources = {}
    runtime = host_runtime.HostRuntime(runtime_offer(str(tmp_path), sources), HostFiles())
    assert runtime.needs() == [] and runtime.apply() == []


def test_an_archive_reaching_outside_its_directory_is_refused(tmp_path):
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../escape.py")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(BpfError):
        host_runtime._unpack(buf.getvalue(), str(tmp_path / "python"), "x")
    assert not os.path.exists(tmp_path / "escape.py")


def test_removal_leaves_nothing(tmp_path, lacking_everything):
    sources = {}
    offer = runtime_offer(str(tmp_path / "runtime"), sources)
    _converge(offer, sources)
    files = HostFiles()
    host_runtime.HostRuntime(None, files).remove(str(tmp_path / "runtime"))
    assert not os.path.exists(tmp_path / "runtime")


def test_an_older_pyroute2_is_refused_with_what_to_install(monkeypatch):
    """Where neither the host nor the collection's copy gives pyroute2 0.7+ (a Debian 11 host after
    remove.yml), reading interfaces says so instead of failing inside pyroute2."""
    import pyroute2
    monkeypatch.setattr(netlink_codec, "IPRoute", None)
    monkeypatch.setattr(pyroute2, "__version__", "0.5.14")
    with pytest.raises(BpfError) as err:
        netlink_codec.load_pyroute2()
    assert "pyroute2 0.5.14 is too old for XDP and TC: 0.7 or later is needed" in str(err.value)
    assert "ebpf_programs_runtime_dir" in str(err.value)
    assert netlink_codec.IPRoute is None
    monkeypatch.setattr(pyroute2, "__version__", "unknown")  # no version file: judged by its XDP support
    netlink_codec.load_pyroute2()
    assert netlink_codec.IPRoute is pyroute2.IPRoute
