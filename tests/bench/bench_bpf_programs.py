"""What the collection's BPF programs (bpf/) cost, measured in one run and printed as a table
(`make bench`, as root).

- xdp_counter and tc_classifier: BPF_PROG_TEST_RUN on a 64-byte IPv4 UDP frame, ns per run
  against an empty program of the same type (XDP_PASS / TC_ACT_UNSPEC); tc_classifier holds 16
  rules, once with no match (default class) and once matching the 16th; the same for its variant
  tc_classifier_direct (Linux 6.3+, headers read directly). Beside them the floor
  (a program that increments one per-CPU array slot) and xdp-filter with its statistics, its
  program run the same way: loaded on a veth of the benchmark's own namespace, found by id
  through netlink and run with BPF_PROG_TEST_RUN (see bench_tools.py).
- syscall_latency: ns per getpid() in a tight loop of a small C program (compiled here; it
  calls syscall(SYS_getpid), never a cached getpid), without programs, with two empty programs
  on the raw sys_enter/sys_exit tracepoints (what any program there costs), and with
  syscall_latency; and, as their own processes, bpftrace with the same histogram and
  libbpf-tools `syscount -L` (bench_tools.py). kprobe_syscall_latency shows "n/a (needs
  kprobes)" on a kernel without kprobes.
- net_tracepoints: ns per UDP sendto()+recv() over loopback in a private network namespace
  (ebpft-bp-bench-*), without programs, with empty programs on the same tracepoints, and with
  net_tracepoints.

Rounds of each variant are interleaved; the table shows medians, and the difference of the
fastest rounds ("min cost": load from elsewhere only ever adds time). "program" is the
programs' own run time per event from the kernel's BPF statistics (run_time_ns / run_cnt,
summed over the programs one event runs, measured in a separate round: statistics add two
clock reads per run). Costs are differences within this run: compare ratios between runs, not
absolute numbers. "ratio" is a row's cost as a multiple of our program's of the same kind.
Nothing is asserted; the goals are printed beside the results.
"""
import argparse
import functools
import os
import platform
import statistics
import struct
import subprocess
import sys
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import tests.conftest  # noqa: E402,F401  # pylint: disable=unused-import
from tiny_programs import TC_ACT_UNSPEC, load_cls, load_xdp  # noqa: E402
import bench_tools  # noqa: E402

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_insn  # noqa: E402
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc  # noqa: E402
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs  # noqa: E402
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features  # noqa: E402
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import perf_event  # noqa: E402
from ansible_collections.ebpf.observability.plugins.module_utils.backends import tc_rules_encoding as tc_rules
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend  # noqa: E402

BUILD = os.path.join(REPO, "build", "bench-bpf")
# Where the run pins and which network namespaces it makes: EBPF_BENCH_PIN_ROOT and EBPF_BENCH_NETNS
# keep two runs on one host apart.
PIN_ROOT = os.environ.get("EBPF_BENCH_PIN_ROOT", "/sys/fs/bpf/ebpft-bp-bench")
NETNS_PREFIX = os.environ.get("EBPF_BENCH_NETNS", "ebpft-bp-bench")

XDP_PASS = 2
GOALS = {"xdp": 5, "tc": 10, "syscall": 120}
# --baseline DIR: these objects of another version (make -C bpf O=DIR at that version) are timed
# in the same rounds, pinned as baseline_<name>.
BASELINE_OBJECTS = ("xdp_counter", "tc_classifier", "syscall_latency", "btf_net_tracepoints")
BASELINE = "baseline_"


def udp_frame(size=64):
    """An Ethernet + IPv4 + UDP frame of ``size`` bytes (to port 53)."""
    payload = b"\0" * (size - 14 - 20 - 8)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 1, 0, 64, 17, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + struct.pack("!HHHH", 40000, 53, 8 + len(payload), 0) + payload


def build():
    os.makedirs(BUILD, exist_ok=True)
    subprocess.run(["make", "-s", "-C", os.path.join(REPO, "bpf"), "O=" + BUILD], check=True)
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loop.c")
    subprocess.run(["cc", "-O2", "-o", os.path.join(BUILD, "loop"), source], check=True)


def prog_fd(name, program):
    return sc.obj_get(os.path.join(PIN_ROOT, name, "progs", program))


def interleaved(variants, rounds, run):
    """{variant: [results]}: ``run(variant)`` for each variant in turn, ``rounds`` times."""
    results = dict((name, []) for name in variants)
    for _round in range(rounds):
        for name in variants:
            results[name].append(run(name))
    return results


