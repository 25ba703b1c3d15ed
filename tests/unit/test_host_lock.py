"""The host lock (state/host_lock): one holder at a time across processes, a bounded wait that
names the holder, nothing left behind by a killed holder, re-entrant within a process."""
import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.state.host_lock import HostLock

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOLDER = (
    "import sys, time\n"
    "from ansible_collections.ebpf.observability.plugins.module_utils.state.host_lock import HostLock\n"
    "with HostLock('holder', path=sys.argv[1]):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(float(sys.argv[2]))\n"
)


def _holder(path, seconds):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "build", "collections"))
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, path, str(seconds)], env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_waits_then_names_the_holder(tmp_path):
    path = str(tmp_path / "lock")
    proc = _holder(path, 30)
    try:
        start = time.monotonic()
        with pytest.raises(BpfError) as err:
            HostLock("ebpf_attach", path=path, timeout=0.3).acquire()
        assert 0.3 <= time.monotonic() - start < 5
        assert "held by pid %d" % proc.pid in str(err.value)
        assert "ebpf_attach waited 0 s for the host lock" in str(err.value)
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_is_taken_once_the_holder_ends(tmp_path):
    path = str(tmp_path / "lock")
    proc = _holder(path, 0.5)
    with HostLock("second", path=path, timeout=10) as lock:
        assert proc.wait(timeout=5) == 0
        assert lock.waited > 0.1


def test_a_killed_holder_leaves_nothing_that_blocks(tmp_path):
    path = str(tmp_path / "lock")
    proc = _holder(path, 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert os.path.exists(path)
    with HostLock("after kill", path=path, timeout=1) as lock:
        assert lock.waited < 1


def test_reentrant_within_a_process_and_released_at_the_outer_exit(tmp_path):
    path = str(tmp_path / "lock")
    with HostLock("outer", path=path, timeout=1):
        with HostLock("inner", path=path, timeout=0.1):
            pass
        with pytest.raises(subprocess.CalledProcessError):
            subprocess.run([sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR); "
                            "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)", path], check=True, capture_output=True)
    subprocess.run([sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR); "
                    "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)", path], check=True)


def test_a_link_in_place_of_the_lock_file_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("precious")
    os.symlink(str(target), str(tmp_path / "lock"))
    with pytest.raises(BpfError) as err:
        HostLock("x", path=str(tmp_path / "lock"), timeout=0.1).acquire()
    assert "not a link" in str(err.value)
    assert target.read_text() == "precious"
