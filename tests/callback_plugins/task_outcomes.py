# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test callback: writes every task result's outcome as JSON, for idempotence assertions."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: task_outcomes
type: aggregate
short_description: Write each task's changed/failed/skipped outcome to a JSON file
description:
  - Used by the collection's tests to assert that a second run changes nothing.
options:
  path:
    description: File the outcomes are written to when the playbook ends.
    env:
      - name: TASK_OUTCOMES_PATH
    required: true
"""

import json

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_outcomes"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.results = []

    def _record(self, result, outcome):
        self.results.append({
            "host": result._host.get_name(),  # pylint: disable=protected-access
            "task": result._task.get_name(),  # pylint: disable=protected-access
            "outcome": outcome,
            "changed": bool(result._result.get("changed", False)),  # pylint: disable=protected-access
        })

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        with open(self.get_option("path"), "w") as f:
            json.dump(self.results, f, indent=1)
