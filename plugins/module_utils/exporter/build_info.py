# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exporter's version, the collection's (galaxy.yml ``version``; a unit test keeps the two
equal): printed by ``ebpf-observability-exporter --version`` and written every pass as
``ebpf_observability_exporter_build_info{version, python_version} 1``, so a host says which
release it runs and a query can join on it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import platform

from ansible_collections.ebpf.observability.plugins.module_utils.exporter.families import MetricFamily

VERSION = "0.1.0"


def build_info_family():
    """``ebpf_observability_exporter_build_info``: 1, labelled with the version and Python."""
    family = MetricFamily("ebpf_observability_exporter_build_info",
                          "The ebpf.observability release the exporter comes from, and the Python running it",
                          "gauge", ("version", "python_version"))
    family.add((VERSION, platform.python_version()), 1)
    return family
