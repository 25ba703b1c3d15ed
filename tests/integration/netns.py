"""Network namespaces and veth pairs for tests, and UDP traffic that never leaves them.

``veth_netns_pair(prefix)`` makes namespaces ``<prefix>-<random>-a`` and ``-b`` joined by a veth
pair and runs the calling thread inside A meanwhile (setns on this thread only: bpffs stays
visible, unlike with ``ip netns exec``). With ``addresses=True`` both ends get IPv4 addresses
of 192.0.2.0/30 (TEST-NET-1), static neighbour entries and no IPv6, so the only packets on the wire are the
ones a test sends. Everything is deleted on the way out.
"""
import contextlib
import ctypes
import os
import socket
import subprocess
import threading
import time
import types
import uuid

CLONE_NEWNET = 0x40000000
ADDR_A, ADDR_B = "192.0.2.1", "192.0.2.2"
_LIBC = ctypes.CDLL(None, use_errno=True)


def _setns(fd):
    if _LIBC.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def netns_entered(name):
    """Run the calling thread in network namespace `name` for the duration."""
    return netns_path_entered("/run/netns/" + name)


@contextlib.contextmanager
def netns_path_entered(path):
    """Run the calling thread in the network namespace at `path` (/run/netns/X, /proc/P/ns/net)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def ip(*args):
    return subprocess.run(("ip",) + args, check=True, capture_output=True, text=True).stdout


def _mac(ns, ifname):
    return ip("-n", ns, "-br", "link", "show", ifname).split()[2]


@contextlib.contextmanager
def veth_netns_pair(prefix, ifnames=None, addresses=False):
    """Namespaces A and B joined by a veth pair (``ifnames``, default <prefix>0 in A and
    <prefix>1 in B), both up; the calling thread is in A meanwhile."""
    tag = "%s-%s" % (prefix, uuid.uuid4().hex[:8])
    ns_a, ns_b = tag + "-a", tag + "-b"
    if_a, if_b = ifnames or (prefix + "0", prefix + "1")
    created = []
    try:
        for ns in (ns_a, ns_b):
            ip("netns", "add", ns)
            created.append(ns)
        ip("-n", ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", ns_b)
        if addresses:
            for ns, ifname, addr, peer, peer_if, peer_ns in ((ns_a, if_a, ADDR_A, ADDR_B, if_b, ns_b),
                                                             (ns_b, if_b, ADDR_B, ADDR_A, if_a, ns_a)):
                subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                                "net.ipv6.conf.default.disable_ipv6=1"], check=True, capture_output=True)
                ip("-n", ns, "addr", "add", addr + "/30", "dev", ifname)
                ip("-n", ns, "neigh", "add", peer, "lladdr", _mac(peer_ns, peer_if), "dev", ifname, "nud", "permanent")
        ip("-n", ns_a, "link", "set", if_a, "up")
        ip("-n", ns_b, "link", "set", if_b, "up")
        with netns_entered(ns_a):
            yield types.SimpleNamespace(ns=ns_a, peer_ns=ns_b, ifname=if_a, peer_ifname=if_b, addr=ADDR_A, peer_addr=ADDR_B)
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)


def socket_in(ns, kind=socket.SOCK_DGRAM):
    """An IPv4 socket that belongs to namespace `ns` (created there, usable from anywhere)."""
    with netns_entered(ns):
        return socket.socket(socket.AF_INET, kind)


class UdpStream:
    """A steady UDP stream from namespace ``src_ns`` to ``dst_addr``:``port`` (received by a
    socket in ``dst_ns``), counted at both ends. ``start()``, ``stop()`` and read ``sent`` /
    ``received``."""

    def __init__(self, src_ns, dst_ns, dst_addr, port=7777, interval=0.0002):
        self.tx = socket_in(src_ns)
        self.rx = socket_in(dst_ns)
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.rx.bind(("0.0.0.0", port))
        self.rx.settimeout(0.2)
        self.dst = (dst_addr, port)
        self.interval = interval
        self.sent = 0
        self.received = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send), threading.Thread(target=self._recv)]

    def _send(self):
        while not self._stop.is_set():
            self.tx.sendto(b"ebpft-at", self.dst)
            self.sent += 1
            if self.interval:
                self._stop.wait(self.interval)

    def _recv(self):
        while True:
            try:
                self.rx.recv(64)
                self.received += 1
            except socket.timeout:
                if self._stop.is_set():
                    return

    def wait_received(self, count, timeout=5.0):
        """Wait until ``count`` packets have arrived (False after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while self.received < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True

    def burst(self, count):
        """Send ``count`` packets now (no thread) and wait until they have arrived."""
        for _packet in range(count):
            self.tx.sendto(b"ebpft-at", self.dst)
        got = 0
        while got < count:
            try:
                self.rx.recv(64)
                got += 1
            except socket.timeout:
                break
        return got

    def start(self):
        self._threads[1].start()
        self._threads[0].start()
        return self

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            if thread.ident is not None:
                thread.join()
        self.tx.close()
        self.rx.close()
