# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The system user and group a host's service runs as (the exporter's), converged in the
ebpf_host run: read through the name service (state/accounts), changed with shadow's
``groupadd``/``useradd``/``usermod``/``userdel``/``groupdel`` (judged by their exit status, as no
library here creates accounts), each step an item like the other host steps.

A user is created as a system account without a home directory or a login shell, its primary
group the account's group; further groups are added, never taken away (another role may have
given the user groups of its own).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import subprocess

from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.state import accounts

NOLOGIN = "/usr/sbin/nologin"
NO_HOME = "/nonexistent"


def _run(argv, what):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    if proc.returncode != 0:
        raise BpfError("cannot %s: %s exited with %d: %s" % (
            what, argv[0], proc.returncode, (proc.stderr or proc.stdout).strip()[:500]))


def converge_account(files, spec):
    """``spec``: {user, group, groups}; the group and the user made to exist, the user a member of
    ``groups`` (each of which must exist). ``files``: the HostFiles whose items and check mode are used."""
    group, user, extra = spec["group"], spec["user"], list(spec.get("groups") or [])
    missing = [g for g in extra if accounts.group(g) is None]
    if missing:
        raise BpfError("the groups %s do not exist on this host" % ", ".join(missing),
                       hint="create them first (the role that manages them runs before this one) or fix the groups")
    absent = accounts.group(group) is None
    if absent and not files.check_mode:
        _run(["groupadd", "--system", group], "create the group %s" % group)
    files.item("group", group, absent, "create")
    current = accounts.user(user)
    if current is None:
        if not files.check_mode:
            argv = ["useradd", "--system", "--gid", group, "--shell", NOLOGIN, "--home-dir", NO_HOME, "--no-create-home"]
            _run(argv + (["--groups", ",".join(extra)] if extra else []) + [user], "create the user %s" % user)
        files.item("user", user, True, "create")
        return
    lacking = sorted(set(extra) - accounts.groups_of(user))
    other_primary = absent or current.pw_gid != accounts.group(group).gr_gid
    if (lacking or other_primary) and not files.check_mode:
        _run(["usermod", "--gid", group] + (["--append", "--groups", ",".join(lacking)] if lacking else []) + [user],
             "make %s a member of %s" % (user, ", ".join([group] + lacking)))
    files.item("user", user, bool(lacking) or other_primary, "change groups", groups=lacking)


def remove_account(files, spec):
    """The user, then its group, deleted where they exist."""
    for kind, name, lookup, argv in (("user", spec["user"], accounts.user, ["userdel"]),
                                     ("group", spec["group"], accounts.group, ["groupdel"])):
        exists = lookup(name) is not None
        if exists and not files.check_mode:
            _run(argv + [name], "delete the %s %s" % (kind, name))
        files.item(kind, name, exists, "delete")
