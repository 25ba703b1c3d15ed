"""Benchmark (run by hand, as root): exporter passes over per-CPU hashes of 10,000, 100,000 and
1,000,000 entries, against ``bpftool -j map dump`` + ``json.loads`` of the same map.

    .venv/bin/python tests/bench/bench_exporter.py [--sizes 10000,100000,1000000] [--rounds N]

For each size, pins a per-CPU hash with 8-byte keys (u32 pid, u32 op) and u64 values under a
private pin root, with a metrics config of two decoded labels (``pid``: uint; ``op``: uint ->
static_map), every entry its own series, and times, best of --rounds:

* the exporter's pass as the service runs it (Exporter.write(): BPF_MAP_LOOKUP_BATCH, decode,
  render, atomic write of the textfile, self metrics; then the loop's settle_after_pass), first
  pass (a new Exporter: empty label caches) and warm;
* ``bpftool -j map dump pinned <map>`` plus ``json.loads`` of its output, the same map (best of
  fewer rounds above 100,000 entries: one dump of a million entries takes tens of seconds);

and prints them as one table: time per entry (linearity), bpftool / exporter ratios, and the
peak memory of a pass (tracemalloc, in runs separate from the timings). Then, for the 100,000
size (or the one nearest), the cost of a one-shot run (what a timer would pay every interval):
the installed command (rendered from the role's template) started with /usr/bin/python3,
``--once``, against the pass itself in a running process; and the process's max RSS.
Goals (issue 15): 100,000 entries first pass <= 0.2 s and warm <= 0.1 s, time linear in the
entries (1,000,000 warm <= 1.5 s), >= 10x bpftool + JSON on every pass.
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


def best(rounds, func, cpu=None):
    """The best wall time of func over the rounds; the best CPU time of this process (user +
    system, which the kernel's map reads count in) is appended to ``cpu`` when given."""
    times, cpu_times = [], []
    for _round in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        func()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - start_cpu)
    if cpu is not None:
        cpu.append(min(cpu_times))
    return min(times)


def bpftool_dump(path):
    out = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", path], capture_output=True, check=True)
    return json.loads(out.stdout)


def run_once(command, config):
    subprocess.run(["/usr/bin/python3", command, "--config", config, "--once"], check=True)


def measure(size, args, work):
    """The row of the table for one map size, and what the one-shot runs need."""
    pin_root = os.path.join(bpffs.DEFAULT_MOUNT, "%s_%d_%d" % (args.pin_prefix, os.getpid(), size))
    try:
        path = pin_map(pin_root, size)
        data = {"pin_root": pin_root, "textfile": os.path.join(work, "bench.prom"),
                "attach_events": os.path.join(work, "events.json"), "programs": [{"name": "bench", "metrics": METRICS}]}
        config = parse_exporter_config(data)
        rounds = args.rounds if size <= 100000 else max(1, min(args.rounds, 2))
        fresh = [Exporter(config) for _round in range(rounds)]  # made before the timing, as before a service's first pass
        done, cpu = [], []

        def first_pass():
            done.append(fresh.pop())
            done[-1].write()
        first = best(rounds, first_pass, cpu)
        exporter = done[-1]
        del done[:-1]  # freed outside the timings
        settle_after_pass()

        def service_pass():
            exporter.write()
            settle_after_pass()  # as the service's loop does after each pass
        warm = best(rounds, service_pass, cpu)
        with open(config.textfile) as f:
            text = f.read()
        series = sum(1 for line in text.splitlines() if line.startswith("ebpf_exporter_" + METRIC))
        dumped = bpftool_dump(path)
        if len(dumped) != size or series != size:
            raise SystemExit("bpftool dumped %d entries and the textfile holds %d series; expected %d"
                             % (len(dumped), series, size))
        del dumped
        bpftool = best(1 if size > 100000 else rounds, lambda: bpftool_dump(path))

        tracemalloc.start()
        Exporter(config).write()
        _current, peak_first = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        exporter.write()
        _current, peak_warm = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        row = {"size": size, "first": first, "warm": warm, "first_cpu": cpu[0], "warm_cpu": cpu[1], "bpftool": bpftool, "peak_first": peak_first,
               "peak_warm": peak_warm, "text": len(text), "rounds": rounds}
        if args.one_shot == size:
            row.update(one_shot(data, work, args.rounds))
        return row
    finally:
        bpffs.remove_tree(pin_root)


