# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which netlink attachments (XDP, TC filters) ebpf_attach made for programs it did not load.

A program of an ebpf_program object is the collection's by its load record, and so is wherever
it runs. A program given by its pin alone (``pin:``) may belong to another tool, which may have
attached it itself; the kernel keeps no owner for an XDP program or a TC filter, so ebpf_attach
records each such attachment it makes here and detaches only those (or any with ``force``).

The record is a JSON record pinned at ``<pin_root>/-pin-attachments`` (pin_state's format; a
name no object can take, since object names never start with '-'). It lives on bpffs, so it
vanishes at reboot together with the attachments and program ids it names.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.state import pin_state

RECORD_PIN = "-pin-attachments"


def _path(pin_root):
    return os.path.join(pin_root, RECORD_PIN)


def read(pin_root):
    """{key: prog_id} of the recorded attachments."""
    record = pin_state.read_record(_path(pin_root)) or {}
    return dict((k, v) for k, v in (record.get("attachments") or {}).items() if isinstance(v, int))


def made_by_us(pin_root, key, prog_id):
    return read(pin_root).get(key) == prog_id


def update(pin_root, add=(), remove=()):
    """Record ``add`` ([(key, prog_id)]) and forget the keys in ``remove``; writes only when
    that changes the record."""
    current = read(pin_root)
    wanted = dict(current)
    for key in remove:
        wanted.pop(key, None)
    wanted.update(add)
    if wanted == current:
        return
    if not wanted:
        bpffs.unlink(_path(pin_root))
        return
    bpffs.makedirs(pin_root)
    pin_state.write_record(_path(pin_root), {"attachments": wanted})
