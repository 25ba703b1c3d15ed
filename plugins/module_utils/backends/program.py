# -*- coding: utf-8 -*-
# Copyright: ebpf.observability contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load, pin, upgrade and unload a BPF object under ``<pin_root>/<name>/``.

Layout of a loaded object::

    <pin_root>/<name>/progs/<program>   the object's programs
    <pin_root>/<name>/maps/<map>        every map of the object except .rodata/.data/.bss;
                                        reused by the next load of the same name, so counters
                                        survive upgrades
    <pin_root>/<name>/links/<link>      bpf_links made by ebpf_attach
    <pin_root>/<name>/state             the load record (pin_state)

Whether anything changes is decided from the kernel: the pinned objects' ids, tags and map
definitions, checked against the load record. An object whose file changed is loaded; when the
kernel reports the same tags, read-only data and map definitions, nothing changed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os

from ansible_collections.ebpf.observability.plugins.module_utils.kernel import attachments as att
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpf_syscall as sc
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import bpffs
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import capabilities
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import features
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import libbpf
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import object_features
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import named_sections
from ansible_collections.ebpf.observability.plugins.module_utils.kernel import object_file
from ansible_collections.ebpf.observability.plugins.module_utils.state import pin_state
from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_state import LINKS_DIR, MAPS_DIR, PROGS_DIR
from ansible_collections.ebpf.observability.plugins.module_utils.kernel.errors import BpfError
from ansible_collections.ebpf.observability.plugins.module_utils.state.pin_journal import PinJournal

MAP_DEFINITION_KEYS = ("type", "key_size", "value_size", "max_entries", "map_flags")


def _pinned(directory, info_fn):
    """{pin name: kernel info} for every pin in ``directory``."""
    found = {}
    for name in bpffs.list_pins(directory):
        path = os.path.join(directory, name)
        try:
            with sc.obj_get(path) as fd:
                info = info_fn(fd.fd)
        except BpfError:
            continue  # not an object of this kind: not ours to describe
        info["pin"] = path
        found[name] = info
    return found


def prog_facts(prog_id):
    """prog_info of a loaded program by id, or None when it is gone."""
    if not prog_id:
        return None
    try:
        with sc.prog_fd_by_id(prog_id) as fd:
            return sc.prog_info(fd)
    except BpfError:
        return None


def _program_view(name, info):
    return {"name": name, "kernel_name": info["name"], "type": info["type_name"], "id": info["id"],
            "tag": info["tag"], "pin": info["pin"], "map_ids": info.get("map_ids", [])}


def _map_view(name, info):
    return {"name": name, "type": info["type_name"], "id": info["id"], "key_size": info["key_size"],
            "value_size": info["value_size"], "max_entries": info["max_entries"],
            "map_flags": info["map_flags"], "pin": info["pin"]}


def _map_definition(view):
    return dict((k, view[k]) for k in MAP_DEFINITION_KEYS)


def _object_map_definition(m):
    return dict(_map_definition(m.definition()), type=sc.map_type_name(m.map_type))


def snapshot(pin_dir):
    """What the kernel has pinned for one object: programs, maps and the load record."""
    progs = _pinned(os.path.join(pin_dir, PROGS_DIR), sc.prog_info)
    maps = _pinned(os.path.join(pin_dir, MAPS_DIR), sc.map_info)
    return {"programs": [_program_view(n, i) for n, i in sorted(progs.items())],
            "maps": [_map_view(n, i) for n, i in sorted(maps.items())], "state": pin_state.read(pin_dir)}


def public_view(snap):
    """A snapshot as the module returns it (and as diff mode shows it)."""
    if snap is None:
        return {}
    return {"programs": [dict((k, v) for k, v in p.items() if k != "map_ids") for p in snap["programs"]],
            "maps": list(snap["maps"])}


