"""Every decoder and every bucket type through the exporter, against hand-built BPF maps.

Each metric reads a real hash map pinned under a private pin root, filled by the test with
known keys and values; the exporter reads it with BPF_MAP_LOOKUP_BATCH and renders the text,
which prometheus-client's parser reads back. The decoders that look things up (ksym, cgroup,
majorminor) read tables the test writes, so the expected names do not depend on the host.
"""
import os
import platform
import socket
import struct

from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.textfile import Exporter
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.config import parse_exporter_config
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.decoders import Decoders
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.syscall_names import syscall_names

U32 = struct.Struct("=I").pack
U64 = struct.Struct("=Q").pack


def counter(name, labels):
    return {"name": name, "help": name, "labels": labels}


def label(name, size, *decoders, **extra):
    return dict(name=name, size=size, decoders=[dict(d) if isinstance(d, dict) else {"name": d} for d in decoders], **extra)


def histogram(name, bucket_type, **fields):
    spec = {"name": name, "help": name, "bucket_type": bucket_type,
            "labels": [label("op", 4, "uint"), label("bucket", 4, "uint")]}
    spec.update(fields)
    return spec


def pin_hash(maps_dir, name, entries, percpu=False):
    """A hash map holding ``entries`` ({key bytes: u64}), pinned as maps_dir/name."""
    key_size = len(next(iter(entries)))
    cpus = sc.possible_cpus()
    map_type = sc.BPF_MAP_TYPE_PERCPU_HASH if percpu else sc.BPF_MAP_TYPE_HASH
    with sc.map_create(map_type, key_size, 8, 64, name=name[:15]) as fd:
        for key, value in entries.items():
            # per-CPU: the value on CPU 0, 1 on every other CPU (the exporter sums them)
            data = U64(value - (cpus - 1)) + U64(1) * (cpus - 1) if percpu else U64(value)
            sc.map_update(fd, key, data)
        sc.obj_pin(fd, os.path.join(maps_dir, name))


