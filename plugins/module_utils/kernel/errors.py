# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors raised by the kernel layer.

Every failure the kernel layer reports is a BpfError: a message that says what failed and
what to do about it, the errno when the kernel gave one, and, for verifier rejections, the
verifier log.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno as _errno
import os


class BpfError(Exception):
    """A kernel-layer failure with an actionable message."""

    def __init__(self, msg, errno=None, log=None, hint=None):
        self.msg = msg
        self.errno = errno
        self.log = log
        self.hint = hint
        super(BpfError, self).__init__(self.__str__())

    def __str__(self):
        text = self.msg
        if self.errno:
            text += " (%s: %s)" % (_errno.errorcode.get(self.errno, self.errno), os.strerror(self.errno))
        if self.hint:
            text += ". " + self.hint[:1].upper() + self.hint[1:]
        return text


class PermissionHint:
    """Shared wording for EPERM/EACCES from bpf()."""

    TEXT = ("run as root, or grant CAP_BPF (plus CAP_NET_ADMIN for networking hooks and "
            "CAP_PERFMON for tracing hooks)")


def errno_error(what, err, hint=None):
    """Build a BpfError for an errno returned by the kernel or libbpf (positive or negative)."""
    err = abs(err)
    if hint is None and err == _errno.EPERM:
        hint = PermissionHint.TEXT
    return BpfError(what, errno=err, hint=hint)
