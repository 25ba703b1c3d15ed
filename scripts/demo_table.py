"""The demos' table (make demo, make demo-local): what each host's exporter counted during this
run's traffic, in plain text, one column per host.

    python3 scripts/demo_table.py RECORD.json ...

A record is what playbooks/tasks/demo_record.yml writes for one host: {"host", "kernel",
"interface", "tc_api", "xdp_mode", "attachments", "reach", "probe"}, where probe is the output of
molecule/shared/guest_probe.py --buckets (the exporter's samples before and after the traffic and
their difference). Every traffic row is a difference (after - before), never a total since the
first deploy; the syscall latency is read from the histogram's buckets as percentiles.
"""
import argparse
import json
import math

XDP = "ebpf_exporter_xdp_packets_total"
TC = "ebpf_exporter_tc_class_packets_total"
SYSCALLS = "ebpf_exporter_syscalls_total"
LATENCY = "ebpf_exporter_syscall_latency_seconds_bucket"
RX, TX = "ebpf_exporter_net_rx_packets_total", "ebpf_exporter_net_tx_packets_total"
PERCENTILES = (50, 90, 99)


def total(samples, name, **labels):
    """The sum of the values of ``name`` whose labels hold ``labels``; None without any sample."""
    found = [s["value"] for s in samples.get(name, []) if all(s.get(k) == v for k, v in labels.items())]
    return sum(found) if found else None


def quantile(q, buckets):
    """The q-quantile (0..1) of a histogram given as [(upper bound, cumulative count)], with
    linear interpolation inside the bucket it falls in (as Prometheus' histogram_quantile); the
    lower bound of the first bucket is 0. None when the histogram is empty."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = upper, count
    return lower


def latency_buckets(samples):
    """[(upper bound, cumulative count)] of every syscall's latency histogram added up."""
    added = {}
    for sample in samples.get(LATENCY, []):
        bound = float(sample["le"])
        added[bound] = added.get(bound, 0.0) + sample["value"]
    return sorted(added.items())


def duration(seconds):
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return "%.3g %s" % (seconds / scale, unit)
    return "%.3g ns" % (seconds * 1e9)


def count(value):
    return "-" if value is None else "{:,}".format(int(round(value)))


def pair(first, second):
    return "%s / %s" % (count(first), count(second))


def classes(records):
    """The TC classes declared by name, and any other that counted packets during the run, in
    order of appearance, "default" last."""
    names = []
    for record in records:
        for sample in record["probe"]["delta"].get(TC, []):
            if sample["class"] not in names and (not sample["class"].isdigit() or sample["value"]):
                names.append(sample["class"])
    return sorted(names, key=lambda name: name == "default")


def rows(records):
    """[(row name, [cell per host])]; a row name None is a section heading."""
    out = [
        ("kernel", [r["kernel"] for r in records]),
        ("programs loaded / attachments", [pair(total(r["probe"]["after"], "ebpf_programs_loaded"), r["attachments"])
                                           for r in records]),
        ("TC API / XDP mode", ["%s / %s" % (r["tc_api"], r["xdp_mode"]) for r in records]),
        ("sent: pings / datagrams", [pair(r["probe"]["sent"]["ping"], r["probe"]["sent"]["udp"]) for r in records]),
        (None, "this run's traffic (exporter counters after - before)"),
        ("XDP frames into %s" % "/".join(sorted(set(r["interface"] for r in records))),
         [count(total(r["probe"]["delta"], XDP, interface=r["interface"])) for r in records]),
    ]
    for name in classes(records):
        out.append(("TC class %s in / out" % name, [
            pair(total(r["probe"]["delta"], TC, **{"class": name, "direction": "ingress"}),
                 total(r["probe"]["delta"], TC, **{"class": name, "direction": "egress"})) for r in records]))
    out.append(("net_rx / net_tx events", [pair(total(r["probe"]["delta"], RX, interface=r["interface"]),
                                                total(r["probe"]["delta"], TX, interface=r["interface"]))
                                           for r in records]))
    out.append(("syscalls (all processes)", [count(total(r["probe"]["delta"], SYSCALLS)) for r in records]))
    for percentile in PERCENTILES:
        out.append(("syscall latency p%d" % percentile,
                    [duration(quantile(percentile / 100.0, latency_buckets(r["probe"]["delta"]))) for r in records]))
    return out


def render(records):
    """The table as lines of plain text."""
    table = rows(records)
    width = max(len(name) for name, _cells in table if name is not None)
    cells = [max([len(r["host"])] + [len(row[i]) for name, row in table if name is not None]) for i, r in enumerate(records)]
    lines = [("%-*s  %s" % (width, "", "  ".join("%-*s" % (w, r["host"]) for w, r in zip(cells, records)))).rstrip()]
    for name, row in table:
        if name is None:
            lines.append(row)
            continue
        lines.append(("%-*s  %s" % (width, name, "  ".join("%-*s" % (w, c) for w, c in zip(cells, row)))).rstrip())
    return lines + [
        "",
        "XDP sees every frame on the interface; TC and net_rx see packets after GRO, which merges the",
        "segments of a TCP stream into one. Latency percentiles come from the exp2 histogram of every",
        "system call on the host (blocking calls such as epoll_wait included).",
    ] + ["Log in to %s: %s" % (r["host"], r["reach"]) for r in records if r.get("reach")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("records", nargs="+", metavar="RECORD.json")
    args = parser.parse_args()
    records = []
    for path in args.records:
        with open(path) as f:
            records.append(json.load(f))
    print("\n".join(render(sorted(records, key=lambda r: r["host"]))))


if __name__ == "__main__":
    main()
