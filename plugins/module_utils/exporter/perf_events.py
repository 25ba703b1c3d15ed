# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Counters of events a program sends through a BPF_MAP_TYPE_PERF_EVENT_ARRAY, counted in user
space as they arrive (ebpf_exporter's ``perf_event_array: true`` counters).

:class:`PerfEventCounter` opens one perf buffer per online CPU (a PERF_COUNT_SW_BPF_OUTPUT
software event, mmapped), puts it in the pinned map at the CPU's index, and keeps the map open
for as long as it reads: the kernel takes a buffer out of the map when the file that put it
there is closed. Each event's first ``key_size`` bytes are its key; the counter keeps a count
per distinct key and the events the kernel could not store (its PERF_RECORD_LOST records).
The exporter turns the counts into a family like a map's entries. :class:`PerfReaderThread`
drains every counter continuously for the long-running exporter; ``--once`` reads what is
pending when its pass runs.

Putting buffers in the map needs the map pin opened read-write (--grant-access gives the
exporter's group write permission on PERF_EVENT_ARRAY pins) and a CPU-wide perf event, which
needs CAP_PERFMON (or kernel.perf_event_paranoid <= 0). One reader owns a map's buffers at a
time: another one (a second exporter, ``--once`` beside the service) takes them over.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import mmap
import select
import struct
import threading

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import perf_event
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.metrics_config import key_size
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import (
    VALUE_SIZE, MapSnapshot, MetricFamily,
)

PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_BPF_OUTPUT = 10
PERF_SAMPLE_RAW = 1 << 10
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
DATA_HEAD, DATA_TAIL = 1024, 1032  # offsets in struct perf_event_mmap_page
PAGES = 64  # per CPU, a power of two (ebpf_exporter: 1024)
ONLINE_CPUS = "/sys/devices/system/cpu/online"
_HEADER = struct.Struct("=IHH")
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")


def online_cpus(path=ONLINE_CPUS):
    """The online CPU numbers ("0-3,6" -> [0, 1, 2, 3, 6])."""
    with open(path) as handle:
        text = handle.read().strip()
    cpus = []
    for part in text.split(","):
        first, _sep, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


class _Ring:
    """One CPU's perf buffer: the perf event and its mapping."""

    def __init__(self, cpu, what, pages):
        attr = perf_event.PerfEventAttr(type=PERF_TYPE_SOFTWARE, config=PERF_COUNT_SW_BPF_OUTPUT,
                                        sample_type=PERF_SAMPLE_RAW, sample_period=1, wakeup_events=1)
        self.event = perf_event.perf_event_open(attr, what, pid=-1, cpu=cpu, hints={
            1: "CPU-wide perf events need CAP_PERFMON (or kernel.perf_event_paranoid <= 0)",
            13: "CPU-wide perf events need CAP_PERFMON (or kernel.perf_event_paranoid <= 0)"})
        self.page = mmap.PAGESIZE
        self.size = pages * self.page
        try:
            self.mm = mmap.mmap(self.event.fd, self.page + self.size, mmap.MAP_SHARED,
                                mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, ValueError) as exc:
            self.event.close()
            raise BpfError("cannot map the perf buffer of %s: %s" % (what, exc))

    def _bytes(self, position, length):
        start = self.page + position % self.size
        end = start + length
        if end <= self.page + self.size:
            return self.mm[start:end]
        split = self.page + self.size - start
        return self.mm[start:start + split] + self.mm[self.page:self.page + length - split]

    def drain(self, key_size, counts):
        """Count the pending events into ``counts``; returns the events the kernel lost."""
        head = _U64.unpack_from(self.mm, DATA_HEAD)[0]
        tail = _U64.unpack_from(self.mm, DATA_TAIL)[0]
        lost = 0
        while tail < head:
            kind, _misc, size = _HEADER.unpack(self._bytes(tail, _HEADER.size))
            if size < _HEADER.size:
                break  # never written so by the kernel: stop rather than loop
            if kind == PERF_RECORD_SAMPLE:
                raw_size = _U32.unpack(self._bytes(tail + 8, 4))[0]
                key = self._bytes(tail + 12, min(raw_size, key_size))
                counts[key] = counts.get(key, 0) + 1
            elif kind == PERF_RECORD_LOST:
                lost += _U64.unpack(self._bytes(tail + 16, 8))[0]
            tail += size
        _U64.pack_into(self.mm, DATA_TAIL, tail)
        return lost

    def close(self):
        self.mm.close()
        self.event.close()


class PerfEventCounter:
    """Counts the events of the PERF_EVENT_ARRAY pinned at ``path`` by their first ``key_size``
    bytes. ``counts`` ({key bytes: events}) and ``lost`` are read under ``lock``."""

    def __init__(self, path, key_size, pages=PAGES, cpus=None):
        self.path = path
        self.key_size = key_size
        self.counts = {}
        self.lost = 0
        self.lock = threading.Lock()
        self.rings = []
        self.map_fd = sc.obj_get(path)
        try:
            info = sc.map_info(self.map_fd)
            if info["type_name"] != "perf_event_array":
                raise BpfError("%s is a %s map, not a perf_event_array" % (path, info["type_name"]))
            for cpu in online_cpus() if cpus is None else cpus:
                if cpu >= info["max_entries"]:
                    continue
                ring = _Ring(cpu, "the perf buffer of %s on CPU %d" % (path, cpu), pages)
                self.rings.append(ring)
                sc.map_update(self.map_fd, _U32.pack(cpu), _U32.pack(ring.event.fd))
        except BaseException:
            self.close()
            raise

    def fds(self):
        return [ring.event.fd for ring in self.rings]

    def drain(self):
        with self.lock:
            for ring in self.rings:
                self.lost += ring.drain(self.key_size, self.counts)

    def take(self, reset=False):
        """(counts, lost) after draining what is pending; ``reset`` starts the counts anew."""
        self.drain()
        with self.lock:
            counts = dict(self.counts)
            if reset:
                self.counts.clear()
            return counts, self.lost

    def close(self):
        for ring in self.rings:
            ring.close()
        self.rings = []
        if self.map_fd is not None:
            self.map_fd.close()
            self.map_fd = None


class PerfReaderThread(threading.Thread):
    """Drains the counters as their events arrive, until stop()."""

    def __init__(self, counters, timeout=0.2):
        threading.Thread.__init__(self, name="perf-event-readers", daemon=True)
        self.counters = counters
        self.timeout = timeout
        self.stopping = threading.Event()

    def run(self):
        poller = select.poll()
        owner = {}
        for counter in self.counters:
            for fd in counter.fds():
                poller.register(fd, select.POLLIN)
                owner[fd] = counter
        while not self.stopping.is_set():
            ready = poller.poll(self.timeout * 1000)
            for counter in set(owner[fd] for fd, _events in ready):
                counter.drain()

    def stop(self):
        self.stopping.set()
        if self.is_alive():
            self.join()


class PerfCounters:
    """The exporter's perf_event_array counters, one per (object, metric), opened at their first
    pass; ``continuous`` (the long-running exporter) drains them in a thread between passes."""

    def __init__(self, clock):
        self.clock = clock
        self.counters = {}
        self.flushed = {}
        self.continuous = False
        self.thread = None

    def snapshot(self, key, metric, path):
        """(MapSnapshot of the counts, the dropped-events family) of counter ``metric`` (a
        CounterConfig with perf_event_array) of the map at ``path``; the counts start anew
        every ``flush_interval`` (after the pass that exports them), as in ebpf_exporter."""
        counter = self.counters.get(key)
        if counter is None:
            counter = self.counters[key] = PerfEventCounter(path, key_size(metric.labels))
            self.flushed[key] = self.clock()
            self._restart()
        now = self.clock()
        reset = now - self.flushed[key] >= metric.flush_interval
        if reset:
            self.flushed[key] = now
        counts, lost = counter.take(reset)
        if not metric.labels:  # a counter without labels is the entry at key u32 0
            counts = {b"\0\0\0\0": counts.get(b"", 0)} if counts else {}
        dropped = MetricFamily("dropped_perf_event_map_events_" + metric.name, "Dropped perf map events", "counter")
        dropped.series[()] = lost
        return MapSnapshot([(raw, _U64.pack(count)) for raw, count in counts.items()], VALUE_SIZE, False), dropped

    def _restart(self):
        if not self.continuous:
            return
        if self.thread is not None:
            self.thread.stop()
        self.thread = PerfReaderThread(list(self.counters.values()))
        self.thread.start()

    def close(self):
        if self.thread is not None:
            self.thread.stop()
            self.thread = None
        for counter in self.counters.values():
            counter.close()
        self.counters = {}
