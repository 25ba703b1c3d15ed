"""Fixtures for tests against the running kernel: test BPF objects compiled from source with
CO-RE against this kernel's BTF, and a private pin root on bpffs."""
import os
import re

import pytest

from ansible_collections.ebpf.observability.plugins.module_utils import bpffs
from bpf_objects import build_test_objects


@pytest.fixture(scope="session")
def bpf_objects():
    return build_test_objects()


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