def one_shot(data, work, rounds):
    """What a timer pays at every interval: interpreter start, imports, a first pass."""
    command = render_command(os.path.join(work, "ebpf-observability-exporter"))
    small = dict(data)
    small["programs"] = [{"name": "bench"}]  # the same object, self metrics only
    small_file = write_config(os.path.join(work, "small.yml"), **small)
    full_file = write_config(os.path.join(work, "full.yml"), **data)
    return {"one_shot": best(rounds, lambda: run_once(command, small_file)),
            "in_process": best(rounds, Exporter(parse_exporter_config(small)).write),
            "full_shot": best(rounds, lambda: run_once(command, full_file))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="map sizes (entries), comma-separated")
    parser.add_argument("--rounds", type=int, default=5, help="runs timed; the best one is printed (at most 2 "
                        "above 100,000 entries)")
    parser.add_argument("--pin-prefix", default="ebpft_ex_bench", help="the private pin roots' name under bpffs, "
                        "before the process id")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    args.one_shot = min(sizes, key=lambda size: abs(size - 100000))
    work = tempfile.mkdtemp(prefix="ebpft-ex-bench-")
    try:
        rows = [measure(size, args, work) for size in sizes]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    mib = 1048576.0
    print("per-CPU hash, 8-byte keys, %d possible CPUs, two decoded labels, every entry a series; best of the "
          "rounds shown; bpftool = bpftool -j map dump + json.loads; cpu = this process's CPU time (user + system) "
          "in the pass, which other work on the machine does not stretch" % bs.possible_cpus())
    print("%10s %6s %8s %8s %8s %8s %8s %8s %9s %8s %8s %10s %9s %9s"
          % ("entries", "rounds", "first s", "cpu s", "us/entry", "warm s", "cpu s", "us/entry", "bpftool s",
             "bt/first", "bt/warm", "peak first", "peak warm", "text"))
    for row in rows:
        size = row["size"]
        print("%10d %6d %8.3f %8.3f %8.2f %8.3f %8.3f %8.2f %9.3f %7.1fx %7.1fx %6.1f MiB %5.1f MiB %5.1f MiB"
              % (size, row["rounds"], row["first"], row["first_cpu"], row["first"] / size * 1e6, row["warm"],
                 row["warm_cpu"], row["warm"] / size * 1e6, row["bpftool"], row["bpftool"] / row["first"],
                 row["bpftool"] / row["warm"], row["peak_first"] / mib, row["peak_warm"] / mib, row["text"] / mib))
    by_size = dict((row["size"], row) for row in rows)
    if 100000 in by_size:
        row = by_size[100000]
        print("goals at 100,000: first %.3f s (<= 0.2 s), warm %.3f s (<= 0.1 s)" % (row["first"], row["warm"]))
    if 1000000 in by_size:
        print("goal at 1,000,000: warm %.3f s (<= 1.5 s)" % by_size[1000000]["warm"])
    print("goal: >= 10x bpftool + JSON on every pass; lowest ratio here %.1fx"
          % min(min(row["bpftool"] / row["first"], row["bpftool"] / row["warm"]) for row in rows))
    print("process max RSS %.1f MiB (map filling and bpftool's JSON included)" % rss)
    row = by_size[args.one_shot]
    print("one-shot run (/usr/bin/python3 start + imports + pass), self metrics only: %.3f s; the same pass "
          "in a running exporter: %.4f s" % (row["one_shot"], row["in_process"]))
    print("one-shot run with the %d-entry map: %.3f s (cold label caches every time) vs %.3f s warm in a service"
          % (args.one_shot, row["full_shot"], row["warm"]))


if __name__ == "__main__":
    main()
