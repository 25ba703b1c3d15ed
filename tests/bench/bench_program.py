"""Benchmark (run by hand as root, or `make bench`): ebpf_program's idempotent no-op versus the
first load of a multi-program CO-RE object, in one run.

Prints medians for the backend in-process (the module's own work) and for the module run as a
process the way Ansible runs it on a target (interpreter start and imports included).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "build", "collections"))  # make collection
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from bpf_objects import build_test_objects  # noqa: E402

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs  # noqa: E402
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend  # noqa: E402

PIN_ROOT = os.environ.get("EBPF_BENCH_PIN_ROOT", "/sys/fs/bpf/ebpfo") + "_bench_program"
MODULE = os.path.join(REPO, "plugins", "modules", "ebpf_program.py")


def timed(fn, rounds, before=None):
    samples = []
    for _round in range(rounds):
        if before:
            before()
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def run_module(args_file):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "build", "collections"))
    out = subprocess.run([sys.executable, MODULE, args_file], env=env, capture_output=True, text=True, check=False)
    result = json.loads(out.stdout)
    if result.get("failed"):
        raise SystemExit(result["msg"])
    return result


def main():
    src = os.environ.get("BENCH_OBJECT") or os.path.join(REPO, "bpf", "net_tracepoints.bpf.o")
    if not os.path.exists(src):
        src = build_test_objects()["base"]

    def clean():
        bpffs.remove_tree(PIN_ROOT)

    def present():
        return ProgramBackend("bench", PIN_ROOT).present(src)

    try:
        clean()
        nprogs = len(present()["programs"])
        first = timed(present, 10, before=clean)
        present()
        noop = timed(present, 50)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"ANSIBLE_MODULE_ARGS": {"name": "bench", "src": src, "pin_root": PIN_ROOT}}, f)
        proc_first = timed(lambda: run_module(f.name), 5, before=clean)
        run_module(f.name)
        proc_noop = timed(lambda: run_module(f.name), 10)
        os.unlink(f.name)
    finally:
        clean()
    print("object: %s (%d programs)" % (os.path.relpath(src, REPO), nprogs))
    print("%-34s %10s %10s %8s" % ("", "first load", "no-op", "ratio"))
    print("%-34s %8.2f ms %7.2f ms %7.1fx" % ("backend, in-process (median)", first, noop, first / noop))
    print("%-34s %8.2f ms %7.2f ms %7.1fx" % ("module as a process (median)", proc_first, proc_noop, proc_first / proc_noop))


if __name__ == "__main__":
    main()
