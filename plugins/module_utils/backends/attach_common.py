# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every hook of ebpf_attach shares: the program being attached (ProgramRef), errors that
carry their event type, pinned bpf_links, and the Hook interface the backend drives.

A hook decides from the kernel alone. ``read()`` returns what is attached at the hook now;
``needs_attach(state)`` / ``needs_detach(state)`` return the action to take (None: nothing to
do); ``attach`` / ``detach`` carry it out; ``verify_*`` read the kernel again and fail unless it
confirms the result; ``view(state)`` is what the module returns and diff mode shows.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import time

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.state import pin_state
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_journal import pin_replace
from ansible_collections.ebpf.observability.plugins.module_utils.backends.program import ProgramBackend, prog_facts
from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_state import LINKS_DIR, PROGS_DIR

# Actions a hook reports.
ATTACH, REPLACE, MOVE, DETACH = "attach", "replace", "move", "detach"
LINK_GONE_TIMEOUT = 2.0


class AttachError(BpfError):
    """A BpfError that knows its attachment-error type (attach_events.ERROR_TYPES)."""

    def __init__(self, msg, error_type, errno=None, hint=None, log=None):
        self.error_type = error_type
        super(AttachError, self).__init__(msg, errno=errno, hint=hint, log=log)


def error_type_of(err):
    """The event type of any BpfError raised while attaching."""
    kind = getattr(err, "error_type", None)
    if kind:
        return kind
    if err.errno == errno.ENODEV:
        return "interface_missing"
    if err.errno == errno.EBUSY:
        return "foreign_program"
    return "kernel_error"


# ------------------------------------------------------------------------- the program

class ProgramRef:
    """The pinned program to attach and the kernel's facts about it.

    Either ``name`` (an ebpf_program object) with ``program`` (one of its programs), or ``pin``
    (the path of any pinned program). A pin inside ``<pin_root>/<name>/progs/`` is the same as
    naming it. Links are pinned in ``<pin_root>/<name>/links/`` (with ``pin``: beside the pin)."""

    def __init__(self, pin_root, name=None, program=None, pin=None):
        self.pin_root = bpffs.check_pin_root(pin_root)
        if pin:
            pin = os.path.normpath(bpffs.check_on_bpffs(pin, "pin"))
            parts = os.path.relpath(pin, self.pin_root).split(os.sep)
            if len(parts) == 3 and parts[1] == PROGS_DIR and not parts[0].startswith(".."):
                name, program = parts[0], parts[2]
        self.name = name
        self.program = program
        if name:
            self.pin_dir = bpffs.pin_path(self.pin_root, name)
            self.pin = bpffs.pin_path(self.pin_dir, PROGS_DIR, program)
            self.links_dir = os.path.join(self.pin_dir, LINKS_DIR)
            self.link_prefix = program
        else:
            self.pin_dir = None
            self.pin = pin
            self.links_dir = os.path.dirname(pin)
            self.link_prefix = bpffs.check_name(os.path.basename(pin), "pin name")
        self.fd = self._open()
        try:
            self.info = sc.prog_info(self.fd)
        except BpfError as e:
            self.fd.close()
            raise AttachError("the object pinned at %s is not a program" % self.pin, "program_missing", errno=e.errno,
                              hint="pin a program there, or name the program with name and program")
        self.id = self.info["id"]
        self.type_name = self.info["type_name"]
        self.record = pin_state.read(self.pin_dir) if self.pin_dir else None
        self._owned = None

    def _open(self):
        if self.name and not os.path.isdir(self.pin_dir):
            raise AttachError("no BPF object named %s is loaded under %s" % (self.name, self.pin_root), "program_missing",
                              errno=errno.ENOENT, hint="load it first with ebpf.observability.ebpf_program name=%s" % self.name)
        if not os.path.exists(self.pin):
            hint = None
            if self.name:
                held = bpffs.list_pins(os.path.dirname(self.pin))
                hint = "the object holds: %s" % (", ".join(held) or "no programs")
            raise AttachError("program %s is not pinned at %s" % (self.program or os.path.basename(self.pin), self.pin),
                              "program_missing", errno=errno.ENOENT, hint=hint)
        try:
            return sc.obj_get(self.pin)
        except BpfError as e:
            raise AttachError("cannot open the program pinned at %s: %s" % (self.pin, e), "program_missing", errno=e.errno)

    def close(self):
        self.fd.close()

    @property
    def section(self):
        """The program's ELF section name when the load record has it, else None."""
        sections = (self.record or {}).get("sections") or {}
        return sections.get(self.program) if self.program else None

    @property
    def label(self):
        return "%s/%s" % (self.name, self.program) if self.name else self.pin

    def public(self):
        return {"name": self.name, "program": self.program, "pin": self.pin, "id": self.id,
                "tag": self.info["tag"], "type": self.type_name}

    def owns(self, prog_id):
        """Whether ``prog_id`` is this program or an older version of it: a program of the same
        ebpf_program object (its pins, load record or maps) with the same kernel name."""
        if not prog_id:
            return False
        if prog_id == self.id:
            return True
        if not self.name:
            return False
        if self._owned is None:
            self._owned = ProgramBackend(self.name, self.pin_root, check_mode=True).owned_prog_ids()
        if prog_id not in self._owned:
            return False
        return (prog_facts(prog_id) or {}).get("name") == self.info["name"]


