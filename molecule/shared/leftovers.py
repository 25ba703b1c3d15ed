"""Runs inside a guest after playbooks/remove.yml (remove.yml here): prints, as JSON, what of the
collection is left.

    {"paths": [files and directories of the roles that exist],
     "units": {unit: "LoadState/ActiveState"} of the roles' units systemd still knows,
     "accounts": ["user ebpf-exporter", "group ebpf-exporter"] that exist,
     "programs": [BPF programs in the kernel named like the collection's],
     "links": [bpf_links in the kernel of kinds the collection attaches through]}
"""
import glob
import grp
import json
import os
import pwd
import subprocess
import sys

PATHS = [
    "/sys/fs/bpf/ebpf_observability",
    "/usr/local/lib/ebpf_observability",
    "/etc/ebpf_observability",
    "/var/lib/ebpf_observability",
    "/usr/local/sbin/ebpf-observability-restore",
    "/usr/local/sbin/ebpf-observability-exporter",
    "/etc/ebpf-observability",
    "/var/lib/prometheus/node-exporter/ebpf_observability.prom",
]
UNIT_GLOBS = ["/etc/systemd/system/ebpf-observability*", "/etc/systemd/system/*/ebpf-observability*"]
UNITS = [
    "ebpf-observability-restore.service",
    "ebpf-observability-bpffs.service",
    "ebpf-observability-exporter.service",
    "ebpf-observability-exporter-access.service",
    "ebpf-observability-exporter-access.path",
]
ACCOUNT = "ebpf-exporter"
# The collection's programs, by their names as bpftool shows them (from BTF) and as the kernel
# keeps them (15 characters).
_NAMES = ("xdp_counter", "tc_classify_ingress", "tc_classify_egress", "syscall_enter_tp", "syscall_exit_tp",
          "syscall_enter_kp", "syscall_exit_kp", "skb_kfree", "tcp_retransmit", "tcp_set_state", "net_rx", "net_tx")
PROGRAMS = set(_NAMES) | {name[:15] for name in _NAMES}
# bpf_link types the collection attaches through, by name or, where bpftool does not name them
# (7.1 predates TCX), by number: raw_tracepoint 1, xdp 6, perf_event 7, kprobe_multi 8, tcx 11.
LINK_TYPES = {"raw_tracepoint", "xdp", "perf_event", "kprobe_multi", "tcx", 1, 6, 7, 8, 11}


def _bpftool(*args):
    return json.loads(subprocess.run(["bpftool", "-j"] + list(args), check=True, capture_output=True, text=True).stdout)


def units():
    """{unit: "LoadState/ActiveState"} of the units systemd still knows (loaded or active)."""
    out = subprocess.run(["systemctl", "show", "--property=Id,LoadState,ActiveState"] + UNITS, check=True,
                         capture_output=True, text=True).stdout
    left = {}
    for block in out.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("LoadState") != "not-found" or props.get("ActiveState") not in ("inactive", None):
            left[props.get("Id")] = "%s/%s" % (props.get("LoadState"), props.get("ActiveState"))
    return left


def accounts():
    found = []
    for kind, lookup in (("user", pwd.getpwnam), ("group", grp.getgrnam)):
        try:
            lookup(ACCOUNT)
            found.append("%s %s" % (kind, ACCOUNT))
        except KeyError:
            pass
    return found


def main():
    paths = [path for path in PATHS if os.path.lexists(path)]
    paths += sorted(set(path for pattern in UNIT_GLOBS for path in glob.glob(pattern)))
    json.dump({
        "paths": paths,
        "units": units(),
        "accounts": accounts(),
        "programs": sorted(p["name"] for p in _bpftool("prog", "show") if p.get("name") in PROGRAMS),
        "links": sorted("%s %s" % (link["type"], link["id"]) for link in _bpftool("link", "show")
                        if link.get("type") in LINK_TYPES),
    }, sys.stdout)


if __name__ == "__main__":
    main()
