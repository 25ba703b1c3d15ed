"""Code that runs on targets (modules and module_utils) parses as Python 3.9, the oldest
Python the collection supports on targets."""
import ast
import glob
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET_CODE = sorted(glob.glob(os.path.join(REPO, "plugins", "module_utils", "**", "*.py"), recursive=True)
                     + glob.glob(os.path.join(REPO, "plugins", "modules", "*.py")))


@pytest.mark.parametrize("path", TARGET_CODE, ids=lambda p: os.path.relpath(p, REPO))
def test_parses_as_python_3_9(path):
    with open(path, encoding="utf-8") as f:
        ast.parse(f.read(), filename=path, feature_version=(3, 9))
