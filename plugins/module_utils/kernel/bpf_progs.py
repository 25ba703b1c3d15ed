# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Programs and links through libbpf's bpf_* wrappers: BPF_PROG_LOAD of small programs, test
runs, statistics, BPF_LINK_CREATE/UPDATE/DETACH; and through bpf(2) itself where libbpf 1.1 lacks
the options: tcx and netkit links, raw tracepoints with a cookie, BPF_PROG_QUERY of links."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
from ctypes import addressof, create_string_buffer, c_uint32

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_consts import (
    BPF_F_REPLACE, BPF_LINK_CREATE, BPF_NETKIT_PEER, BPF_NETKIT_PRIMARY, BPF_PERF_EVENT,
    BPF_PROG_QUERY, BPF_RAW_TRACEPOINT_OPEN, BPF_STATS_RUN_TIME, BPF_TCX_EGRESS, BPF_TCX_INGRESS,
    attach_type_name, prog_type_name,
)
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_call, libbpf
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_call import (
    ENOTSUPP, BpfFd, fdnum, fail, cstr, obj_name, buffer_of,
)
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.bpf_structs import (
    LinkCreateOpts, LinkUpdateOpts, MprogLinkCreateAttr, ProgLoadOpts, ProgQueryAttr, RawTracepointAttr,
    TestRunOpts,
)
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError, PermissionHint

# ---------------------------------------------------------------------------------------
# Programs
# ---------------------------------------------------------------------------------------

_LOG_SIZE = 4 << 20


