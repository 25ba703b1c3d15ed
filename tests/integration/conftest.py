"""Fixtures for tests against the running kernel: test BPF objects compiled from source with
CO-RE against this kernel's BTF, a private pin root on bpffs, network namespaces joined by veth
pairs, and tiny programs to attach."""
import os
import re
import shutil
import tempfile

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.netlink import Netlink
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend
from bpf_objects import build_test_objects
from exporter_harness import PREFIX as EXPORTER_PREFIX, build_programs
from netns import veth_netns_pair
from tiny_programs import load_cls, load_xdp


@pytest.fixture(scope="session")
def bpf_objects():
    return build_test_objects()


@pytest.fixture(scope="session")
def build_dir():
    """The ebpf_build role's output directory, shared by the session's site.yml runs (built by
    the first, found up to date by the others)."""
    path = tempfile.mkdtemp(prefix="ebpft-build-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pin_root(request):
    """A pin root of this test's own under /sys/fs/bpf, removed afterwards."""
    if not bpffs.is_bpffs(bpffs.DEFAULT_MOUNT):
        pytest.fail("bpffs is not mounted at /sys/fs/bpf (make setup mounts it)")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:40]
    root = os.path.join(bpffs.DEFAULT_MOUNT, "ebpfo_test_%d_%s" % (os.getpid(), name))
    bpffs.remove_tree(root)
    yield root
    bpffs.remove_tree(root)


# ------------------------------------------------------------------------- ebpf_attach

ATTACH_PREFIX = "ebpft-at"


@pytest.fixture
def veth_pair():
    """Namespaces joined by veth ebpft-at0 (this thread's namespace meanwhile) <-> ebpft-at1, with
    addresses and nothing else on the wire (see netns.py)."""
    with veth_netns_pair(ATTACH_PREFIX, addresses=True) as pair:
        yield pair


@pytest.fixture
def attach_obj(pin_root, bpf_objects):
    """tests/bpf/attach_object.bpf.c loaded as ebpf_program "att" in a private pin root; the
    result of the load with "ids" ({program: id}), "pin_root" and "load" (a function loading
    another variant under the same name: an upgrade)."""
    def load(variant="attach"):
        res = ProgramBackend("att", pin_root).present(bpf_objects[variant])
        res.update(ids=dict((p["name"], p["id"]) for p in res["programs"]), pin_root=pin_root, load=load)
        return res
    return load()


@pytest.fixture
def attach(attach_obj, tmp_path):
    """A function running ebpf_attach's backend on the "att" object: attach(check_mode=False,
    **options) -> result. Its event directory is attach.events_dir."""
    from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach import AttachBackend
    events_dir = str(tmp_path / "events")

    def run(check_mode=False, **options):
        params = dict(name="att", pin_root=attach_obj["pin_root"], events_dir=events_dir)
        params.update(options)
        return AttachBackend(params, check_mode=check_mode).run()
    run.events_dir = events_dir
    run.obj = attach_obj
    return run


NETLINK_PREFIX = "ebpft-nl"


@pytest.fixture
def veth():
    """Namespaces joined by veth ebpft-nl0 (in the first, where this thread runs) <-> ebpft-nl1."""
    with veth_netns_pair(NETLINK_PREFIX) as pair:
        yield pair


@pytest.fixture
def nl(veth):
    with Netlink() as netlink:
        yield netlink


@pytest.fixture
def idx(nl, veth):
    return nl.ifindex(veth.ifname)


@pytest.fixture
def xdp_progs():
    progs = [load_xdp("ebpft_xdp%d" % i) for i in range(3)]
    yield progs
    for prog in progs:
        prog.close()


@pytest.fixture
def cls_progs():
    progs = [load_cls("ebpft_cls%d" % i) for i in range(2)]
    yield progs
    for prog in progs:
        prog.close()


# ------------------------------------------------------------------------- the exporter

@pytest.fixture(scope="module")
def built():
    """{name: object path} of the collection's programs, built for the exporter tests."""
    return build_programs()


@pytest.fixture
def work():
    """A temporary directory every user can read (the exporter runs as nobody in some tests)."""
    path = tempfile.mkdtemp(prefix=EXPORTER_PREFIX + "-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
