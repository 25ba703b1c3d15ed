"""Benchmark (run by hand, as root): reading whole maps with BPF_MAP_LOOKUP_BATCH against
reading them key by key (BPF_MAP_GET_NEXT_KEY + BPF_MAP_LOOKUP_ELEM).

    .venv/bin/python tests/bench/bench_map_read.py [--rounds N]

Creates a 256-entry per-CPU array and a 100,000-entry per-CPU hash with 8-byte keys and
8-byte values, fills them, and prints the best time of N rounds for each way of reading
and their ratio.
"""
import argparse
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import conftest  # noqa: E402,F401  # pylint: disable=unused-import

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as bs  # noqa: E402


def best_of(rounds, func):
    best, result = None, None
    for _round in range(rounds):
        start = time.perf_counter()
        result = func()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best, result


def fill(fd, map_type, key_size, entries, value_size):
    ncpus = bs.possible_cpus()
    items = []
    for i in range(entries):
        key = struct.pack("<I", i) if key_size == 4 else struct.pack("<Q", i * 2654435761)
        value = b"".join(struct.pack("<Q", i * 10 + cpu) for cpu in range(ncpus))
        items.append((key, value))
    for start in range(0, entries, 10000):
        bs.map_update_batch(fd, items[start:start + 10000])


def bench(label, map_type, key_size, entries, rounds):
    value_size = bs.percpu_value_size(8)
    with bs.map_create(map_type, key_size, 8, entries, name="bench") as fd:
        fill(fd, map_type, key_size, entries, value_size)
        t_batch, batch = best_of(rounds, lambda: bs.map_lookup_batch(
            fd, key_size, value_size, entries))
        t_key, per_key = best_of(rounds, lambda: bs.map_dump_per_key(fd, key_size, value_size))
    if sorted(batch) != sorted(per_key) or len(batch) != entries:
        raise SystemExit("%s: batch and per-key reads differ (%d vs %d entries)"
                         % (label, len(batch), len(per_key)))
    print("%-34s batch %9.3f ms   per-key %9.3f ms   per-key/batch %5.1fx   (%d entries, "
          "%d CPUs)" % (label, t_batch * 1e3, t_key * 1e3, t_key / t_batch, entries,
                        bs.possible_cpus()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    bench("percpu_array, 256 entries", bs.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 256, args.rounds)
    bench("percpu_hash, 100000 entries, 8B key", bs.BPF_MAP_TYPE_PERCPU_HASH, 8, 100000,
          args.rounds)


if __name__ == "__main__":
    main()
