"""Benchmark (run by hand, as root): one exporter pass over a 100,000-entry per-CPU hash.

    .venv/bin/python tests/bench/bench_exporter.py [--entries N] [--rounds N]

Pins a per-CPU hash with 8-byte keys (u32 pid, u32 op) and u64 values under a private pin root,
with a metrics config of two decoded labels (``pid``: uint; ``op``: uint -> static_map), and
times, best of --rounds:

* the exporter's pass as the service runs it (Exporter.write(): BPF_MAP_LOOKUP_BATCH, decode,
  render, atomic write of the textfile, self metrics; then the loop's settle_after_pass), first
  pass (empty label caches) and warm;
* ``bpftool -j map dump pinned <map>`` plus ``json.loads`` of its output, the same map;
* the cost of a one-shot run (what a timer would pay every interval): the installed command
  (rendered from the role's template) started with /usr/bin/python3, ``--once``, against the
  pass itself in a running process.

Then the peak memory of a pass (tracemalloc, separate from the timings) and the process's max RSS
before bpftool's output is loaded.
Goal: a pass under 0.5 s and at least 10x faster than bpftool + JSON.
"""
import argparse
import json
import os
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS)
import conftest  # noqa: E402,F401  # pylint: disable=unused-import

sys.path.append(os.path.join(TESTS, "integration"))  # the command rendered as the role renders it

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as bs  # noqa: E402
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs  # noqa: E402
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.textfile import Exporter  # noqa: E402
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.cli import settle_after_pass  # noqa: E402
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.config import parse_exporter_config
from exporter_harness import render_command, write_config  # noqa: E402  # pylint: disable=wrong-import-order

METRIC = "syscalls_by_pid_total"
METRICS = {
    "metrics": {
        "counters": [{
            "name": METRIC,
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


def pin_map(pin_root, entries):
    """A filled per-CPU hash pinned as <pin_root>/bench/maps/<METRIC>."""
    cpus = bs.possible_cpus()
    pack_key, pack_value = struct.Struct("<II").pack, struct.Struct("<%dQ" % cpus).pack
    items = [(pack_key(1000 + i // 100, i % 100), pack_value(*[(i + cpu) % 977 for cpu in range(cpus)]))
             for i in range(entries)]
    random.Random(1).shuffle(items)
    maps_dir = os.path.join(pin_root, "bench", "maps")
    bpffs.makedirs(maps_dir)
    with bs.map_create(bs.BPF_MAP_TYPE_PERCPU_HASH, 8, 8, entries, name=METRIC) as fd:
        for start in range(0, entries, 10000):
            bs.map_update_batch(fd, items[start:start + 10000])
        bs.obj_pin(fd, os.path.join(maps_dir, METRIC))
    return os.path.join(maps_dir, METRIC)


def best(rounds, func):
    times = []
    for _round in range(rounds):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def bpftool_dump(path):
    out = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", path], capture_output=True, check=True)
    return json.loads(out.stdout)


def run_once(command, config):
    subprocess.run(["/usr/bin/python3", command, "--config", config, "--once"], check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--entries", type=int, default=100000)
    parser.add_argument("--rounds", type=int, default=5, help="runs timed; the best one is printed")
    args = parser.parse_args()
    pin_root = os.path.join(bpffs.DEFAULT_MOUNT, "ebpft_ex_bench_%d" % os.getpid())
    work = tempfile.mkdtemp(prefix="ebpft-ex-bench-")
    try:
        path = pin_map(pin_root, args.entries)
        data = {"pin_root": pin_root, "textfile": os.path.join(work, "bench.prom"),
                "attach_events": os.path.join(work, "events.json"), "programs": [{"name": "bench", "metrics": METRICS}]}
        config = parse_exporter_config(data)

        firsts = []
        for _round in range(args.rounds):
            exporter = Exporter(config)
            start = time.perf_counter()
            exporter.write()
            firsts.append(time.perf_counter() - start)
        settle_after_pass()

        def service_pass():
            exporter.write()
            settle_after_pass()  # as the service's loop does after each pass
        warm = best(args.rounds, service_pass)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # before bpftool's JSON is loaded
        with open(config.textfile) as f:
            text = f.read()
        series = sum(1 for line in text.splitlines() if line.startswith("ebpf_exporter_" + METRIC))
        dumped = bpftool_dump(path)
        if len(dumped) != args.entries or series != args.entries:
            raise SystemExit("bpftool dumped %d entries and the textfile holds %d series; expected %d"
                             % (len(dumped), series, args.entries))
        bpftool = best(args.rounds, lambda: bpftool_dump(path))

        tracemalloc.start()
        Exporter(config).write()
        _current, peak_first = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        exporter.write()
        _current, peak_warm = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        # What a timer pays at every interval: interpreter start, imports, a first pass.
        command = render_command(os.path.join(work, "ebpf-observability-exporter"))
        small = dict(data)
        small["programs"] = [{"name": "bench"}]  # the same object, self metrics only
        small_file = write_config(os.path.join(work, "small.yml"), **small)
        full_file = write_config(os.path.join(work, "full.yml"), **data)
        one_shot = best(args.rounds, lambda: run_once(command, small_file))
        in_process = best(args.rounds, Exporter(parse_exporter_config(small)).write)
        full_shot = best(args.rounds, lambda: run_once(command, full_file))
    finally:
        bpffs.remove_tree(pin_root)
        shutil.rmtree(work, ignore_errors=True)

    print("map: %d entries, per-CPU hash, %d possible CPUs; textfile %.1f MiB, %d series"
          % (args.entries, bs.possible_cpus(), len(text) / 1048576.0, series))
    print("exporter pass (read + decode + render + atomic write), best of %d: first %.3f s, warm %.3f s (goal < 0.5 s)"
          % (args.rounds, min(firsts), warm))
    print("bpftool -j map dump + json.loads, best of %d: %.3f s" % (args.rounds, bpftool))
    print("bpftool / exporter: %.1fx (first pass), %.1fx (warm pass) (goal >= 10x)"
          % (bpftool / min(firsts), bpftool / warm))
    print("peak traced memory of a pass: first %.1f MiB, warm %.1f MiB; process max RSS %.1f MiB (map filling included)"
          % (peak_first / 1048576.0, peak_warm / 1048576.0, rss))
    print("one-shot run (/usr/bin/python3 start + imports + pass), self metrics only: %.3f s; the same pass "
          "in a running exporter: %.4f s" % (one_shot, in_process))
    print("one-shot run with the %d-entry map: %.3f s (cold label caches every time) vs %.3f s warm in a service"
          % (args.entries, full_shot, warm))


if __name__ == "__main__":
    main()
