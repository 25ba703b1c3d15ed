"""Every role has a README; its YAML examples are plays whose roles exist, whose variables are
options of the role's argument spec, and whose ebpf_programs declaration the role's planner
accepts for the collection's programs (the filter the role runs, with this host's kernel features).
The public roles' READMEs never call a role internal, the internal role's always does."""
import glob
import os
import re

import pytest
import yaml

from ansible_collections.ebpf.observability.plugins.module_utils.backends.host_plan import ebpf_programs_plan
from ansible_collections.ebpf.observability.plugins.module_utils.backends.info import InfoBackend

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = sorted(os.path.basename(os.path.dirname(p)) for p in glob.glob(os.path.join(REPO, "roles", "*", "meta")))
INTERNAL = {"ebpf_runtime"}
OTHER_COLLECTIONS_ROLES = {"prometheus.prometheus.node_exporter"}  # the ebpf_exporter README's recipe


def _yaml(*parts):
    with open(os.path.join(REPO, *parts), encoding="utf-8") as f:
        return yaml.safe_load(f)


def readme(role):
    with open(os.path.join(REPO, "roles", role, "README.md"), encoding="utf-8") as f:
        return f.read()


def role_uses(node):
    """(role name, vars) of every role a play or task list names."""
    if isinstance(node, list):
        for item in node:
            yield from role_uses(item)
    elif isinstance(node, dict):
        if "role" in node:
            yield node["role"], node.get("vars", {})
        for key in ("ansible.builtin.import_role", "ansible.builtin.include_role"):
            if key in node:
                yield node[key]["name"], node.get("vars", {})
        for key in ("roles", "tasks"):
            yield from role_uses(node.get(key))


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_a_readme_that_says_whether_it_is_internal(role):
    text = readme(role)
    assert text.startswith("# ebpf.observability.%s" % role)
    assert ("internal" in text.split("\n", 1)[0].lower()) == (role in INTERNAL)


@pytest.mark.parametrize("role", sorted(set(ROLES) - INTERNAL))
def test_readme_examples_use_the_roles_as_specified(role):
    plays = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", readme(role), re.S)]
    assert plays, "the README shows how to use the role"
    features = InfoBackend("/sys/fs/bpf/ebpf_observability", gather=("features",)).run()["features"]
    builtin = _yaml("roles", "ebpf_programs", "vars", "main.yml")["_ebpf_programs_builtin"]
    for used, variables in role_uses(plays):
        if used in OTHER_COLLECTIONS_ROLES:
            continue
        assert used.startswith("ebpf.observability."), used
        name = used.split(".")[-1]
        options = _yaml("roles", name, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
        assert set(variables) <= set(options), set(variables) - set(options)
        if "ebpf_programs" in variables:
            plan = ebpf_programs_plan(variables["ebpf_programs"], builtin, features, os.uname().machine)
            assert plan["errors"] == [], plan["errors"]
