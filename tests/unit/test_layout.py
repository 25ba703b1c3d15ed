"""The layout of plugins/module_utils/ (its README.md): four rooms, imports that run one way, and
files small enough to read."""
import ast
import glob
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULE_UTILS = os.path.join(REPO, "plugins", "module_utils")
PACKAGE = "ansible_collections.ebpf.observability.plugins.module_utils"
MAX_LINES = 400

# Which rooms the code of each place may import from module_utils.
MAY_IMPORT = {
    "kernel": {"kernel"},
    "state": {"kernel", "state"},
    "backends": {"kernel", "state", "backends"},
    "exporter": {"kernel", "state", "exporter"},
    "modules": {"backends"},
    "filter": {"backends"},
}


def _python_files(*parts):
    return sorted(glob.glob(os.path.join(REPO, *parts, "**", "*.py"), recursive=True))


def _place(path):
    rel = os.path.relpath(path, os.path.join(REPO, "plugins")).split(os.sep)
    return rel[1] if rel[0] == "module_utils" else rel[0]


def _rooms_imported(path):
    """{room: line} of every module_utils import in a file, at any depth (lazy imports too)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    out = {}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] if node.module != PACKAGE else [PACKAGE + "." + a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name.startswith(PACKAGE + "."):
                out.setdefault(name[len(PACKAGE) + 1:].split(".")[0], node.lineno)
    return out


CHECKED = [p for p in _python_files("plugins") if _place(p) in MAY_IMPORT]


def test_the_rooms_are_the_picture():
    entries = sorted(e for e in os.listdir(MODULE_UTILS) if not e.startswith(("_", ".")))
    assert entries == ["README.md", "backends", "exporter", "kernel", "state"]
    for room in ("backends", "exporter", "kernel", "state"):
        with open(os.path.join(MODULE_UTILS, room, "__init__.py"), encoding="utf-8") as f:
            assert f.read() == ""
    with open(os.path.join(MODULE_UTILS, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    for room, allowed in MAY_IMPORT.items():
        assert "`%s/`" % room in readme or room in ("modules", "filter")


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: os.path.relpath(p, REPO))
def test_imports_run_one_way(path):
    place = _place(path)
    wrong = dict((room, line) for room, line in _rooms_imported(path).items() if room not in MAY_IMPORT[place])
    assert not wrong, "%s may import only %s, but imports %s" % (
        os.path.relpath(path, REPO), sorted(MAY_IMPORT[place]),
        ", ".join("%s (line %d)" % item for item in sorted(wrong.items())))


def test_module_utils_code_is_in_a_room():
    loose = [p for p in glob.glob(os.path.join(MODULE_UTILS, "*.py")) if os.path.basename(p) != "__init__.py"]
    assert not loose, "module_utils files outside a room: %s" % loose


@pytest.mark.parametrize("path", _python_files("plugins") + _python_files("molecule") + _python_files("scripts"),
                         ids=lambda p: os.path.relpath(p, REPO))
def test_files_are_at_most_400_lines(path):
    with open(path, encoding="utf-8") as f:
        lines = len(f.readlines())
    assert lines <= MAX_LINES, "%s has %d lines (at most %d)" % (os.path.relpath(path, REPO), lines, MAX_LINES)