class ProgramBackend:
    """The decisions and kernel changes behind the ebpf_program module."""

    def __init__(self, name, pin_root=bpffs.DEFAULT_PIN_ROOT, check_mode=False):
        self.name = bpffs.check_name(name, "name")
        self.pin_root = bpffs.check_pin_root(pin_root)
        self.pin_dir = bpffs.pin_path(self.pin_root, self.name)
        self.check_mode = check_mode
        capabilities.require_bpf()
        self.before = snapshot(self.pin_dir) if os.path.isdir(self.pin_dir) else None
        self.after = self.before
        self.changed = False
        self.detached = []
        self.warnings = []

    # -- decisions ----------------------------------------------------------------------

    def _record_matches_kernel(self, record):
        """Every id in the record is what the kernel has pinned now, and nothing else is."""
        progs = dict((p["name"], p["id"]) for p in self.before["programs"])
        maps = dict((m["name"], m["id"]) for m in self.before["maps"])
        return progs == record.get("programs_ids") and maps == record.get("maps_ids")

    def needs_load(self, identity):
        """True unless the same object, with the same options, is loaded and pinned intact."""
        if not self.before or not self.before["state"]:
            return True
        record = self.before["state"]
        return record.get("identity") != identity or not self._record_matches_kernel(record)

    def needs_unload(self):
        return self.before is not None

    def check_ownership(self):
        """Refuse to change a directory that is not the collection's own: one another user can
        write, one inside another object, or one holding pins its load record does not name."""
        bpffs.check_trusted(self.pin_dir)
        outer = pin_state.enclosing_object(self.pin_dir)
        if outer is not None:
            raise BpfError("%s lies inside %s, the directory of another object loaded by this collection"
                           % (self.pin_dir, outer), hint="use a pin root that is not inside an object directory")
        if self.before is None:
            return
        foreign = pin_state.foreign_pins(self.pin_dir, self.before["state"])
        if foreign:
            what = "has no load record of this collection" if self.before["state"] is None else \
                "holds pins its load record does not name"
            raise BpfError("%s %s (it holds %s): it was not made by ebpf_program, which leaves it as it is"
                           % (self.pin_dir, what, ", ".join(foreign[:8]) + (" and %d more" % (len(foreign) - 8) if len(foreign) > 8 else "")),
                           hint="choose another name, or remove what another tool pinned there yourself")

    def _same_content(self, content):
        """The kernel already runs this exact content (tags, data, map definitions)."""
        record = self.before and self.before["state"]
        return bool(record) and record.get("content") == content and self._record_matches_kernel(record)

    # -- present --------------------------------------------------------------------------

    def present(self, src, programs=None, replace_maps=False):
        if programs is not None and not programs:
            raise BpfError("programs must name at least one program; omit it to load all")
        self.check_ownership()
        data = object_file.read_checked(src)
        selection = sorted(set(programs)) if programs is not None else None
        identity = object_file.content_hash(data, selection)
        source = {"source": os.path.abspath(src), "source_sha256": hashlib.sha256(data).hexdigest()}
        if not self.needs_load(identity):
            self._note_source(source)
            return self.result()
        with libbpf.BpfObject(src, object_name=self.name) as obj:
            named_sections.assign_types(obj.programs)
            selected = self._select(obj, src, selection)
            replaced_maps = self._check_maps(obj, replace_maps)
            for prog in obj.programs:
                prog.autoload = prog in selected
            if self.check_mode:
                self._trial_load(obj, selected, replaced_maps)
            else:
                self._load_and_pin(obj, selected, replaced_maps, identity, source)
        return self.result()

    def _note_source(self, source):
        """Keep the record naming the file of what the kernel runs (XDP dispatcher components are
        loaded from it): a record-only update."""
        record = self.before["state"]
        if not self.check_mode and any(record.get(k) != v for k, v in source.items()):
            record.update(source)
            pin_state.write(self.pin_dir, record)

    def _select(self, obj, src, selection):
        if not obj.programs:
            raise BpfError("%s holds no BPF program (no SEC(\"...\") function)" % src)
        names = [p.name for p in obj.programs]
        if selection is None:
            return list(obj.programs)
        unknown = [n for n in selection if n not in names]
        if unknown:
            raise BpfError("program(s) %s not found in %s" % (", ".join(unknown), src),
                           hint="it holds: %s" % ", ".join(names))
        return [p for p in obj.programs if p.name in selection]

    def _check_maps(self, obj, replace_maps):
        """Names of the maps to replace; an error unless replace_maps when a map differs or is gone."""
        pinned = dict((m["name"], m) for m in (self.before or {}).get("maps", []))
        conflicts = []
        for m in obj.maps:
            old = pinned.get(m.name)
            if m.internal or old is None:
                continue
            want = _object_map_definition(m)
            if want != _map_definition(old):
                conflicts.append((m.name, old, want))
        # A pinned map the object no longer defines would be unpinned with its contents.
        gone = sorted(set(pinned) - set(m.name for m in obj.maps if not m.internal))
        if (conflicts or gone) and not replace_maps:
            fields = ("type", "key_size", "value_size", "max_entries", "map_flags")
            detail = ["map %s is pinned as %s key %d value %d max_entries %d flags %#x, the object defines "
                      "%s key %d value %d max_entries %d flags %#x"
                      % ((name,) + tuple(old[f] for f in fields) + tuple(new[f] for f in fields))
                      for name, old, new in conflicts]
            detail += ["map %s is pinned but the object no longer defines it" % name for name in gone]
            raise BpfError("map definition conflict for %s: %s" % (self.name, "; ".join(detail)),
                           hint="set replace_maps: true to replace or drop these maps (their contents are lost)")
        return [name for name, _old, _new in conflicts]

    def _content(self, obj, selected):
        """What the kernel runs for this load: program tags and types, read-only data, map definitions."""
        progs = {}
        for prog in selected:
            info = sc.prog_info(prog.fd)
            progs[prog.name] = {"tag": info["tag"], "type": info["type_name"]}
        data = {}
        maps = {}
        for m in obj.maps:
            if m.internal:
                # ".rodata", ".data", ".bss": the map name's prefix comes from the object name
                data[m.name[m.name.find("."):]] = hashlib.sha256(m.initial_value() or b"").hexdigest()
            else:
                maps[m.name] = _object_map_definition(m)
        return {"programs": progs, "data": data, "maps": maps}

    @staticmethod
    def _load(obj, selected):
        object_features.check(os.path.basename(obj.path), [(m.name, m.map_type) for m in obj.maps if not m.internal],
                              [(p.name, p.prog_type) for p in selected])
        try:
            obj.load()
        except BpfError as e:
            raise features.explain_load_error(e, [p.section for p in selected])

    def _trial_load(self, obj, selected, replaced_maps):
        """Check mode: load with fresh, unpinned maps (the verifier runs, nothing persists)."""
        for m in obj.maps:
            m.pin_path = None
        self._load(obj, selected)
        content = self._content(obj, selected)
        if self._same_content(content) and not replaced_maps:
            return
        self.changed = True
        self.after = self._predicted(obj, selected)

    def _predicted(self, obj, selected):
        pinned_maps = dict((m["name"], m) for m in (self.before or {}).get("maps", []))
        progs = []
        for prog in selected:
            info = sc.prog_info(prog.fd)
            progs.append({"name": prog.name, "kernel_name": info["name"], "type": info["type_name"],
                          "id": None, "tag": info["tag"],
                          "pin": os.path.join(self.pin_dir, PROGS_DIR, prog.name), "map_ids": []})
        maps = []
        for m in obj.maps:
            if m.internal:
                continue
            old = pinned_maps.get(m.name)
            maps.append({"name": m.name, "type": sc.map_type_name(m.map_type), "id": old["id"] if old else None,
                         "key_size": m.key_size, "value_size": m.value_size, "max_entries": m.max_entries,
                         "map_flags": m.map_flags, "pin": os.path.join(self.pin_dir, MAPS_DIR, m.name)})
        return {"programs": progs, "maps": maps, "state": None}

    def _load_and_pin(self, obj, selected, replaced_maps, identity, source):
        progs_dir = os.path.join(self.pin_dir, PROGS_DIR)
        maps_dir = os.path.join(self.pin_dir, MAPS_DIR)
        journal = PinJournal()
        try:
            journal.makedirs(progs_dir)
            journal.makedirs(maps_dir)
            existing_maps = set(bpffs.list_pins(maps_dir))
            for name in replaced_maps:
                journal.unpin(os.path.join(maps_dir, name))
            for m in obj.maps:
                m.pin_path = None if m.internal else bpffs.pin_path(maps_dir, m.name)
            self._load(obj, selected)
            for m in obj.maps:
                if not m.internal and (m.name not in existing_maps or m.name in replaced_maps):
                    journal.adopt(m.pin_path)
            content = self._content(obj, selected)
            if not self._same_content(content) or replaced_maps:
                self.changed = True
                self._pin_programs(journal, obj, selected, progs_dir, maps_dir)
            after = snapshot(self.pin_dir)
            pin_state.write(self.pin_dir, dict({
                "name": self.name,
                "identity": identity,
                "content": content,
                "sections": dict((p.name, p.section) for p in selected),
                "programs_ids": dict((p["name"], p["id"]) for p in after["programs"]),
                "maps_ids": dict((m["name"], m["id"]) for m in after["maps"]),
                "earlier_programs": self._earlier_versions(set(p["id"] for p in after["programs"])),
            }, **source))
            if self.before is None:
                self.changed = True
        except BaseException:
            problems = journal.rollback()
            if problems:
                self.warnings.append("rollback could not restore: %s" % "; ".join(problems))
            raise
        journal.commit()
        self.after = snapshot(self.pin_dir)

    def _earlier_versions(self, current_ids):
        """{id: tag} of earlier versions (pinned before this load, or in the earlier record) the
        kernel still runs under that id and tag: attached, they stay ours until detached."""
        record = (self.before or {}).get("state") or {}
        versions = dict(record.get("earlier_programs") or {})
        versions.update((str(p["id"]), p["tag"]) for p in (self.before or {}).get("programs", []))
        return dict((i, tag) for i, tag in versions.items()
                    if int(i) not in current_ids and (prog_facts(int(i)) or {}).get("tag") == tag)

    def _pin_programs(self, journal, obj, selected, progs_dir, maps_dir):
        wanted = set(p.name for p in selected)
        for prog in selected:
            journal.pin(prog.fd, bpffs.pin_path(progs_dir, prog.name))
        for name in bpffs.list_pins(progs_dir):
            if name not in wanted:
                journal.unpin(os.path.join(progs_dir, name))
        object_maps = set(m.name for m in obj.maps if not m.internal)
        for name in bpffs.list_pins(maps_dir):
            if name not in object_maps:
                journal.unpin(os.path.join(maps_dir, name))

    def owned_prog_ids(self):
        """Ids of the pinned programs, of those in the load record (earlier versions included), and
        of every program using one of the object's pinned maps (an older version, a component of
        an XDP dispatcher)."""
        ids = set(p["id"] for p in self.before["programs"])
        record = self.before["state"] or {}
        ids.update((record.get("programs_ids") or {}).values())
        ids.update(int(i) for i, tag in (record.get("earlier_programs") or {}).items()
                   if (prog_facts(int(i)) or {}).get("tag") == tag)
        map_ids = set(m["id"] for m in self.before["maps"])
        if map_ids:
            for prog_id in sc.prog_ids():
                try:
                    with sc.prog_fd_by_id(prog_id) as fd:
                        if map_ids.intersection(sc.prog_info(fd.fd).get("map_ids", [])):
                            ids.add(prog_id)
                except BpfError:
                    continue  # unloaded meanwhile
        return ids

    def absent(self, force=False):
        if not self.needs_unload():
            return self.result()
        self.check_ownership()
        found = att.find_attachments(self.owned_prog_ids(), other_namespaces=True)
        if found and not force:
            raise BpfError("%s is still attached: %s" % (self.name, "; ".join(att.describe(a) for a in found)),
                           hint="detach it with ebpf_attach state=absent, or set force: true to detach and unload")
        self.changed = True
        self.after = None
        self.detached = [att.describe(a) for a in found]
        if self.check_mode:
            return self.result()
        if found:
            # Our own pinned links go with their pins; then detach what is left.
            bpffs.remove_tree(os.path.join(self.pin_dir, LINKS_DIR))
            for attachment in att.find_attachments(self.owned_prog_ids(), other_namespaces=True):
                att.detach(attachment)
        bpffs.remove_tree(self.pin_dir)
        return self.result()

    # -- result ---------------------------------------------------------------------------

    def result(self):
        after = public_view(self.after)
        res = {
            "changed": self.changed,
            "name": self.name,
            "pin_dir": self.pin_dir,
            "programs": after.get("programs", []),
            "maps": after.get("maps", []),
            "diff": {"before": public_view(self.before), "after": after},
        }
        if self.detached:
            res["detached"] = self.detached
        return res
