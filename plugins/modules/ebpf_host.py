#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ebpf_host
short_description: Converge a host's eBPF programs, their files and units in one run
version_added: "0.1.0"
description:
  - Takes a host's whole declaration (the O(programs) of the M(ebpf.observability.ebpf_programs)
    role) and converges the host in one module run, through the same backends as
    M(ebpf.observability.ebpf_program), M(ebpf.observability.ebpf_tc_rules) and
    M(ebpf.observability.ebpf_attach), with the same decisions from what the kernel reports.
  - Plans the programs for this host from its probed kernel features (variants), checks the plan
    (known programs, BTF, the interfaces named, objects built for this architecture) before
    anything changes, ships the object and unit files whose checksums differ (the action plugin
    sends a file's content only when the host's copy differs), mounts bpffs, prunes what is no
    longer declared, loads, installs the traffic classes, attaches, writes the plan the restore
    command re-applies at boot, and enables the units.
  - When a step fails, the host is rolled back to what it had before the run (what this run
    attached is detached, what it loaded new is unloaded) and the module fails naming the step
    and the kernel's answer. Failed attachments are counted in the event file, as with
    M(ebpf.observability.ebpf_attach).
  - Holds the host lock (C(/run/ebpf-observability.lock)) for the whole run, so runs against one
    host never interleave.
  - O(state=absent) removes everything the role put on the host, touching only what the
    collection pinned and wrote.
author:
  - ebpf.observability contributors (@ebpf-observability)
extends_documentation_fragment:
  - ebpf.observability.ebpf
