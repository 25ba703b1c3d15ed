# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the XDP multi-program options (libxdp's dispatcher) of ebpf_attach."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):  # pylint: disable=too-few-public-methods

    DOCUMENTATION = r"""
options:
  multiprog:
    description:
      - How an XDP program shares its interface with other tools' XDP programs, through libxdp's
        multi-program dispatcher (the one C(xdp-loader) and bpfman use; C(libxdp1) on the host).
        The dispatcher calls up to ten component programs by O(priority), going on to the next
        while a component returns one of its O(chain_call_actions).
      - V(auto) joins the dispatcher the interface runs; on an interface that runs nothing, or
        where the host cannot run a dispatcher, it attaches directly, as V(never) does. V(always)
        makes a dispatcher when the interface runs none, and fails where the host cannot run one.
        Where another tool loads its XDP program at boot too, use V(always), so whichever comes
        first after a reboot (the restore command or the other tool) makes the dispatcher the
        other joins.
      - A lone program that is not ours is never replaced without O(force), whatever the setting.
      - A dispatcher needs C(freplace) programs (BPF trampolines) and a program loaded by
        M(ebpf.observability.ebpf_program) (O(name), not O(pin)); the result's
        RV(multiprog) says whether it was used and, when not, why.
      - Our component shares every map with the pinned program, so its counters are the pinned
        object's. An upgrade (or another O(priority)) adds the new component, then removes the
        old one (two atomic dispatcher swaps; for the moment between them both run, and a counter
        may count a frame twice). Detaching removes only our component; libxdp removes the
        dispatcher with its last component.
    type: str
    choices: [auto, always, never]
    default: auto
  chain_call_actions:
    description:
      - The XDP actions after which the dispatcher calls the next component (default the
        program's own C(XDP_RUN_CONFIG), else V(pass)). An observer returning V(pass) should keep
        V(pass) so the programs after it still see every packet.
    type: list
    elements: str
    choices: [aborted, drop, pass, tx, redirect]
"""
