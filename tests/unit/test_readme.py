"""The role variables table (docs/role-variables.md) is the roles' argument specs."""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "scripts"))

import role_variables  # noqa: E402  pylint: disable=wrong-import-position


def test_role_variables_table_is_in_sync():
    assert role_variables.readme_section() == role_variables.tables().strip("\n"), \
        "run: .venv/bin/python scripts/role_variables.py, and paste it between the markers of docs/role-variables.md"