def median(values):
    return statistics.median(values) if values else float("nan")


# ------------------------------------------------------------------------------ test runs

def packet_rows(repeat, rounds, baseline=False):
    frame = udp_frame()
    no_match = [{"name": "r%d" % i, "id": i + 1, "proto": "tcp", "dport": 1000 + i} for i in range(16)]
    last_match = no_match[:15] + [{"name": "dns", "id": 16, "proto": "udp", "dport": 53}]
    floor_xdp = bench_tools.floor_program(sc.BPF_PROG_TYPE_XDP, XDP_PASS, "ebpft_bp_fxdp")
    floor_tc = bench_tools.floor_program(sc.BPF_PROG_TYPE_SCHED_CLS, TC_ACT_UNSPEC, "ebpft_bp_ftc")
    fds = {"empty xdp": load_xdp("ebpft_bp_xdp"), "empty tc": load_cls("ebpft_bp_cls"),
           "floor xdp": floor_xdp[0], "floor tc": floor_tc[0],
           "xdp_counter": prog_fd("xdp_counter", "xdp_counter"),
           "tc_classifier": prog_fd("tc_classifier", "tc_classify_ingress")}
    tc_objects = ["tc_classifier"]
    if baseline:
        fds[BASELINE + "xdp_counter"] = prog_fd(BASELINE + "xdp_counter", "xdp_counter")
        fds[BASELINE + "tc_classifier"] = prog_fd(BASELINE + "tc_classifier", "tc_classify_ingress")
        tc_objects.append(BASELINE + "tc_classifier")
    if features.has_kern_ctx():
        fds["tc_classifier_direct"] = prog_fd("tc_classifier_direct", "tc_classify_ingress")
        tc_objects.append("tc_classifier_direct")
        if baseline:
            fds[BASELINE + "tc_classifier_direct"] = prog_fd(BASELINE + "tc_classifier_direct", "tc_classify_ingress")
            tc_objects.append(BASELINE + "tc_classifier_direct")

    def write(name, classes):
        with sc.obj_get(os.path.join(PIN_ROOT, name, "maps", tc_rules.MAP_NAME)) as rules:
            active = tc_rules.active_generation(sc.map_lookup(rules, struct.pack("=I", tc_rules.SELECTOR_INDEX), 8))
            items, selector = tc_rules.update_plan(classes, active)
            sc.map_update_batch(rules, items)
            sc.map_update(rules, *selector)

    def run(name):
        fd = fds[name.split(":")[0]]
        if "tc_classifier" in name:
            write(name.split(":")[0], last_match if name.endswith("last") else no_match)
        out = sc.prog_test_run(fd, frame, repeat=repeat)
        if name.endswith(("xdp_counter", "xdp-filter")) and out["retval"] != XDP_PASS:
            raise SystemExit("%s returned %d, not XDP_PASS" % (name, out["retval"]))
        return out["duration_ns"]

    variants = ["empty xdp", "floor xdp", "xdp_counter", "xdp-filter", "empty tc", "floor tc"]
    variants += [BASELINE + "xdp_counter"] if baseline else []
    variants += [name + match for name in tc_objects for match in (":none", ":last")]
    try:
        with bench_tools.xdp_filter_program(PIN_ROOT, NETNS_PREFIX) as xdp_filter:
            fds["xdp-filter"] = xdp_filter
            got = interleaved(variants, rounds, run)
    finally:
        fds.pop("xdp-filter", None)
        for fd in list(fds.values()) + [floor_xdp[1], floor_tc[1]]:
            fd.close()
    xdp, tc = "ns/packet, BPF_PROG_TEST_RUN 64B UDP", "ns/packet, TC, 16 rules, none matches"
    direct = [
        ("tc_classifier_direct", tc, got["empty tc"], got["tc_classifier_direct:none"], None, GOALS["tc"], "tc_classifier"),
        ("  direct, 16th match", "ns/packet, TC, 16 rules, 16th matches", got["empty tc"], got["tc_classifier_direct:last"],
         None, GOALS["tc"], "tc_classifier"),
    ] if "tc_classifier_direct" in fds else [
        ("tc_classifier_direct", tc, None, "n/a (needs bpf_cast_to_kern_ctx, Linux 6.3)", None, None, None)]
    return [
        ("floor (XDP)", xdp, got["empty xdp"], got["floor xdp"], None, None, "xdp_counter"),
        ("xdp_counter", xdp, got["empty xdp"], got["xdp_counter"], None, GOALS["xdp"], "xdp_counter"),
        ("xdp-filter", xdp, got["empty xdp"], got["xdp-filter"], None, None, "xdp_counter"),
        ("floor (TC)", "ns/packet, TC, 64B UDP", got["empty tc"], got["floor tc"], None, None, "tc_classifier"),
        ("tc_classifier", tc, got["empty tc"], got["tc_classifier:none"], None, GOALS["tc"], "tc_classifier"),
        ("  16th matches", "ns/packet, TC, 16 rules, 16th matches", got["empty tc"], got["tc_classifier:last"],
         None, GOALS["tc"], "tc_classifier"),
    ] + direct + ([
        ("xdp_counter, baseline", xdp, got["empty xdp"], got[BASELINE + "xdp_counter"], None, None, "xdp_counter"),
        ("tc_classifier, baseline", tc, got["empty tc"], got[BASELINE + "tc_classifier:none"], None, None,
         "tc_classifier"),
    ] if baseline else []) + ([
        ("tc_classifier_direct, baseline", tc, got["empty tc"], got[BASELINE + "tc_classifier_direct:none"], None,
         None, "tc_classifier"),
    ] if BASELINE + "tc_classifier_direct" in fds else [])


