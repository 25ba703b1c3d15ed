"""Benchmark: 100,000 per-CPU map entries with two decoded labels -> Prometheus text.

Keys are 8 bytes (u32 pid, u32 op); values are per-CPU u64 slots for this machine's possible
CPUs. ``op`` goes through uint -> static_map, ``pid`` through uint, and every entry is its own
series (1,000 pids x 100 ops), the worst case for the text output. Prints the wall time of a
first pass (empty label caches) and of a steady-state pass (caches warm), best of --rounds
as other work on the machine disturbs single timings, then the peak
memory of a pass measured by tracemalloc in a separate run (tracemalloc slows code down, so
it does not share a run with the timing). Then the same with the entries in a real per-CPU
hash map, read with BPF_MAP_LOOKUP_BATCH in each pass (needs root). The goal is < 0.5 s per
pass including the map read.

Run: .venv/bin/python tests/bench/bench_render.py [--entries N] [--rounds N]
"""

import argparse
import os
import random
import resource
import struct
import sys
import time
import tracemalloc

# tests/conftest.py links the collection under build/collections and puts that on sys.path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import conftest  # noqa: E402,F401  # pylint: disable=unused-import

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as bs  # noqa: E402
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError  # noqa: E402
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.metrics_config import parse_metrics_config
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import MapSnapshot
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.collector import MetricsCollector
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.text_format import render_text

CONFIG = {
    "metrics": {
        "counters": [{
            "name": "syscalls_by_pid_total",
            "help": "System calls by process and operation",
            "labels": [
                {"name": "pid", "size": 4, "decoders": [{"name": "uint"}]},
                {"name": "op", "size": 4, "decoders": [
                    {"name": "uint"},
                    {"name": "static_map", "allow_unknown": True,
                     "static_map": dict((str(i), "op%02d" % i) for i in range(0, 100, 2))},
                ]},
            ],
        }],
    },
}


def make_entries(count, cpus):
    pack_key = struct.Struct("<II").pack
    pack_value = struct.Struct("<%dQ" % cpus).pack
    entries = []
    for i in range(count):
        pid, op = 1000 + i // 100, i % 100
        entries.append((pack_key(pid, op), pack_value(*[(i + cpu) % 977 for cpu in range(cpus)])))
    random.Random(1).shuffle(entries)  # a hash map hands its entries over in no particular order
    return entries


def one_pass(collector, entries):
    families = collector.collect({"syscalls_by_pid_total": MapSnapshot(entries, 8, True)})
    return render_text(families)


def with_map_read(config, entries, rounds):
    """Time read + collect + render from a real per-CPU hash holding the entries."""
    key_size, max_entries = len(entries[0][0]), len(entries)
    stride = bs.percpu_value_size(8)
    with bs.map_create(bs.BPF_MAP_TYPE_PERCPU_HASH, key_size, 8, max_entries, name="bench_render") as fd:
        for start in range(0, max_entries, 10000):
            bs.map_update_batch(fd, entries[start:start + 10000])
        firsts, warms = [], []
        for _round in range(rounds):
            collector = MetricsCollector(config)
            for times in (firsts, warms):
                start = time.perf_counter()
                snapshot = MapSnapshot(bs.map_lookup_batch(fd, key_size, stride, max_entries), 8, True)
                render_text(collector.collect({"syscalls_by_pid_total": snapshot}))
                times.append(time.perf_counter() - start)
    return "first pass %.3f s, warm pass %.3f s" % (min(firsts), min(warms))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--entries", type=int, default=100000)
    parser.add_argument("--rounds", type=int, default=5, help="passes timed; the best one is printed")
    args = parser.parse_args()
    cpus = bs.possible_cpus()
    entries = make_entries(args.entries, cpus)
    config = parse_metrics_config(CONFIG, "bench")

    firsts, warms = [], []
    for _round in range(args.rounds):
        collector = MetricsCollector(config)
        start = time.perf_counter()
        text = one_pass(collector, entries)
        firsts.append(time.perf_counter() - start)
        start = time.perf_counter()
        text = one_pass(collector, entries)
        warms.append(time.perf_counter() - start)
    series = text.count("\n") - 2

    tracemalloc.start()
    one_pass(MetricsCollector(config), entries)
    _current, peak_cold = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    one_pass(collector, entries)
    _current, peak_warm = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    try:
        read_and_render = with_map_read(config, entries, args.rounds)
    except BpfError as exc:
        read_and_render = "not measured (%s)" % exc

    print("entries: %d, possible CPUs: %d, series: %d, text: %.1f MiB"
          % (len(entries), cpus, series, len(text) / 1048576.0))
    print("wall time, best of %d: first pass %.3f s, warm pass %.3f s (goal < 0.5 s with the map read)"
          % (args.rounds, min(firsts), min(warms)))
    print("with the map read (BPF_MAP_LOOKUP_BATCH of a per-CPU hash), best of %d: %s"
          % (args.rounds, read_and_render))
    print("peak traced memory: first pass %.1f MiB, warm pass %.1f MiB; process max RSS %.1f MiB"
          % (peak_cold / 1048576.0, peak_warm / 1048576.0, rss))


if __name__ == "__main__":
    main()
