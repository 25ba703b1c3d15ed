"""Runs inside a lab guest (Python 3.9+, prometheus-client): scrapes node_exporter, generates
traffic, waits until the eBPF exporter has written the textfile twice since the traffic ended,
scrapes again and prints what changed, as JSON, for a scenario's verify to assert on (and for
the demos' table, scripts/demo_table.py).

    guest_probe.py [--udp [NETNS:]ADDR:PORT:COUNT ...] [--ping [NETNS:]ADDR:COUNT ...] [--calls N]
                   [--url URL | --exporter COMMAND --config FILE] [--buckets]

--udp sends COUNT datagrams to ADDR:PORT (from network namespace NETNS when given, through
nsenter); --ping sends COUNT ICMP echo requests (10 ms apart); --calls makes this process call getpid (through libc) and
sleep (libc's nanosleep: Python's time.sleep uses select before 3.11) N times each. --exporter reads the metrics from one pass of the exporter
command (`COMMAND --once --stdout --config FILE`) before and after the traffic instead of
scraping node_exporter (nothing to wait for: each pass reads the maps). --buckets keeps the
histograms' buckets. Output:
  {"boot_time", "started", "ended", "status", "pid", "sent": {"udp": n, "ping": n, "calls": n},
   "before": SAMPLES, "after": SAMPLES, "delta": SAMPLES}
SAMPLES: {sample name: [{label: value, ..., "value": number}]} of the ebpf_* and node_textfile_*
families (histogram buckets only with --buckets); delta holds after - before of every sample in
after. status is the scrape's HTTP status, or the exporter command's exit status.
"""
import argparse
import ctypes
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

_LIBC = ctypes.CDLL(None, use_errno=True)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _nanosleep(nanoseconds):
    """One sleep through libc's nanosleep (the kernel's do_nanosleep), on every Python."""
    _LIBC.nanosleep(ctypes.byref(_Timespec(0, nanoseconds)), None)


FAMILIES = ("ebpf_", "node_textfile_")
PASS_TIMEOUT = 90.0


def samples_of(text, buckets=False):
    """SAMPLES of a text exposition."""
    samples = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(FAMILIES):
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and not buckets:
                continue
            samples.setdefault(sample.name, []).append(dict(sample.labels, value=sample.value))
    return samples


def scrape(url, buckets=False):
    """(HTTP status, SAMPLES) of one scrape."""
    with urllib.request.urlopen(url, timeout=20) as response:
        status, text = response.status, response.read().decode()
    return status, samples_of(text, buckets)


def exporter_pass(command, config, buckets=False):
    """(exit status, SAMPLES) of one pass of the exporter command, printed."""
    out = subprocess.run([command, "--once", "--stdout", "--config", config], stdout=subprocess.PIPE, check=False,
                         universal_newlines=True)
    return out.returncode, samples_of(out.stdout, buckets)


def _key(entry):
    return tuple(sorted((k, v) for k, v in entry.items() if k != "value"))


def delta(before, after):
    """after - before per sample; a sample that appeared in between counts from 0."""
    out = {}
    for name, entries in after.items():
        old = dict((_key(e), e["value"]) for e in before.get(name, []))
        out[name] = [dict(e, value=e["value"] - old.get(_key(e), 0)) for e in entries]
    return out


def last_pass(url):
    _status, samples = scrape(url)
    values = [e["value"] for e in samples.get("ebpf_exporter_last_success_timestamp_seconds", [])]
    return values[0] if values else 0.0


def wait_passes(url, after, count=2):
    """Waits until the exporter has finished `count` passes that ended after `after` (the
    second of two started after the traffic ended)."""
    seen = set()
    deadline = time.monotonic() + PASS_TIMEOUT
    while time.monotonic() < deadline:
        stamp = last_pass(url)
        if stamp > after:
            seen.add(stamp)
            if len(seen) >= count:
                return stamp
        time.sleep(0.5)
    raise SystemExit("the exporter finished no %d passes within %d s after the traffic (last success %s)"
                     % (count, PASS_TIMEOUT, last_pass(url)))