# ------------------------------------------------------------------------------ tracing loops

def empty_program(prog_type, name):
    return sc.prog_load(prog_type, bpf_insn.mov64_imm(0, 0) + bpf_insn.exit_insn(), "GPL", name)


def attach_raw(fd, tracepoint):
    return sc.raw_tracepoint_open(tracepoint, fd)


def attach_tracepoint(fd, category, name, root):
    with perf_event.open_tracepoint(category, name, root) as event:
        return perf_event.link_perf_event(fd, event, "%s:%s" % (category, name))


def loop(kind, count, netns=None):
    args = [os.path.join(BUILD, "loop"), kind, str(count)] + ([netns] if netns else [])
    return float(subprocess.run(args, capture_output=True, text=True, check=True).stdout)


def traced_rows(variants, rounds, measure):
    """Interleaved rounds of ``measure()`` with each variant's programs attached, then one more
    round each with BPF statistics on (they cost two clock reads per run, so the timed rounds go
    without). Variants are {name: (programs to attach: [(fd, attach function)], programs to
    time: [fd])}. Returns ({variant: [results]}, {variant: the timed programs' summed ns per
    run, or None})."""
    def attached(name, fn):
        links = [attach(fd) for fd, attach in variants[name][0]]
        try:
            return fn()
        finally:
            for link in links:
                link.close()

    got = interleaved(list(variants), rounds, lambda name: attached(name, measure))
    own = {}
    with sc.enable_stats():
        for name, (_attach_list, timed) in variants.items():
            before = [sc.prog_info(fd) for fd in timed]
            attached(name, measure)
            after = [sc.prog_info(fd) for fd in timed]
            own[name] = sum((a["run_time_ns"] - b["run_time_ns"]) / max(1, a["run_cnt"] - b["run_cnt"])
                            for a, b in zip(after, before)) if timed else None
    return got, own


