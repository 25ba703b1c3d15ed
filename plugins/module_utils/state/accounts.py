# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host's users and groups, looked up by name through the name service (Python's
``pwd``/``grp``): the owners of the files ebpf_host writes, the account its service runs as, the
group given read access to the pins."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import pwd


def _entry(lookup, name):
    try:
        return lookup(name)
    except KeyError:
        return None


def user(name):
    """The passwd entry of the user ``name``, or None when the host has no such user."""
    return _entry(pwd.getpwnam, name)


def group(name):
    """The group entry of the group ``name``, or None when the host has no such group."""
    return _entry(grp.getgrnam, name)


def group_exists(name):
    return group(name) is not None


def groups_of(name):
    """The names of the supplementary groups the user ``name`` is a member of."""
    return set(g.gr_name for g in grp.getgrall() if name in g.gr_mem)