def send_udp(addr, port, count):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for seq in range(count):
            sock.sendto(b"probe %d" % seq, (addr, port))
            if seq % 50 == 49:
                time.sleep(0.01)  # let the receiving side drain its queue


def checksum(data):
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def send_ping(addr, count):
    """ICMP echo requests to ``addr``, one every 10 ms, as ping -i 0.01 sends them (raw socket: no
    ping command needed); fails when no reply came back."""
    ident = os.getpid() & 0xFFFF
    replies = 0
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.settimeout(0.01)
        for seq in range(count):
            header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            payload = b"probe %d" % seq
            sock.sendto(struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload, (addr, 0))
            replies += _echo_replies(sock, ident, time.monotonic() + 0.01)
        replies += _echo_replies(sock, ident, time.monotonic() + 2.0, count - replies)
    if not replies:
        raise SystemExit("no echo reply from %s" % addr)


def _echo_replies(sock, ident, deadline, wanted=None):
    """The echo replies to ``ident`` received until ``deadline`` (or ``wanted`` of them)."""
    got = 0
    while time.monotonic() < deadline and (wanted is None or got < wanted):
        try:
            packet = sock.recv(2048)
        except socket.timeout:
            continue
        icmp = packet[(packet[0] & 0x0F) * 4:]
        if icmp[:1] == b"\0" and struct.unpack("!H", icmp[4:6])[0] == ident:
            got += 1
    return got


def _in_netns(netns, argv):
    if netns:
        argv = ["nsenter", "--net=/run/netns/" + netns] + argv
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def _split(spec, fields):
    parts = spec.split(":")
    if len(parts) == fields:
        parts.insert(0, "")
    if len(parts) != fields + 1:
        raise SystemExit("cannot read %r" % spec)
    return parts


def boot_time():
    with open("/proc/stat") as f:
        return float(next(line.split()[1] for line in f if line.startswith("btime ")))


def main():
    if sys.argv[1:2] == ["send"]:  # the sending halves, run inside a network namespace
        send_udp(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    if sys.argv[1:2] == ["ping"]:
        send_ping(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--udp", action="append", default=[], metavar="[NETNS:]ADDR:PORT:COUNT")
    parser.add_argument("--ping", action="append", default=[], metavar="[NETNS:]ADDR:COUNT")
    parser.add_argument("--calls", type=int, default=0, metavar="N")
    parser.add_argument("--url", default="http://127.0.0.1:9100/metrics")
    parser.add_argument("--exporter", metavar="COMMAND")
    parser.add_argument("--config", default="/etc/ebpf-observability/exporter.yml")
    parser.add_argument("--buckets", action="store_true")
    args = parser.parse_args()
    started = time.time()
    if args.exporter:
        _status, before = exporter_pass(args.exporter, args.config, args.buckets)
    else:
        wait_passes(args.url, 0, count=1)
        _status, before = scrape(args.url, args.buckets)
    sent = {"udp": 0, "ping": 0, "calls": args.calls}
    for _call in range(args.calls):
        os.getpid()
        _nanosleep(100000)
    for spec in args.udp:
        netns, addr, port, count = _split(spec, 3)
        _in_netns(netns, [sys.executable, __file__, "send", addr, port, count])
        sent["udp"] += int(count)
    for spec in args.ping:
        netns, addr, count = _split(spec, 2)
        _in_netns(netns, [sys.executable, __file__, "ping", addr, count])
        sent["ping"] += int(count)
    ended = time.time()
    if args.exporter:
        status, after = exporter_pass(args.exporter, args.config, args.buckets)
    else:
        wait_passes(args.url, ended)
        status, after = scrape(args.url, args.buckets)
    json.dump({"boot_time": boot_time(), "started": started, "ended": ended, "status": status, "pid": os.getpid(), "sent": sent,
               "before": before, "after": after, "delta": delta(before, after)}, sys.stdout)


if __name__ == "__main__":
    main()