def syscall_rows(calls, rounds, baseline=False):
    enter_tp = empty_program(sc.BPF_PROG_TYPE_RAW_TRACEPOINT, "ebpft_bp_enter")
    exit_tp = empty_program(sc.BPF_PROG_TYPE_RAW_TRACEPOINT, "ebpft_bp_exit")
    enter = prog_fd("syscall_latency", "syscall_enter_tp")
    leave = prog_fd("syscall_latency", "syscall_exit_tp")
    enter_hash = prog_fd("syscall_latency_hash", "syscall_enter_tp")
    leave_hash = prog_fd("syscall_latency_hash", "syscall_exit_tp")
    on_enter = functools.partial(attach_raw, tracepoint="sys_enter")
    on_exit = functools.partial(attach_raw, tracepoint="sys_exit")
    variants = {
        "none": ([], []),
        "empty": ([(enter_tp, on_enter), (exit_tp, on_exit)], [enter_tp, exit_tp]),
        "syscall_latency": ([(enter, on_enter), (leave, on_exit)], [enter, leave]),
        "syscall_latency_hash": ([(enter_hash, on_enter), (leave_hash, on_exit)], [enter_hash, leave_hash]),
    }
    base = [prog_fd(BASELINE + "syscall_latency", p) for p in ("syscall_enter_tp", "syscall_exit_tp")] if baseline else []
    if baseline:
        variants["baseline"] = ([(base[0], on_enter), (base[1], on_exit)], base)
    for tool in bench_tools.SYSCALL_TOOLS:
        variants[tool] = ([(None, functools.partial(bench_tools.start_tool, name=tool))], [])
    try:
        got, per_event = traced_rows(variants, rounds, lambda: loop("getpid", calls))
    finally:
        for fd in [enter_tp, exit_tp, enter, leave, enter_hash, leave_hash] + base:
            fd.close()
    what, ref = "ns/getpid(), raw sys_enter+sys_exit", "syscall_latency"
    rows = [
        ("floor (2 empty)", what, got["none"], got["empty"], per_event["empty"], None, ref),
        ("syscall_latency", what, got["none"], got["syscall_latency"], per_event["syscall_latency"], GOALS["syscall"], ref),
        ("  hash (< 5.11)", what, got["none"], got["syscall_latency_hash"], per_event["syscall_latency_hash"],
         GOALS["syscall"], ref),
    ]
    if baseline:
        rows.append(("syscall_latency, baseline", what, got["none"], got["baseline"], per_event["baseline"], None, ref))
    rows += [(tool, "ns/getpid(), tracepoint raw_syscalls", got["none"], got[tool], None, None, ref)
             for tool in bench_tools.SYSCALL_TOOLS]
    if not features.has_kprobes():
        rows.append(("kprobe_syscall_latency", "ns/getpid(), kprobe x64_sys_call", None, "n/a (needs kprobes)",
                     None, None, None))
    return rows


NET_TRACEPOINTS = [("net_rx", "net", "netif_receive_skb"), ("net_tx", "net", "net_dev_xmit"),
                   ("skb_kfree", "skb", "kfree_skb"), ("tcp_retransmit", "tcp", "tcp_retransmit_skb"),
                   ("tcp_set_state", "sock", "inet_sock_set_state")]


def net_rows(iterations, rounds, baseline=False):
    root = perf_event.tracefs_root()
    if root is None:
        raise SystemExit("tracefs is not mounted (mount -t tracefs tracefs /sys/kernel/tracing)")
    netns = "%s-%s" % (NETNS_PREFIX, uuid.uuid4().hex[:8])
    subprocess.run(["ip", "netns", "add", netns], check=True)
    empties, ours, raw, btf, base = [], [], [], [], []
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        for program, category, name in NET_TRACEPOINTS:
            attach = functools.partial(attach_tracepoint, category=category, name=name, root=root)
            empties.append((empty_program(sc.BPF_PROG_TYPE_TRACEPOINT, "ebpft_bp_" + program[:7]), attach))
            ours.append((prog_fd("net_tracepoints", program), attach))
            raw.append((prog_fd("raw_net_tracepoints", program), functools.partial(attach_raw, tracepoint=name)))
            btf.append((prog_fd("btf_net_tracepoints", program), functools.partial(attach_raw, tracepoint=None)))
            if baseline:
                base.append((prog_fd(BASELINE + "btf_net_tracepoints", program), functools.partial(attach_raw, tracepoint=None)))
        variants = {
            "none": ([], []),
            "empty": (empties, [fd for fd, _a in empties[:2]]),
            "net_tracepoints": (ours, [fd for fd, _a in ours[:2]]),
            "raw_net_tracepoints": (raw, [fd for fd, _a in raw[:2]]),
            "btf_net_tracepoints": (btf, [fd for fd, _a in btf[:2]]),
        }
        if baseline:
            variants["baseline"] = (base, [fd for fd, _a in base[:2]])
        got, per_event = traced_rows(variants, rounds, lambda: loop("udp", iterations, "/run/netns/" + netns))
    finally:
        for fd, _attach in empties + ours + raw + btf + base:
            fd.close()
        subprocess.run(["ip", "netns", "delete", netns], check=False)
    # One iteration sends a packet and receives it: one net_dev_xmit and one netif_receive_skb.
    what, ref = "ns/UDP send+recv, loopback", "net_tracepoints"
    return [
        ("floor (5 empty)", what, got["none"], got["empty"], per_event["empty"], None, ref),
        ("net_tracepoints", what, got["none"], got["net_tracepoints"], per_event["net_tracepoints"], None, ref),
        ("  raw (< 5.15)", what, got["none"], got["raw_net_tracepoints"], per_event["raw_net_tracepoints"], None, ref),
        ("  tp_btf", what, got["none"], got["btf_net_tracepoints"], per_event["btf_net_tracepoints"], None, ref),
    ] + ([("  tp_btf, baseline", what, got["none"], got["baseline"], per_event["baseline"], None, ref)] if baseline else [])


