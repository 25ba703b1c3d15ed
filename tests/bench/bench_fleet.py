"""A fleet simulated on this machine: site.yml (the programs role) over N hosts with forks,
first run and no-op run, for N = 1, 10 and 50, with the ratio of each to one host.

Each simulated host (tests/integration/fleet_sim.py) is an inventory entry with
ansible_connection: local, its own veth pair and network namespace, pin root and directories;
XDP and TC programs on every host, the host-wide tracing programs on two. Nothing is sent on any
interface. Run by hand as root:

    .venv/bin/python tests/bench/bench_fleet.py [N ...] [--forks F]
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import tests.conftest  # noqa: E402,F401  # pylint: disable=unused-import
from fleet_sim import fleet, run_site  # noqa: E402


def timed(inventory, forks, build_dir, *options):
    start = time.monotonic()
    out = run_site(inventory, forks, build_dir, *options, extra={"ebpf_serial": ["100%"]})
    elapsed = time.monotonic() - start
    if out.returncode != 0:
        raise SystemExit(out.stdout[-4000:] + out.stderr[-2000:])
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1, 10, 50])
    parser.add_argument("--forks", type=int, default=50)
    args = parser.parse_args()
    build_dir = tempfile.mkdtemp(prefix="ebpfsim-build-")
    rows = []
    try:
        for count in args.sizes:
            with fleet(count) as (inventory, _hosts):
                first = timed(inventory, args.forks, build_dir)
                noop = timed(inventory, args.forks, build_dir)
            rows.append((count, first, noop))
            print("%3d host(s): first run %6.1f s, no-op run %6.1f s" % (count, first, noop), flush=True)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    base = rows[0]
    print("\nhosts  first (s)  no-op (s)  first / %d host  no-op / %d host" % (base[0], base[0]))
    for count, first, noop in rows:
        print("%5d  %9.1f  %9.1f  %14.2fx  %14.2fx" % (count, first, noop, first / base[1], noop / base[2]))


if __name__ == "__main__":
    main()
