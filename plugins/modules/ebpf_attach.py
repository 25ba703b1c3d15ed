#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ebpf_attach
short_description: Attach a pinned BPF program to XDP, TC or a tracing hook, or detach it
version_added: "0.1.0"
description:
  - Attaches a program pinned by M(ebpf.observability.ebpf_program) (or any pinned program) to an
    interface's XDP or TC hook, or to a tracepoint, raw tracepoint, kprobe, kretprobe, uprobe,
    uretprobe, BTF-typed tracepoint (tp_btf), fentry, fexit, fmod_ret or LSM hook, and verifies the
    attachment by reading it back from the kernel.
  - Idempotent from what the kernel reports. When the program attached at the hook is the pinned
    program, nothing changes. When it is an older version of it (the same program of the same
    O(name), found through the object's pins, load record or maps), it is replaced
    B(atomically) and the task reports a change. A program this collection did not attach is
    never replaced without O(force).
  - B(XDP) goes through netlink. O(mode=auto) tries hw, drv and skb in that order and reports the
    mode obtained; a named mode is strict unless O(mode_fallback=true). Attaching never overwrites
    a program that appears meanwhile; replacing passes the expected old program to the kernel,
    so the interface never runs without a program. libxdp's dispatcher is joined (O(multiprog)).
  - B(TC) uses a TCX bpf_link (Linux 6.6+), placed first among the interface's TCX programs and
    pinned under the object's C(links/) directory, or a direct-action filter on the clsact qdisc
    at our own O(priority) and O(handle). Filters of others are never touched and a clsact qdisc
    is only removed when detaching leaves it empty. Observer programs should return
    C(TC_ACT_UNSPEC) so later programs and filters still see every packet.
  - B(Tracing hooks) use a bpf_link pinned under the object's C(links/) directory, so the
    attachment outlives the task; O(state=absent) removes the pin and verifies the link is gone.
    An upgrade pins a new link over the old one first, so the hook is never without a program.
    Linux 6.6+ reports each link's event (tracepoint, function, file), which must match the
    target; older kernels report only a perf_event link and its program, so there the link pinned
    at the target's path under C(links/) stands for the target.
  - B(Multi-probes) (V(kprobe_multi), V(kretprobe_multi), V(uprobe_multi), V(uretprobe_multi)) attach
    to every function a glob matches through one bpf_link (kernel functions from Linux 5.18 with
    kprobes, a binary's from Linux 6.6). C(ksyscall) and sleepable C(uprobe.multi.s) are refused.
  - B(USDT probes) (V(usdt)) follow libbpf for programs using its C(usdt.bpf.h) - every location
    of the probe from C(.note.stapsdt), its semaphore counted, argument specs in the object's
    C(__bpf_usdt_specs) map named by each pinned link's BPF cookie. Linux 5.15+.
  - B(perf_event) (V(perf_event)) runs a program from a sampling perf event on every online CPU,
    a pinned bpf_link per CPU (Linux 5.15+; hardware events are often absent in VMs).
  - ebpf_exporter's sections that name their target work - C(xdp/eth0) (with several interfaces,
    each an attachment O(interface) names) and C(perf_event/type=1,config=0,frequency=99).
  - B(BTF-typed hooks) (V(tp_btf), V(fentry), V(fexit), V(fmod_ret), V(lsm)) get their target when
    the program is loaded (libbpf resolves the section name, such as C(tp_btf/sched_switch), to a
    BTF id), so attaching opens and pins the link only. V(tp_btf) needs no BPF trampoline and runs
    wherever the kernel has BTF and the tracing program type (Linux 5.5+); the others need
    trampolines, and on a kernel without them the task fails with "fentry is not available on this
    kernel" before anything changes.
  - Every failure is counted per interface and error type in C(attach_errors.json) under
    O(events_dir), which the collection's exporter publishes as
    C(ebpf_attachment_errors_total). Check mode records nothing. A damaged event file is
    rewritten, keeping the entries that can still be read (the failure message says so).
  - Needs root, or CAP_BPF with CAP_NET_ADMIN (XDP, TC) or CAP_PERFMON (tracing hooks).
author:
  - ebpf.observability contributors (@ebpf-observability)
extends_documentation_fragment:
  - ebpf.observability.ebpf
  - ebpf.observability.xdp_multiprog
options:
  name:
    description:
      - The O(ebpf.observability.ebpf_program#module:name) the program was loaded under.
      - Give O(name) with O(program), or O(pin).
    type: str
  program:
    description:
      - The program (its C function name) within O(name).
    type: str
  pin:
    description:
      - Path of a pinned program on bpffs, instead of O(name) and O(program). A path on another
        file system is refused as such, before anything is opened. A path of the form
        O(pin_root)/<name>/progs/<program> is the same as naming them.
      - Links of other pinned programs are pinned beside the program, named after it.
      - Only the pinned program itself counts as ours; replacing an older version needs O(force).
    type: path
  hook:
    description:
      - Where to attach.
      - V(auto) takes the hook (and the tracing target and TC direction) from the program's ELF
        section name when the load record holds it, else from the program type (xdp, sched_cls,
        tracepoint, raw_tracepoint, lsm; a kprobe-type or tracing-type program needs an explicit
        hook).
      - V(kprobe) and V(kretprobe) need a kernel with kprobes; on a kernel without them the task
        fails with "kprobes are not available on this kernel; use a tracepoint".
    type: str
    choices: [auto, xdp, tc, tracepoint, raw_tracepoint, kprobe, kretprobe, uprobe, uretprobe, tp_btf, fentry, fexit,
              fmod_ret, lsm, perf_event, usdt, kprobe_multi, kretprobe_multi, uprobe_multi, uretprobe_multi]
    default: auto
  interface:
    description:
      - Network interface for the V(xdp) and V(tc) hooks. It must exist; when it is down the
        program is attached anyway with a warning (see O(require_up)). Interfaces are never
        brought up or down.
      - Defaults, for an XDP program whose section names one interface (C(xdp/eth0)), to that one.
      - Interface names are at most 15 characters, without C(/), C(:) or spaces; another name is
        refused before anything is looked up.
    type: str
  require_up:
    description:
      - Fail instead of warning when O(interface) is down.
    type: bool
    default: false
  mode:
    description:
      - XDP mode. V(auto) negotiates hw, drv, skb in that order; V(hw), V(drv) (native) and V(skb)
        (generic) are strict unless O(mode_fallback=true).
      - A program of ours running in another mode than the one asked is detached and attached
        again (the only case with a moment without a program; the task warns).
    type: str
    choices: [auto, hw, drv, skb]
    default: auto
  mode_fallback:
    description:
      - With a named O(mode), try the following modes of hw, drv, skb when the interface refuses it.
    type: bool
    default: false
  direction:
    description:
      - TC direction. Defaults to the direction in the section name (C(tc/egress),
        C(tcx/egress)), else V(ingress).
      - An interface with an C(ingress) qdisc (rather than C(clsact)) has no egress hook there.
        V(egress) over netlink is then an error naming the qdisc (in check mode too);
        O(tc_api=auto) uses a TCX link where the kernel has TCX. Detaching V(egress) never
        touches the ingress filters.
    type: str
    choices: [ingress, egress]
  tc_api:
    description:
      - How TC programs are attached.
      - V(tcx) uses a pinned TCX bpf_link (Linux 6.6+; an error on older kernels).
      - V(netlink) uses a clsact qdisc and a direct-action C(bpf) filter.
      - V(auto) keeps an existing attachment of ours where it is and otherwise uses TCX where the
        kernel has it and netlink elsewhere, so one playbook serves a mixed fleet. The API used
        is returned in RV(attachment.tc_api). Naming the other API moves an attachment there
        (the new one is in place before the old one goes).
    type: str
    choices: [auto, tcx, netlink]
    default: auto
  tcx_position:
    description:
      - Where a TCX program runs among its hook's programs (Linux 6.6+) - V(first), V(last), or
        V(before)/V(after) O(tcx_relative_to); checked each run against the kernel's order (a
        program out of place gets a new link there). Unset, a new link goes first and an
        existing one stays where it is.
    type: str
    choices: [first, last, before, after]
  tcx_relative_to:
    description: A program id, pinned program path or C(<name>/<program>) attached to the same hook.
    type: str
  priority:
    description:
      - Priority of the netlink TC filter. The default 256 runs after the priority 1 most
        libbpf-based tools use and before the priorities C(tc) assigns automatically (49152 and up).
      - XDP in libxdp's dispatcher (O(multiprog)) - the component's run priority, lower first
        (default the program's own C(XDP_RUN_CONFIG), else 50).
    type: int
  handle:
    description:
      - Handle of the netlink TC filter. Defaults to the crc32 of C(<name>/<program>) (or of the
        pin path), so every program of ours has a slot of its own.
    type: int
  target:
    description:
      - The tracing target. V(tracepoint) C(category/name) (for example
        C(syscalls/sys_enter_openat)); V(raw_tracepoint) a tracepoint name (C(sys_enter));
        V(kprobe)/V(kretprobe) a kernel function (C(do_unlinkat), a kprobe may add C(+offset));
        V(uprobe)/V(uretprobe) C(/absolute/path:function[+offset]) or C(/absolute/path:0xoffset); instead
        of the path, a library (C(libc.so.6:malloc)) or program name, looked for as libbpf does (a
        library in C(LD_LIBRARY_PATH), C(/usr/lib64), C(/usr/lib) and the architecture's library
        directories, a program in C(PATH), C(/usr/bin) and C(/usr/sbin)).
      - For V(tp_btf), V(fentry), V(fexit), V(fmod_ret) and V(lsm) the target is fixed when the
        program is loaded; when given it must be the one its section names.
      - V(kprobe_multi) a kernel function glob (C(tcp_v4_*)); V(uprobe_multi) C(<binary>:<glob>);
        V(usdt) C(<binary>:<provider>:<name>); V(perf_event) C(type=T,config=C,frequency=F) or
        C(period=P) (perf_event_open(2)'s numbers; C(type=1,config=0) is the software CPU clock).
      - Defaults to the target in the section name (C(tracepoint/syscalls/sys_enter_openat)).
      - Tracepoints are looked up in tracefs; when no tracefs is mounted it is mounted at
        C(/sys/kernel/tracing) (with a warning).
    type: str
  state:
    description:
      - V(present) attaches the program; V(absent) detaches it (and older versions of it) from
        the hook and leaves everything else there alone.
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - Replace a program this collection did not attach (an XDP program on the interface, a TC
        filter in our priority/handle slot). Replacement is atomic. An XDP program attached
        through someone else's bpf_link cannot be replaced.
    type: bool
    default: false
  events_dir:
    description:
      - Directory of the attachment-error event file C(attach_errors.json).
    type: path
    default: /var/lib/ebpf_observability
notes:
  - Check mode reads the kernel and reports what would change, including every input error;
    nothing is attached, detached, mounted or recorded.
  - Supports diff mode; the diff shows the hook's attachment (program id and name, XDP mode,
    TC API, priority/handle or link) before and after.
  - Network hooks act in the network namespace the task runs in.
requirements:
  - pyroute2 for the xdp and tc hooks
  - bpffs mounted at C(/sys/fs/bpf)
seealso:
  - module: ebpf.observability.ebpf_program
  - module: ebpf.observability.ebpf_info
"""

EXAMPLES = r"""
- name: Count packets on eth0 with XDP, in the best mode the driver offers
  ebpf.observability.ebpf_attach:
    name: xdp_counter
    program: xdp_counter
    interface: eth0

- name: Classify egress traffic (TCX where the kernel has it, clsact elsewhere)
  ebpf.observability.ebpf_attach:
    name: tc_classifier
    program: tc_classify_egress
    interface: eth0
    direction: egress

- name: Attach a tracepoint program (hook and target from its section name)
  ebpf.observability.ebpf_attach:
    name: net_tracepoints
    program: skb_kfree

- name: Attach to a raw tracepoint, naming hook and target
  ebpf.observability.ebpf_attach:
    name: syscall_latency
    program: syscall_enter_tp
    hook: raw_tracepoint
    target: sys_enter

- name: Detach
  ebpf.observability.ebpf_attach:
    name: xdp_counter
    program: xdp_counter
    interface: eth0
    state: absent
"""

RETURN = r"""
hook:
  description: The hook used (after O(hook=auto) was resolved).
  returned: always
  type: str
  sample: xdp
action:
  description: What was done (or, in check mode, would be done).
    V(attach), V(replace) (atomically, our older program or with O(force) a foreign one),
    V(move) (to another XDP mode or TC API), V(detach) or V(none).
  returned: always
  type: str
  sample: attach
program:
  description: The pinned program.
  returned: when the program is pinned
  type: dict
  contains:
    name:
      description: The ebpf_program name, or null with O(pin).
      type: str
    program:
      description: The program name, or null with O(pin).
      type: str
    pin:
      description: Pin path of the program.
      type: str
    id:
      description: Kernel program id.
      type: int
    tag:
      description: Kernel program tag.
      type: str
    type:
      description: Kernel program type.
      type: str
      sample: xdp
attachment:
  description: What runs at the hook after the task (empty when nothing does). In check mode the
    predicted attachment, with ids not known yet null.
  returned: always
  type: dict
  contains:
    hook:
      description: The hook.
      type: str
    interface:
      description: Interface name (xdp, tc).
      type: str
      sample: eth0
    ifindex:
      description: Interface index (xdp, tc).
      type: int
    mode:
      description: XDP mode obtained (drv, skb or hw); null in check mode with O(mode=auto).
      type: str
      sample: drv
    direction:
      description: TC direction.
      type: str
    tc_api:
      description: TC API used, V(tcx) or V(netlink).
      type: str
    tcx_position: {description: "For TCX, the program's index in the order the hook runs its programs (0 runs first).", type: int}
    tcx_chain: {description: "For TCX, the ids of the hook's programs in run order.", type: list, elements: int}
    priority: {description: "Netlink TC filter priority; XDP in a dispatcher, our component's run priority.", type: int}
    multiprog:
      description: In libxdp's dispatcher, as RV(multiprog); C(priority) and C(chain_call_actions) beside it are our component's.
      type: dict
    handle:
      description: Netlink TC filter handle.
      type: int
    target:
      description: Tracing target.
      type: str
      sample: syscalls/sys_enter_getpid
    link_id: {description: Kernel id of the bpf_link (tcx and tracing hooks)., type: int}
    link_pin: {description: Pin path of the bpf_link (tcx and tracing hooks)., type: str}
    prog_id:
      description: Kernel id of the program running at the hook.
      type: int
    prog_name:
      description: Kernel name of the program running at the hook.
      type: str
multiprog:
  description: "XDP: C(used) (in libxdp's dispatcher), C(reason) when not, else C(dispatcher_id) and C(components)
    (prog_id, name, priority, chain_call_actions, ours)."
  returned: for the xdp hook
  type: dict
errno:
  description: The errno of a failure the kernel reported.
  returned: on failure
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ebpf.observability.plugins.module_utils.backends.attach import AttachBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.module_runner import run_backend


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str"),
            program=dict(type="str"),
            pin=dict(type="path"),
            pin_root=dict(type="path", default="/sys/fs/bpf/ebpf_observability"),
            hook=dict(type="str", default="auto",
                      choices=["auto", "xdp", "tc", "tracepoint", "raw_tracepoint", "kprobe", "kretprobe", "uprobe", "uretprobe",
                               "tp_btf", "fentry", "fexit", "fmod_ret", "lsm", "perf_event", "usdt",
                               "kprobe_multi", "kretprobe_multi", "uprobe_multi", "uretprobe_multi"]),
            interface=dict(type="str"),
            require_up=dict(type="bool", default=False),
            mode=dict(type="str", default="auto", choices=["auto", "hw", "drv", "skb"]),
            mode_fallback=dict(type="bool", default=False),
            direction=dict(type="str", choices=["ingress", "egress"]),
            tc_api=dict(type="str", default="auto", choices=["auto", "tcx", "netlink"]),
            tcx_position=dict(type="str", choices=["first", "last", "before", "after"]),
            tcx_relative_to=dict(type="str"),
            priority=dict(type="int"),
            multiprog=dict(type="str", default="auto", choices=["auto", "always", "never"]),
            chain_call_actions=dict(type="list", elements="str", choices=["aborted", "drop", "pass", "tx", "redirect"]),
            handle=dict(type="int"),
            target=dict(type="str"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            force=dict(type="bool", default=False),
            events_dir=dict(type="path", default="/var/lib/ebpf_observability"),
        ),
        required_one_of=[("name", "pin")],
        mutually_exclusive=[("name", "pin"), ("program", "pin")],
        required_together=[("name", "program")],
        supports_check_mode=True,
    )

    def action():
        backend = AttachBackend(module.params, check_mode=module.check_mode)
        return backend, backend.run()

    run_backend(module, action)


if __name__ == "__main__":
    main()