# ------------------------------------------------------------------------------ main

def mitigation_note():
    path = "/sys/devices/system/cpu/vulnerabilities/spec_rstack_overflow"
    try:
        with open(path) as f:
            return "spec_rstack_overflow: " + f.read().strip()
    except OSError:
        return ""


def print_table(rows):
    """One line per row: medians without and with, their difference ("cost"), the difference of the
    fastest rounds, the programs' own time, the goal, and the cost as a multiple of the row named
    last in the tuple (our program of that kind)."""
    costs = dict((row[0], median(row[3]) - median(row[2])) for row in rows if not isinstance(row[3], str))
    header = ("program", "measurement", "without", "with", "cost", "min cost", "program", "goal", "ratio")
    print("%-22s %-37s %8s %8s %8s %8s %8s %7s %7s" % header)
    for name, what, without, with_prog, own, goal, ref in rows:
        if isinstance(with_prog, str):
            print("%-22s %-37s %s" % (name, what, with_prog))
            continue
        ratio = costs[name] / costs[ref] if costs.get(ref, 0) > 0 else float("nan")
        print("%-22s %-37s %8.1f %8.1f %+8.1f %+8.1f %8s %7s %6.2fx" % (
            name, what, median(without), median(with_prog), costs[name], min(with_prog) - min(without),
            "%.1f" % own if own else "-", "<= +%d" % goal if goal else "-", ratio))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--repeat", type=int, default=1000000, help="BPF_PROG_TEST_RUN repeat (>= 1e6)")
    parser.add_argument("--runs", type=int, default=9, help="interleaved BPF_PROG_TEST_RUN rounds per variant")
    parser.add_argument("--rounds", type=int, default=25, help="interleaved getpid loop rounds per variant")
    parser.add_argument("--net-rounds", type=int, default=100, help="interleaved UDP loop rounds per variant")
    parser.add_argument("--calls", type=int, default=50000, help="getpid() calls per round")
    parser.add_argument("--packets", type=int, default=3000, help="UDP round trips per round")
    parser.add_argument("--only", choices=("packets", "syscalls", "net"), help="one part of the table")
    parser.add_argument("--baseline", metavar="DIR", help="also time %s.bpf.o from DIR (another version)"
                        % ", ".join(BASELINE_OBJECTS))
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark loads and attaches BPF programs")
    if bench_tools.missing_tools():
        raise SystemExit("not installed: %s (make setup installs them)" % ", ".join(bench_tools.missing_tools()))
    build()
    bpffs.remove_tree(PIN_ROOT)
    try:
        for name in ("xdp_counter", "tc_classifier", "syscall_latency", "net_tracepoints", "syscall_latency_hash",
                     "raw_net_tracepoints", "btf_net_tracepoints") + (("tc_classifier_direct",) if features.has_kern_ctx() else ()):
            ProgramBackend(name, PIN_ROOT).present(os.path.join(BUILD, name + ".bpf.o"))
        for name in (BASELINE_OBJECTS + (("tc_classifier_direct",) if features.has_kern_ctx() else ())
                     if args.baseline else ()):
            ProgramBackend(BASELINE + name, PIN_ROOT).present(os.path.join(args.baseline, name + ".bpf.o"))
        base = bool(args.baseline)
        rows = packet_rows(args.repeat, args.runs, base) if args.only in (None, "packets") else []
        rows += syscall_rows(args.calls, args.rounds, base) if args.only in (None, "syscalls") else []
        rows += net_rows(args.packets, args.net_rounds, base) if args.only in (None, "net") else []
    finally:
        bpffs.remove_tree(PIN_ROOT)
    print("%s, %s, %d CPUs; %s" % (platform.node(), os.uname().release, os.cpu_count(), mitigation_note()))
    print("medians of %d (test runs) / %d (getpid) / %d (UDP) interleaved rounds; 'min cost': difference of the "
          "fastest rounds (other load only adds time); 'program': the programs' own ns per event (BPF stats, with "
          "their two clock reads)" % (args.runs, args.rounds, args.net_rounds))
    print_table(rows)


if __name__ == "__main__":
    main()
