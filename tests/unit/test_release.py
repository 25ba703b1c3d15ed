"""What a release carries is true: the licences galaxy.yml lists have their texts and are the
ones the sources declare, the action group holds every module, the exporter's version is the
collection's, and the changelog fragments are valid and the rendered changelog current."""
import glob
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from ansible_collections.ebpf.observability.plugins.module_utils.exporter import build_info, cli
from ansible_collections.ebpf.observability.plugins.module_utils.exporter.text_format import TextRenderer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def _yaml(*parts):
    with open(os.path.join(REPO, *parts), encoding="utf-8") as f:
        return yaml.safe_load(f)


def test_every_listed_licence_has_its_text_and_every_declared_one_is_listed():
    listed = set(_yaml("galaxy.yml")["license"])
    texts = set(os.path.basename(p)[:-len(".txt")] for p in glob.glob(os.path.join(REPO, "LICENSES", "*.txt")))
    assert listed == texts
    declared = set()
    for path in glob.glob(os.path.join(REPO, "bpf", "*.[ch]")) + glob.glob(os.path.join(REPO, "plugins", "**", "*.py"),
                                                                           recursive=True):
        with open(path, encoding="utf-8") as f:
            head = f.read(400)
        spdx = re.search(r"SPDX-License-Identifier: \(?([^)\n]+)", head)
        if spdx:
            declared.update(re.split(r"\s+OR\s+", spdx.group(1).strip()))
        elif "GNU General Public License v3.0+" in head:
            declared.add("GPL-3.0-or-later")
    assert declared == listed
    with open(os.path.join(REPO, "COPYING"), encoding="utf-8") as a, \
            open(os.path.join(REPO, "LICENSES", "GPL-3.0-or-later.txt"), encoding="utf-8") as b:
        assert a.read() == b.read()


def test_the_action_group_holds_every_module():
    modules = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, "plugins", "modules", "*.py")))
    assert sorted(_yaml("meta", "runtime.yml")["action_groups"]["ebpf"]) == modules


def test_the_exporter_version_is_the_collections(capsys):
    assert build_info.VERSION == _yaml("galaxy.yml")["version"]
    with pytest.raises(SystemExit) as stop:
        cli.parse_args(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == "ebpf-observability-exporter " + build_info.VERSION


def test_the_build_info_metric_carries_the_version():
    text = TextRenderer().render([build_info.build_info_family()])
    assert re.search(r'^ebpf_observability_exporter_build_info\{python_version="[0-9.]+",version="%s"\} 1$'
                     % re.escape(build_info.VERSION), text, re.M), text


def test_changelog_fragments_are_valid_and_the_changelog_is_rendered():
    out = subprocess.run([os.path.join(REPO, ".venv", "bin", "antsibull-changelog"), "lint"], cwd=REPO, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr
    changes = _yaml("changelogs", "changelog.yaml")
    assert _yaml("galaxy.yml")["version"] in changes["releases"]
    with open(os.path.join(REPO, "CHANGELOG.rst"), encoding="utf-8") as f:
        rendered = f.read()
    for version in changes["releases"]:
        assert "v%s\n" % version in rendered


def test_every_filter_is_documented():
    from ansible_collections.ebpf.observability.plugins.filter.ebpf_programs import FilterModule  # pylint: disable=import-outside-toplevel
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "build", "collections"))
    out = subprocess.run([os.path.join(BIN, "ansible-doc"), "-t", "filter", "--list", "--json", "ebpf.observability"],
                         env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    listed = dict((name.split(".")[-1], text) for name, text in json.loads(out.stdout).items())
    assert sorted(listed) == sorted(FilterModule().filters())
    assert all(text and "UNDOCUMENTED" not in text and "(internal)" in text for text in listed.values()), listed