options:
  state:
    description: C(present) converges to the declaration; C(absent) removes the programs, units and files.
    type: str
    choices: [present, absent]
    default: present
  kernel:
    description:
      - Converge the kernel state (the programs, their pins, object files and restore plan).
        With C(false) only O(files), O(absent_files) and O(units) are kept (the exporter role).
    type: bool
    default: true
  restart:
    description: Restart the O(units) that run (C(start=true)) even when none of this run's files changed.
    type: bool
    default: false
  programs:
    description: The declared programs, as the C(ebpf_programs) variable of the ebpf_programs role.
    type: list
    elements: dict
    default: []
  catalog:
    description: The programs the declaration may name, with their variants (the role's catalog).
    type: dict
    default: {}
  objects_dir:
    description:
      - Directory on the controller holding the built objects, one subdirectory per architecture
        (read by the action plugin, which sends their checksums as O(objects)).
    type: path
  objects:
    description: "Internal (set by the action plugin): the checksum and key of every object, by architecture and file."
    type: dict
    default: {}
  files:
    description:
      - Further files to keep on the host. The action plugin replaces C(content) or C(src) by a
        checksum, and sends the content only when the host's copy differs.
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description: Absolute path on the host.
        type: path
        required: true
      content:
        description: The file's text.
        type: str
      src:
        description: A file on the controller.
        type: path
      mode:
        description: Octal mode.
        type: str
        default: "0644"
      unit:
        description: A systemd unit file (systemd reloads its units when one changed).
        type: bool
        default: false
      validate:
        description:
          - A command that checks new content before it replaces the file, C(%s) standing for a copy
            of it (as the template module's). Split like a shell does, never run by one.
        type: str
      checksum:
        description: Internal (set by the action plugin).
        type: str
      key:
        description: Internal (set by the action plugin).
        type: str
  contents:
    description: "Internal (set by the action plugin): the base64 content of the files the host lacks, by key."
    type: dict
    default: {}
  units:
    description: Systemd units to enable (C(state=present)) or disable and stop (C(state=absent)).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The unit's name.
        type: str
        required: true
      always:
        description: Enabled even when O(restore_at_boot=false).
        type: bool
        default: false
      stop:
        description: With O(state=absent), stop the unit too.
        type: bool
        default: false
      start:
        description: Keep the unit running (with O(kernel=false)); restarted when a file of this run changed (or O(restart)).
        type: bool
        default: false
      enabled:
        description: With O(kernel=false), enable the unit (C(false) disables and stops it).
        type: bool
        default: true
      restart:
        description: Restart the running unit when a file of this run changed (or O(restart)).
        type: bool
        default: true
  account:
    description:
      - With O(kernel=false), the system user and group a service runs as (the exporter role's),
        created without a home or login shell; O(state=absent) deletes them.
    type: dict
    suboptions:
      user:
        description: The user's name.
        type: str
        required: true
      group:
        description: Its primary group's name.
        type: str
        required: true
      groups:
        description: Further groups (they must exist), added to the user's, never removed.
        type: list
        elements: str
        default: []
  directories:
    description: With O(kernel=false), directories to keep (before the O(files)); O(state=absent) removes them when empty.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path on the host.
        type: path
        required: true
      mode:
        description: Octal mode.
        type: str
        default: "0755"
      owner:
        description: Its owner (left alone when not given).
        type: str
      group:
        description: Its group (left alone when not given).
        type: str
      create:
        description: C(false) for a directory another role manages; it must exist.
        type: bool
        default: true
      made_by:
        description: With O(directories[].create=false), what makes it (named in the error).
        type: str
  grant_access:
    description:
      - With O(kernel=false), give O(grant_access.group) read access to the pins of the objects
        O(grant_access.programs) under O(grant_access.pin_root) (what the exporter's C(--grant-access) does).
    type: dict
    suboptions:
      pin_root:
        description: The pin root.
        type: path
        required: true
      group:
        description: The group.
        type: str
        required: true
      programs:
        description: The objects' names.
        type: list
        elements: str
        default: []
  absent_files:
    description: Files to remove (with O(state=absent), besides the plan, event and object files).
    type: list
    elements: path
    default: []
  prune:
    description: Unload the objects under the pin root that are not declared, and delete object files no longer shipped.
    type: bool
    default: true
  restore_at_boot:
    description: Write the plan the restore command re-applies at boot (and enable the units).
    type: bool
    default: true
  install_dir:
    description: Where the object files go.
    type: path
    default: /usr/local/lib/ebpf_observability
  runtime_dir:
    description:
      - Where the host keeps the collection's copies of what its distribution lacks (Debian 11, Ubuntu 22.04) -
        C(libbpf.so.1) (libbpf 1.x) and the pure-Python pyroute2 0.7 - shipped from the controller's own by
        checksum. Unset, nothing is shipped and such a host is refused with what to install.
      - The modules load these copies only for what the host lacks; the other modules look in
        C(/usr/local/lib/ebpf_observability/runtime) or the environment's C(EBPF_OBSERVABILITY_RUNTIME_DIR).
      - O(state=absent) removes the copies.
    type: path
  runtime:
    description: "Internal (set by the action plugin from O(runtime_dir)): the controller's copies offered, by checksum."
    type: dict
  config_dir:
    description: Where the restore plan (C(restore.json)) goes.
    type: path
    default: /etc/ebpf_observability
  events_dir:
    description: Directory of the attachment event file.
    type: path
    default: /var/lib/ebpf_observability
  bpffs:
    description: Where bpffs is mounted (it is mounted there when it is not).
    type: path
    default: /sys/fs/bpf
  bpffs_options:
    description: Mount options for bpffs.
    type: str
    default: nosuid,nodev,noexec,mode=0700
seealso:
  - module: ebpf.observability.ebpf_program
  - module: ebpf.observability.ebpf_attach
  - module: ebpf.observability.ebpf_info
"""

EXAMPLES = r"""
# ebpf_host takes the ebpf_programs role's catalogue and objects: the role runs it this way.
- name: Converge the host (what the ebpf_programs role does, in one task)
  ebpf.observability.ebpf_host:
    programs:
      - name: xdp_counter
        attach: [{hook: xdp, interface: lo, mode: skb}]
      - name: syscall_latency
    catalog: "{{ _ebpf_programs_catalog }}"
    objects_dir: "{{ ebpf_build_objects_dir }}"
  register: converged

- name: Remove what the role put on the host
  ebpf.observability.ebpf_host:
    state: absent
"""

RETURN = r"""
items:
  description: One entry per step in run order, each with C(step) (directory, file, mount, prune_detach, prune_unload,
    detach, load, classes, attach, unit, remove, rollback_detach, rollback_unload), C(name), C(changed), C(action),
    and for attachments C(where), C(xdp_mode), C(tc_api) and C(attachment).
  returned: always
  type: list
  elements: dict
  sample: [{step: attach, name: xdp_counter, where: "xdp_counter/xdp_counter xdp on eth0", changed: true,
            action: attach, xdp_mode: drv}]
plan:
  description: The plan for this host (C(state=present)); C(exporter_programs) is what the exporter reads.
  returned: success and state is present
  type: dict
systemd:
  description: Whether systemd runs the host (units are enabled and started only then).
  returned: success
  type: bool
needs:
  description: Keys of files whose content the host needs (the action plugin sends them and runs the module again).
  returned: when content is missing
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ebpf.observability.plugins.module_utils.backends.host import HostBackend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.module_runner import run_backend
from ansible_collections.ebpf.observability.plugins.module_utils.backends.option_types import check_before_conversion


def main():
    argument_spec = dict(
        state=dict(type="str", default="present", choices=["present", "absent"]),
        kernel=dict(type="bool", default=True),
        restart=dict(type="bool", default=False),
        programs=dict(type="list", elements="dict", default=[]),
        catalog=dict(type="dict", default={}),
        objects_dir=dict(type="path"),
        objects=dict(type="dict", default={}),
        files=dict(type="list", elements="dict", default=[], options=dict(
            dest=dict(type="path", required=True),
            content=dict(type="str"),
            src=dict(type="path"),
            mode=dict(type="str", default="0644"),
            unit=dict(type="bool", default=False),
            validate=dict(type="str"),
            checksum=dict(type="str"),
            key=dict(type="str", no_log=False),
        )),
        contents=dict(type="dict", default={}, no_log=False),
        units=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            always=dict(type="bool", default=False),
            stop=dict(type="bool", default=False),
            start=dict(type="bool", default=False),
            enabled=dict(type="bool", default=True),
            restart=dict(type="bool", default=True),
        )),
        account=dict(type="dict", options=dict(
            user=dict(type="str", required=True),
            group=dict(type="str", required=True),
            groups=dict(type="list", elements="str", default=[]),
        )),
        directories=dict(type="list", elements="dict", default=[], options=dict(
            path=dict(type="path", required=True),
            mode=dict(type="str", default="0755"),
            owner=dict(type="str"),
            group=dict(type="str"),
            create=dict(type="bool", default=True),
            made_by=dict(type="str"),
        )),
        grant_access=dict(type="dict", options=dict(
            pin_root=dict(type="path", required=True),
            group=dict(type="str", required=True),
            programs=dict(type="list", elements="str", default=[]),
        )),
        absent_files=dict(type="list", elements="path", default=[]),
        prune=dict(type="bool", default=True),
        restore_at_boot=dict(type="bool", default=True),
        pin_root=dict(type="path", default="/sys/fs/bpf/ebpf_observability"),
        install_dir=dict(type="path", default="/usr/local/lib/ebpf_observability"),
        runtime_dir=dict(type="path"),
        runtime=dict(type="dict", no_log=False),
        config_dir=dict(type="path", default="/etc/ebpf_observability"),
        events_dir=dict(type="path", default="/var/lib/ebpf_observability"),
        bpffs=dict(type="path", default="/sys/fs/bpf"),
        bpffs_options=dict(type="str", default="nosuid,nodev,noexec,mode=0700"),
    )
    check_before_conversion(argument_spec, AnsibleModule)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)

    def action():
        backend = HostBackend(module.params, check_mode=module.check_mode)
        return backend, backend.run()

    run_backend(module, action, types_checked=True, runtime_dir=module.params["runtime_dir"])


if __name__ == "__main__":
    main()
