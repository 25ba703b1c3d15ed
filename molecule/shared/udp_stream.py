"""Runs inside a lab guest: a steady stream of UDP datagrams from a network namespace to
receivers in this one, counted at both ends, to prove what an XDP program let through.

    udp_stream.py --netns NETNS --to ADDR --port PORT [--port PORT ...] --count N [--rate PER_SECOND]

Binds a socket on ADDR:PORT for every port here, sends N datagrams to each port from NETNS (an
`ip netns exec` child), interleaved and paced at the rate given, waits a second for stragglers
and prints {"sent": {port: n}, "received": {port: n}, "seconds": s} as JSON.
"""
import argparse
import json
import select
import socket
import subprocess
import sys
import time

SENDER = """
import socket, sys, time
to, ports, count, rate = sys.argv[1], [int(p) for p in sys.argv[2].split(",")], int(sys.argv[3]), float(sys.argv[4])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.monotonic()
for i in range(count):
    for port in ports:
        sock.sendto(b"lab %d" % i, (to, port))
    delay = start + (i + 1) / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--netns", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, default=200.0)
    args = parser.parse_args()
    receivers = {}
    for port in args.port:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((args.to, port))
        sock.setblocking(False)
        receivers[sock] = port
    received = dict((port, 0) for port in args.port)
    started = time.monotonic()
    sender = subprocess.Popen(["ip", "netns", "exec", args.netns, sys.executable, "-c", SENDER, args.to,
                               ",".join(str(p) for p in args.port), str(args.count), str(args.rate)])
    quiet_until = None
    while True:
        ready, _w, _x = select.select(list(receivers), [], [], 0.1)
        for sock in ready:
            while True:
                try:
                    sock.recv(2048)
                except BlockingIOError:
                    break
                received[receivers[sock]] += 1
        if sender.poll() is not None:
            quiet_until = quiet_until or time.monotonic() + 1.0
            if time.monotonic() > quiet_until:
                break
    if sender.returncode:
        sys.exit("the sender in %s failed (%d)" % (args.netns, sender.returncode))
    print(json.dumps({"sent": dict((port, args.count) for port in args.port), "received": received,
                      "seconds": round(time.monotonic() - started, 3)}))


if __name__ == "__main__":
    main()