def test_every_decoder_and_bucket_type(pin_root, tmp_path):
    maps_dir = os.path.join(pin_root, "hand", "maps")
    bpffs.makedirs(maps_dir)
    numbers = dict((name, number) for number, name in syscall_names(platform.machine(), "kernel").items())
    getpid, pread64, exit_group = numbers["getpid"], numbers["pread64"], numbers["exit_group"]
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text("ffffffff81000000 T _stext\nffffffff81234560 T vfs_read\nffffffffc0100000 t mod_fn\t[mod]\n")
    partitions = tmp_path / "partitions"
    partitions.write_text("major minor  #blocks  name\n\n 254        0  268435456 vda\n   8       16   1000 sdb\n")
    cgroup = tmp_path / "cg" / "system.slice" / "x.service"
    cgroup.mkdir(parents=True)
    dname = b"\x07example\x03com\x00"
    pci_ids = tmp_path / "pci.ids"
    pci_ids.write_text("8086  Intel Corporation\n\t1000  82542 Gigabit Ethernet Controller (Fiber)\n"
                       "C 02  Network controller\n\t00  Ethernet controller\n")

    maps = {
        "uint_total": (label("n", 4, "uint"), {U32(7): 1, U32(4000000000): 2}),
        "string_total": (label("s", 8, "string"), {b"eth0\0\0\0\0": 3}),
        "hex_total": (label("h", 4, "hex"), {b"\xde\xad\xbe\xef": 4}),
        "static_map_total": (label("m", 4, "uint", {"name": "static_map", "static_map": {1: "one"}}),
                             {U32(1): 5, U32(2): 6}),
        "allow_unknown_total": (label("m", 4, "uint", {"name": "static_map", "static_map": {1: "one"}, "allow_unknown": True}),
                                {U32(2): 7}),
        "regexp_total": (label("r", 8, "string", {"name": "regexp", "regexps": ["^keep.*"]}),
                         {b"keepme\0\0": 8, b"dropme\0\0": 9}),
        "regexp_group_total": (label("r", 8, "string", {"name": "regexp", "regexps": ["^(kswapd)[0-9]+$", "^(a)(b)"]}),
                               {b"kswapd0\0": 30, b"kswapd1\0": 31, b"abc\0\0\0\0\0": 32}),
        "syscall_total": (label("syscall", 4, "uint", "syscall"), {U32(getpid): 10, U32(1023): 11, U32(pread64): 33,
                                                                   U32(exit_group): 34}),
        "errno_total": (label("errno", 4, "uint", "errno"), {U32(2): 12, U32(4095): 13}),
        "ksym_total": (label("function", 8, "ksym"), {U64(0xffffffff81234560): 14, U64(0xffffffffc0100000): 15,
                                                      U64(0xffffffff81234561): 16, U64(0xffffffff80000000): 35}),
        "kstack_total": (label("stack", 24, "kstack"), {U64(0xffffffff81234564) + U64(0xffffffffc0100008) + U64(0): 36}),
        "inet_ip_total": (label("addr", 4, "inet_ip"), {socket.inet_aton("192.0.2.7"): 17}),
        "inet_ip6_total": (label("addr", 16, "inet_ip"), {socket.inet_pton(socket.AF_INET6, "2001:db8::1"): 18,
                                                          socket.inet_pton(socket.AF_INET6, "::ffff:192.0.2.9"): 19}),
        "ifname_total": (label("interface", 4, "ifname"), {U32(1): 20}),
        "ifindex_total": (label("interface", 4, "ifindex"), {U32(1): 21}),
        "dname_total": (label("name", 16, "string", "dname"), {dname.ljust(16, b"\0"): 22}),
        "cgroup_total": (label("cgroup", 8, "uint", "cgroup"), {U64(os.stat(cgroup).st_ino): 23, U64(1 << 40): 24}),
        "majorminor_total": (label("device", 4, "majorminor"), {U32(os.makedev(254, 0)): 25, U32(os.makedev(9, 9)): 26}),
        "padded_total": (label("a", 2, "uint", padding=2), {b"\x05\x00\xff\xff": 27}),
        "pci_vendor_total": (label("vendor", 4, "uint", "pci_vendor"), {U32(0x8086): 40, U32(0xdead): 41}),
        "pci_device_total": (label("device", 4, "uint", "pci_device"), {U32(0x80861000): 42}),
        "pci_class_total": (label("class", 1, "uint", "pci_class"), {b"\x02": 43}),
        "pci_subclass_total": (label("subclass", 2, "uint", "pci_subclass"),
                               {struct.pack("=H", 0x0200): 44, struct.pack("=H", 0x0207): 45}),
    }
    counters = [counter(name, [spec]) for name, (spec, _entries) in maps.items()]
    for index, (name, (_spec, entries)) in enumerate(maps.items()):
        pin_hash(maps_dir, name, entries, percpu=index % 2 == 1)

    # Histograms: op 1 holds events in three buckets plus the sum key; keys out of range are ignored.
    def events(layout):
        return dict((U32(1) + U32(bucket), count) for bucket, count in layout.items())
    histograms = [
        histogram("exp2_seconds", "exp2", bucket_min=0, bucket_max=3, bucket_multiplier=0.5),
        histogram("exp2zero_seconds", "exp2zero", bucket_min=0, bucket_max=3),
        histogram("linear_bytes", "linear", bucket_min=1, bucket_max=4, bucket_multiplier=10),
        histogram("fixed_bytes", "fixed", bucket_keys=[1, 5, 10]),
    ]
    pin_hash(maps_dir, "exp2_seconds", events({0: 1, 2: 2, 3: 3, 4: 100, 9: 50}), percpu=True)
    pin_hash(maps_dir, "exp2zero_seconds", events({0: 4, 1: 1, 3: 2}))
    pin_hash(maps_dir, "linear_bytes", events({0: 9, 1: 1, 4: 2, 5: 30}))
    pin_hash(maps_dir, "fixed_bytes", events({1: 1, 5: 1, 10: 3, 11: 70, 7: 8}))

    config = parse_exporter_config({
        "pin_root": pin_root, "textfile": str(tmp_path / "m.prom"), "attach_events": str(tmp_path / "events.json"),
        "programs": [{"name": "hand", "metrics": {"metrics": {"counters": counters, "histograms": histograms}}}]})
    decoders = Decoders(kallsyms_path=str(kallsyms), cgroup_root=str(tmp_path / "cg"), partitions_path=str(partitions),
                        pci_ids_paths=(str(pci_ids),))
    text = Exporter(config, decoders=decoders).render()
    got = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            got[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def series(name):
        return dict((labels, value) for (n, labels), value in got.items() if n == "ebpf_exporter_" + name)

    def one(name, label_name):
        return dict((dict(labels)[label_name], value) for labels, value in series(name).items())

    assert one("uint_total", "n") == {"7": 1, "4000000000": 2}
    assert one("string_total", "s") == {"eth0": 3}
    assert one("hex_total", "h") == {"deadbeef": 4}
    assert one("static_map_total", "m") == {"one": 5, "unknown:2": 6}
    assert one("allow_unknown_total", "m") == {"2": 7}
    assert one("regexp_total", "r") == {"keepme": 8}
    assert one("regexp_group_total", "r") == {"kswapd": 61}  # one series; two groups give no value
    # ebpf_exporter's names: pread64 is "pread", exit_group "exit"
    assert one("syscall_total", "syscall") == {"getpid": 10, "unknown_syscall:1023": 11, "pread": 33, "exit": 34}
    assert one("errno_total", "errno") == {"ENOENT": 12, "unknown:4095": 13}
    # the nearest symbol at or before the address; a module's keeps its "\t[mod]"
    assert one("ksym_total", "function") == {"vfs_read": 30, "mod_fn\t[mod]": 15, "unknown_addr:0xffffffff80000000": 35}
    assert one("kstack_total", "stack") == {"vfs_read\nmod_fn\t[mod]": 36}
    assert one("inet_ip_total", "addr") == {"192.0.2.7": 17}
    assert one("inet_ip6_total", "addr") == {"2001:db8::1": 18, "192.0.2.9": 19}
    assert one("ifname_total", "interface") == {"lo": 20}
    assert one("ifindex_total", "interface") == {"lo": 21}
    assert one("dname_total", "name") == {"example.com": 22}
    assert one("cgroup_total", "cgroup") == {str(cgroup): 23, "unknown_cgroup_id:%d" % (1 << 40): 24}
    assert one("majorminor_total", "device") == {"vda": 25, "unknown:9:9": 26}
    assert one("padded_total", "a") == {"5": 27}
    assert one("pci_vendor_total", "vendor") == {"Intel Corporation": 40, "unknown pci vendor: 0xdead": 41}
    assert one("pci_device_total", "device") == {"82542 Gigabit Ethernet Controller (Fiber)": 42}
    assert one("pci_class_total", "class") == {"Network controller": 43}
    assert one("pci_subclass_total", "subclass") == {"Ethernet controller": 44,
                                                     "unknown pci subclass: 0x07 (class 0x02)": 45}

    def buckets(name):
        rows = dict((dict(labels)["le"], value) for labels, value in series(name + "_bucket").items())
        return rows, got[("ebpf_exporter_%s_sum" % name, (("op", "1"),))], got[("ebpf_exporter_%s_count" % name, (("op", "1"),))]

    # exp2: le = 2^i x 0.5 (Go's float formatting: "1", not "1.0"); the sum is the value at bucket_max + 1 (4) times the multiplier
    assert buckets("exp2_seconds") == ({"0.5": 1, "1": 1, "2": 3, "4": 6, "+Inf": 6}, 50.0, 6)
    # exp2zero: bucket 0 is le 0, bucket i is le 2^(i-1)
    assert buckets("exp2zero_seconds") == ({"0": 4, "1": 5, "2": 5, "4": 7, "+Inf": 7}, 0.0, 7)
    # linear: le = i x 10 from bucket_min; bucket 0 is out of range
    assert buckets("linear_bytes") == ({"10": 1, "20": 1, "30": 1, "40": 3, "+Inf": 3}, 300.0, 3)
    # fixed: le = the keys; the sum is at the last key + 1; key 7 is not a bucket
    assert buckets("fixed_bytes") == ({"1": 1, "5": 2, "10": 5, "+Inf": 5}, 70.0, 5)
    assert not [k for k in got if k[0] == "ebpf_exporter_map_errors_total"], text
