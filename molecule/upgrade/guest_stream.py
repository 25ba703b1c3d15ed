"""Runs inside the upgrade scenario's guest: two steady UDP streams over the veth pair (lab1 ->
lab0 port 7001, lab0 -> lab1 port 7002) that keep running while a playbook upgrades the programs,
and the pinned counters before and after.

    guest_stream.py start     read the counters, start receivers and senders (systemd-run)
    guest_stream.py stop      stop the senders, let the receivers drain, stop them, read the
                              counters; prints the result as JSON:
    {"in": STREAM, "out": STREAM, "before": COUNTERS, "after": COUNTERS}
    STREAM: {"sent", "received", "missing", "duplicated", "reordered"}
    COUNTERS: {"xdp_udp_lab0": XDP udp packets on lab0, "class_in": tc class 5 ingress,
               "class_out": tc class 6 egress}, read from the pinned maps with bpftool

Each datagram carries a sequence number; a receiver counts what arrives, and what is missing,
duplicated or out of order. Sender and receiver processes report their counts to STATE when
stopped (SIGTERM); a receiver first reads what is still queued.
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

STATE = "/run/lab-stream"
PIN_ROOT = "/sys/fs/bpf/ebpf_observability"
PEER_NS = "/run/netns/labpeer"
RATE = 100  # datagrams per second and stream
# stream: (sender's network namespace, receiver's, destination address, port)
STREAMS = {"in": (PEER_NS, None, "198.51.100.1", 7001), "out": (None, PEER_NS, "198.51.100.2", 7002)}
CLASS_SLOTS = {"class_in": 5 | 0 << 8, "class_out": 6 | 1 << 8}  # class id | direction << 8
SEQ = struct.Struct("!Q")

_stopping = []


def _on_term(_signum, _frame):
    _stopping.append(True)


def _report(name, counts):
    with open(os.path.join(STATE, name + ".json.tmp"), "w") as f:
        json.dump(counts, f)
    os.replace(os.path.join(STATE, name + ".json.tmp"), os.path.join(STATE, name + ".json"))


def send(name, addr, port):
    sent = 0
    started = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        while not _stopping:
            sock.sendto(SEQ.pack(sent), (addr, port))
            sent += 1
            pause = started + sent / RATE - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    _report(name + "-sent", {"sent": sent})


def receive(name, port):
    counts = {"received": 0, "missing": 0, "duplicated": 0, "reordered": 0}
    seen = set()
    expected = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: ride out a busy guest
        sock.bind(("0.0.0.0", port))
        sock.settimeout(0.2)
        _report(name + "-ready", {})
        while True:
            try:
                seq = SEQ.unpack(sock.recv(64)[:SEQ.size])[0]
            except socket.timeout:
                if _stopping:
                    break  # stopped, and nothing more queued
                continue
            counts["received"] += 1
            if seq in seen:
                counts["duplicated"] += 1
            elif seq < expected:
                counts["reordered"] += 1
            seen.add(seq)
            expected = max(expected, seq + 1)
    counts["missing"] = expected - len(seen)
    counts["last"] = expected - 1
    _report(name + "-received", counts)


def _bpftool(*args):
    return json.loads(subprocess.run(["bpftool", "-j"] + list(args), check=True, capture_output=True, text=True).stdout)


def _total(values):
    """Sum over CPUs of the first u64 of a per-CPU value in bpftool's raw form (the packets of a
    {packets, bytes} value, or the one counter)."""
    return sum(int.from_bytes(bytes(int(b, 16) for b in v["value"][:8]), "little") for v in values)


def _index(number):
    return ["%d" % b for b in number.to_bytes(4, "little")]


def _xdp_udp(ifindex):
    """xdp_counter's IPv4 UDP packets on ifindex: in its slot of the array (slot ifindex % 64,
    ethertype class 1, L4 class 3) when the interface holds the slot, and in the hash."""
    maps = PIN_ROOT + "/xdp_counter/maps/"
    slot = _bpftool("map", "lookup", "pinned", maps + "xdp_slots", "key", *_index(ifindex % 64))
    total = 0
    if int.from_bytes(bytes(int(b, 16) for b in slot["value"][4:8]), "little") == ifindex:
        index = (ifindex % 64) << 5 | 1 << 3 | 3
        total += _total(_bpftool("map", "lookup", "pinned", maps + "xdp_slot_traffic", "key", *_index(index))["values"])
    for entry in _bpftool("map", "dump", "pinned", maps + "xdp_traffic"):
        key = bytes(int(b, 16) for b in entry["key"])
        if int.from_bytes(key[0:4], "little") == ifindex and int.from_bytes(key[6:8], "little") == socket.IPPROTO_UDP:
            total += _total(entry["values"])
    return total


def counters():
    out = {"xdp_udp_lab0": _xdp_udp(socket.if_nametoindex("lab0"))}
    for name, slot in CLASS_SLOTS.items():
        out[name] = _total(_bpftool("map", "lookup", "pinned", PIN_ROOT + "/tc_classifier/maps/tc_class_packets_total",
                                    "key", *_index(slot))["values"])
    return out


def _unit(role, name):
    return "lab-stream-%s-%s" % (name, role)


def _spawn(role, name, netns, *args):
    argv = ["systemd-run", "--quiet", "--collect", "--unit", _unit(role, name)]
    if netns:
        argv += ["nsenter", "--net=" + netns]
    subprocess.run(argv + [sys.executable, os.path.join(STATE, "guest_stream.py"), role, name] + list(args), check=True)


def _wait_for(path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit("%s did not appear within %d s" % (path, timeout))
        time.sleep(0.1)


def start():
    shutil.rmtree(STATE, ignore_errors=True)
    os.makedirs(STATE)
    shutil.copy(os.path.abspath(__file__), os.path.join(STATE, "guest_stream.py"))
    with open(os.path.join(STATE, "before.json"), "w") as f:
        json.dump(counters(), f)
    for name, (_sender_ns, receiver_ns, _addr, port) in STREAMS.items():
        _spawn("receive", name, receiver_ns, str(port))
        _wait_for(os.path.join(STATE, name + "-ready.json"))
    for name, (sender_ns, _receiver_ns, addr, port) in STREAMS.items():
        _spawn("send", name, sender_ns, addr, str(port))


def stop():
    for name in STREAMS:
        subprocess.run(["systemctl", "stop", _unit("send", name)], check=True)
    time.sleep(0.5)  # datagrams on their way reach the receivers' queues
    for name in STREAMS:
        subprocess.run(["systemctl", "stop", _unit("receive", name)], check=True)
    result = {"after": counters()}
    with open(os.path.join(STATE, "before.json")) as f:
        result["before"] = json.load(f)
    for name in STREAMS:
        for part in ("sent", "received"):
            path = os.path.join(STATE, "%s-%s.json" % (name, part))
            _wait_for(path, timeout=10)
            with open(path) as f:
                result.setdefault(name, {}).update(json.load(f))
    json.dump(result, sys.stdout)


def main():
    signal.signal(signal.SIGTERM, _on_term)
    command = sys.argv[1]
    if command == "send":
        send(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif command == "receive":
        receive(sys.argv[2], int(sys.argv[3]))
    elif command == "start":
        start()
    elif command == "stop":
        stop()
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