def prog_load(prog_type, insns, license="GPL", name="", expected_attach_type=0,
              log_level=1, prog_flags=0, attach_btf_id=0, prog_ifindex=0):
    """Load a program from raw instructions (bytes, 8 per instruction).

    The first attempt runs without a verifier log; after a failure the load is repeated
    with `log_level` and the BpfError carries the verifier log in .log."""
    insns = bytes(insns)
    if not insns or len(insns) % 8:
        raise BpfError("program %r: instructions must be a non-empty multiple of 8 bytes, "
                       "got %d bytes" % (name, len(insns)))
    ibuf, iaddr = buffer_of(insns)
    load = libbpf.lib().bpf_prog_load
    args = (prog_type, obj_name(name), license.encode("ascii"), iaddr, len(insns) // 8)
    opts = ProgLoadOpts(expected_attach_type=expected_attach_type, prog_flags=prog_flags,
                        attach_btf_id=attach_btf_id, prog_ifindex=prog_ifindex)
    ret = load(*args, opts)
    if ret >= 0:
        return BpfFd(ret)
    err = -ret
    log = None
    if log_level:
        logbuf = create_string_buffer(_LOG_SIZE)
        opts.log_level, opts.log_size, opts.log_buf = log_level, _LOG_SIZE, addressof(logbuf)
        ret = load(*args, opts)
        if ret >= 0:
            return BpfFd(ret)
        log = cstr(logbuf.raw) or None
        if ret != -errno.ENOSPC:  # ENOSPC only says the log was cut
            err = -ret
    what = "loading %s program %r (%d instructions)" % (prog_type_name(prog_type), name, len(insns) // 8)
    hint = None
    if log:
        hint = "the verifier rejected it: %s (full log in the error's log)" % (
            verifier_reason(log) or "see the log")
    elif err == errno.EPERM:
        hint = PermissionHint.TEXT
    raise BpfError(what, errno=err, log=log, hint=hint)


_LOG_SUMMARY_PREFIXES = ("processed ", "verification time", "stack depth", "mark_read")


def verifier_reason(log):
    """The line of a verifier log that says why it refused (the last one before the
    statistics the kernel appends), or None."""
    lines = [line.strip() for line in (log or "").splitlines() if line.strip()]
    for line in reversed(lines):
        if not line.startswith(_LOG_SUMMARY_PREFIXES):
            return line
    return None


def prog_test_run(fd, data, repeat=1, ctx=None, data_out_size=None, flags=0, cpu=0):
    """Run a program on `data` (BPF_PROG_TEST_RUN).

    Returns dict(retval, duration_ns (mean per run), data_out, and ctx_out when ctx was
    given)."""
    data = bytes(data)
    dbuf, daddr = buffer_of(data)
    out_size = data_out_size if data_out_size is not None else len(data) + 4096
    obuf = create_string_buffer(max(out_size, 1))
    opts = TestRunOpts(data_size_in=len(data), data_in=daddr, data_size_out=out_size,
                       data_out=addressof(obuf), repeat=repeat, flags=flags, cpu=cpu)
    if ctx is not None:
        ctx = bytes(ctx)
        cbuf, caddr = buffer_of(ctx)
        cobuf = create_string_buffer(max(len(ctx), 1))
        opts.ctx_size_in, opts.ctx_in = len(ctx), caddr
        opts.ctx_size_out, opts.ctx_out = len(ctx), addressof(cobuf)
    ret = libbpf.lib().bpf_prog_test_run_opts(fdnum(fd), opts)
    if ret < 0:
        raise fail("test-running program fd %d" % fdnum(fd), ret, {
            ENOTSUPP: "this program type cannot be test-run on this kernel",
            errno.EINVAL: "the input or context does not suit this program type",
            errno.ENOSPC: "the output did not fit; pass a larger data_out_size",
        })
    out = {"retval": ctypes.c_int32(opts.retval).value, "duration_ns": opts.duration,
           "data_out": obuf.raw[:min(opts.data_size_out, out_size)]}
    if ctx is not None:
        out["ctx_out"] = cobuf.raw[:opts.ctx_size_out]
    return out


def enable_stats(stats_type=BPF_STATS_RUN_TIME):
    """Turn on run-time statistics (run_time_ns, run_cnt) while the returned fd is open."""
    ret = libbpf.lib().bpf_enable_stats(stats_type)
    if ret < 0:
        raise fail("enabling BPF run-time statistics", ret)
    return BpfFd(ret)


# ---------------------------------------------------------------------------------------
# Links
# ---------------------------------------------------------------------------------------

def link_create(prog_fd, target, attach_type, flags=0, relative_fd=0, relative_id=0,
                expected_revision=0, bpf_cookie=0, target_btf_id=0):
    """Attach a program through a link (BPF_LINK_CREATE).

    `target` is an fd (cgroup, netns, perf event) or an ifindex (xdp, tcx, netkit).
    relative_fd / relative_id (with BPF_F_BEFORE / BPF_F_AFTER / BPF_F_ID in flags) and
    expected_revision place tcx and netkit programs; bpf_cookie goes with perf events;
    target_btf_id with tracing programs."""
    if attach_type in (BPF_TCX_INGRESS, BPF_TCX_EGRESS, BPF_NETKIT_PRIMARY, BPF_NETKIT_PEER):
        # raw bpf(): libbpf 1.1's bpf_link_create_opts has no tcx/netkit relative_fd or expected_revision
        attr = MprogLinkCreateAttr(prog_fd=fdnum(prog_fd), target_ifindex=int(target), attach_type=attach_type,
                                   flags=flags, expected_revision=expected_revision,
                                   relative_fd=relative_id or (fdnum(relative_fd) if relative_fd else 0))
        ret = bpf_call.sys_bpf(BPF_LINK_CREATE, attr)
    else:
        opts = LinkCreateOpts(flags=flags)
        if attach_type == BPF_PERF_EVENT:
            opts.bpf_cookie = bpf_cookie
        else:
            opts.target_btf_id = target_btf_id
        ret = libbpf.lib().bpf_link_create(fdnum(prog_fd), int(target), attach_type, opts)
    if ret < 0:
        what = "attaching program fd %d (%s) to %d" % (fdnum(prog_fd), attach_type_name(attach_type), int(target))
        raise fail(what, ret, {
            errno.EEXIST: "another program is already attached there in exclusive mode",
            errno.EBUSY: "the hook is busy: a program is attached there another way",
            errno.EINVAL: "this kernel does not support links for this program type and "
                          "attach type, or the program was loaded for another attach type",
            errno.ESTALE: "the attached programs changed (expected_revision mismatch)",
        })
    return BpfFd(ret)


def raw_tracepoint_open(name, prog_fd, cookie=0):
    """Attach a raw_tracepoint (or tp_btf/tracing with name None) program; returns the link."""
    # raw bpf(): libbpf 1.1's bpf_raw_tracepoint_open takes no cookie
    cname = create_string_buffer(name.encode("ascii")) if name else None
    attr = RawTracepointAttr(name=addressof(cname) if cname is not None else 0,
                             prog_fd=fdnum(prog_fd), cookie=cookie)
    ret = bpf_call.sys_bpf(BPF_RAW_TRACEPOINT_OPEN, attr)
    if ret < 0:
        raise fail("attaching program fd %d to raw tracepoint %s" % (fdnum(prog_fd), name),
                   ret, {errno.ENOENT: "this kernel has no raw tracepoint named %s" % name})
    return BpfFd(ret)


def link_update(link_fd, new_prog_fd, old_prog_fd=None):
    """Swap the program of a link (with old_prog_fd: only if that one is attached)."""
    opts = LinkUpdateOpts()
    if old_prog_fd is not None:
        opts.flags, opts.old_prog_fd = BPF_F_REPLACE, fdnum(old_prog_fd)
    ret = libbpf.lib().bpf_link_update(fdnum(link_fd), fdnum(new_prog_fd), opts)
    if ret < 0:
        raise fail("replacing the program of link fd %d" % fdnum(link_fd), ret, {
            errno.EPERM: "the attached program is not old_prog_fd, or " + PermissionHint.TEXT,
        })


def prog_query(target, attach_type, max_count=64):
    """Programs and links attached at a hook (BPF_PROG_QUERY): for TCX, ``target`` is an
    ifindex of the caller's network namespace. Returns dict(prog_ids, link_ids, revision);
    link_ids is [] on kernels before 6.6."""
    # raw bpf(): libbpf 1.1's bpf_prog_query_opts has no link_ids or revision
    prog_ids = (c_uint32 * max_count)()
    link_ids = (c_uint32 * max_count)()
    attr = ProgQueryAttr(target=int(target), attach_type=attach_type, count=max_count,
                         prog_ids=addressof(prog_ids), link_ids=addressof(link_ids))
    ret = bpf_call.sys_bpf(BPF_PROG_QUERY, attr)
    if ret < 0:
        raise fail("querying the programs attached to %d (%s)" % (int(target), attach_type_name(attach_type)), ret)
    count = min(attr.count, max_count)
    return {"prog_ids": list(prog_ids[:count]), "link_ids": [i for i in link_ids[:count] if i],
            "revision": attr.revision}


def link_detach(fd):
    """Detach a link from its hook; the link object stays until its last fd/pin is gone."""
    ret = libbpf.lib().bpf_link_detach(fdnum(fd))
    if ret < 0:
        raise fail("detaching link fd %d" % fdnum(fd), ret, {
            errno.EOPNOTSUPP: "this link type cannot be detached; unpin it and close its fds",
        })
