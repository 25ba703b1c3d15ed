"""Key and value buffers for the raw map calls of the bpf_syscall tests: u32 keys and per-CPU
values of 8-byte slots, one slot per possible CPU."""
import struct

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as bs

NCPUS = bs.possible_cpus()


def u32(n):
    return struct.pack("<I", n)


def percpu(values):
    """A per-CPU value buffer of 8-byte slots."""
    return b"".join(struct.pack("<Q", v) for v in values)


def percpu_sum(raw):
    return sum(v for (v,) in struct.iter_unpack("<Q", raw))