def prog_label(prog_id):
    facts = prog_facts(prog_id)
    if facts and facts["name"]:
        return "program id %d (%s)" % (prog_id, facts["name"])
    return "program id %d" % prog_id


# ------------------------------------------------------------------------- pinned links

def read_link(path):
    """link_info of the link pinned at ``path``, or None when nothing is pinned there."""
    if not os.path.exists(path):
        return None
    try:
        with sc.obj_get(path) as fd:
            return sc.link_info(fd)
    except BpfError:
        return None


def pin_link(link_fd, path):
    """Pin a link at ``path``, atomically replacing the link pinned there (its last reference
    goes, which detaches it)."""
    bpffs.makedirs(os.path.dirname(path))
    pin_replace(link_fd, path)


def link_alive(link_id):
    """Link ``link_id`` is still in the kernel, its program possibly still running.

    Asked by listing, not by opening it: an unpinned link's last reference goes after an RCU grace
    period, and its program is detached later still, by a kernel worker; until then the link
    cannot be opened but still runs (a uprobe kept counting for a moment after its unpin)."""
    return sc.link_id_listed(link_id)


def wait_link_gone(link_id, what, timeout=LINK_GONE_TIMEOUT):
    """Wait until the kernel has released link ``link_id`` (it frees unpinned links shortly
    after the last reference goes, in a kernel worker); AttachError when it stays."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while link_alive(link_id):
        if time.monotonic() > deadline:
            raise AttachError("link %d (%s) is still in the kernel after its pin was removed" % (link_id, what),
                              "verify_failed", hint="another process holds it open (see `bpftool link show id %d`)" % link_id)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def unpin_link(path, what):
    """Detach the link pinned at ``path`` and remove the pin; True if there was one.

    Link types that can be detached explicitly (tcx, xdp) are detached before the unpin, so no
    other holder keeps them running; the others go with their last reference."""
    info = read_link(path)
    if info is None:
        return bpffs.unlink(path)
    try:
        with sc.obj_get(path) as fd:
            sc.link_detach(fd)
    except BpfError as e:
        if e.errno not in (errno.EOPNOTSUPP, sc.ENOTSUPP, errno.EINVAL):
            raise
    bpffs.unlink(path)
    wait_link_gone(info["id"], what)
    return True


class Hook:
    """Base of the hooks: see the module docstring."""

    name = None

    def __init__(self, backend):
        self.backend = backend
        self.prog = backend.prog
        self.params = backend.params
        self.check_mode = backend.check_mode

    def warn(self, text):
        self.backend.warnings.append(text)

    def read(self):
        """What is attached at the hook now (kernel truth)."""
        raise NotImplementedError

    def attached(self, state):
        """Our current program runs at the hook as asked."""
        raise NotImplementedError

    def holds_ours(self, state):
        """Our program, or an older version of it, runs at the hook."""
        raise NotImplementedError

    def needs_attach(self, state):
        """None, or the action that attaches our program (ATTACH, REPLACE, MOVE)."""
        raise NotImplementedError

    def needs_detach(self, state):
        """None, or DETACH when our program (or an older version) is attached."""
        return DETACH if self.holds_ours(state) else None

    def attach(self, state, action):
        raise NotImplementedError

    def detach(self, state):
        raise NotImplementedError

    def view(self, state):
        """What the module returns about the hook (and diff mode shows)."""
        raise NotImplementedError

    def netlink_keys(self, state):
        """[(key, prog_id)] of our program's (or an older version's) attachments at the hook that
        the kernel keeps no owner for (XDP programs, TC filters), keyed for state/attach_record."""
        return []

    def predict(self, state, action):
        """The view after ``action`` without doing it (check mode)."""
        raise NotImplementedError

    def verify_attached(self):
        """Read the kernel again; AttachError unless it runs our program at the hook."""
        state = self.read()
        if not self.attached(state):
            raise AttachError("the kernel does not confirm the attachment of %s (%s): %s"
                              % (self.prog.label, self.name, self.describe(state)), "verify_failed")
        return state

    def verify_detached(self):
        state = self.read()
        if self.holds_ours(state):
            raise AttachError("%s is still attached (%s) after detaching: %s"
                              % (self.prog.label, self.name, self.describe(state)), "verify_failed")
        return state

    def describe(self, state):
        return str(self.view(state) or "nothing attached")
