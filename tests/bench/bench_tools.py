"""What bench_bpf_programs.py compares the collection's programs with: the floor (the cheapest
program that counts anything: one per-CPU array slot incremented) and the tools users would pick
instead (Debian packages, installed by `make setup`).

- bpftrace with the histogram syscall_latency keeps (calls, errors by errno and a latency
  histogram, per syscall) on the raw_syscalls tracepoints, and libbpf-tools `syscount -L`
  (calls and total latency per syscall): each runs as its own process for its rounds; a round
  starts once the tool's entry-time map holds an entry, which means its programs run.
- xdp-filter (xdp-tools) with its per-action statistics, loaded in skb mode on a veth in a
  network namespace of the benchmark's own: BPF_PROG_TEST_RUN runs the program the interface
  holds, found by id through netlink (the collection's kernel layer), on the same frame as
  xdp_counter.

Neither tool needs kprobes for this; what does (kprobe_syscall_latency) is reported as
"n/a (needs kprobes)" on a kernel without them.
"""
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_insn as bi
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import netlink
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import netns

BPFTRACE_SCRIPT = r"""
tracepoint:raw_syscalls:sys_enter { @start[tid] = nsecs; }
tracepoint:raw_syscalls:sys_exit /@start[tid]/ {
  $ns = nsecs - @start[tid];
  delete(@start[tid]);
  @calls[args->id] = count();
  if (args->ret < 0 && args->ret >= -4095) { @errors[args->id, -args->ret] = count(); }
  @latency_ns[args->id] = hist($ns);
}
"""

# tool: (command line, name of its entry-time map)
SYSCALL_TOOLS = {
    "bpftrace": (["bpftrace", "-e", BPFTRACE_SCRIPT], "AT_start"),
    "syscount -L": (["syscount", "-L"], "start"),
}
HASH_TYPES = (sc.BPF_MAP_TYPE_HASH, sc.BPF_MAP_TYPE_PERCPU_HASH, sc.BPF_MAP_TYPE_LRU_HASH)


def missing_tools():
    """Names of the tools that are not installed (`make setup` installs them)."""
    return [name for name in ("bpftrace", "syscount", "xdp-filter") if not shutil.which(name)]


def floor_program(prog_type, retval, name):
    """(program fd, map fd): a program that increments slot 0 of a one-slot per-CPU array
    and returns ``retval``: what counting anything costs at least."""
    counter = sc.map_create(sc.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 1, name=name)
    insns = (bi.st_mem(bi.BPF_W, bi.BPF_REG_10, -4, 0)
             + bi.mov64_reg(bi.BPF_REG_2, bi.BPF_REG_10)
             + bi.alu64_imm(bi.BPF_ADD, bi.BPF_REG_2, -4)
             + bi.ld_map_fd(bi.BPF_REG_1, int(counter))
             + bi.call(bi.BPF_FUNC_map_lookup_elem)
             + bi.jmp_imm(bi.BPF_JEQ, bi.BPF_REG_0, 0, 3)
             + bi.ldx_mem(bi.BPF_DW, bi.BPF_REG_1, bi.BPF_REG_0, 0)
             + bi.alu64_imm(bi.BPF_ADD, bi.BPF_REG_1, 1)
             + bi.stx_mem(bi.BPF_DW, bi.BPF_REG_0, bi.BPF_REG_1, 0)
             + bi.mov64_imm(bi.BPF_REG_0, retval)
             + bi.exit_insn())
    return sc.prog_load(prog_type, insns, "GPL", name), counter


def _has_entry(map_id, names):
    try:
        with sc.map_fd_by_id(map_id) as fd:
            info = sc.map_info(fd)
            if info["name"] not in names or info["type"] not in HASH_TYPES:
                return False
            return sc.map_next_key(fd, None, info["key_size"]) is not None
    except sc.BpfError:
        return False  # gone meanwhile


class ToolRun:
    """A tracer's process, running until close(); started once its programs count."""

    def __init__(self, name, timeout=60.0):
        argv, map_name = SYSCALL_TOOLS[name]
        self.name = name
        before = set(sc.map_ids())
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + timeout
        while not any(_has_entry(i, (map_name,)) for i in set(sc.map_ids()) - before):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                self.log.seek(0)
                raise SystemExit("%s did not start: %s" % (name, self.log.read().decode(errors="replace")[-500:]))
            time.sleep(0.05)

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_tool(_fd, name):
    """An "attach" of traced_rows: the tool runs while the round does."""
    return ToolRun(name)


@contextlib.contextmanager
def xdp_filter_program(pin_root, netns_prefix):
    """The fd of xdp-filter's program as it runs on a veth of a namespace of our own."""
    ns = "%s-xf-%s" % (netns_prefix, uuid.uuid4().hex[:6])
    bpffs_dir = pin_root + "-xdp"
    os.makedirs(bpffs_dir, exist_ok=True)
    env = dict(os.environ, LIBXDP_BPFFS=bpffs_dir)
    enter = ["nsenter", "--net=/run/netns/" + ns]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "add", "xf0", "type", "veth", "peer", "name", "xf1"], check=True)
        for dev in ("xf0", "xf1"):
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
        subprocess.run(enter + ["xdp-filter", "load", "--mode", "skb", "xf0"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        try:
            with netns.entered("/run/netns/" + ns):
                with netlink.Netlink() as nl:
                    prog_id = nl.xdp_query(nl.ifindex("xf0"))["prog_id"]
            with sc.prog_fd_by_id(prog_id) as fd:
                yield fd
        finally:
            subprocess.run(enter + ["xdp-filter", "unload", "xf0"], env=env, check=False, stdout=subprocess.DEVNULL)
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)
        bpffs.remove_tree(bpffs_dir)
