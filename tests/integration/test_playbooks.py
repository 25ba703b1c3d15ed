"""The modules through ansible-playbook against localhost (each playbook asserts its cases)."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOKS = os.path.join(REPO, "tests", "playbooks")


def run_playbook(playbook, extra_vars):
    env = dict(os.environ,
               ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "build", "collections"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
           "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable,
           "-e", json.dumps(extra_vars), os.path.join(PLAYBOOKS, playbook)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, check=False)


@pytest.mark.playbook
def test_ebpf_program_playbook(bpf_objects):
    out = run_playbook("ebpf_program.yml", {"objects": bpf_objects})
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]


@pytest.mark.parametrize("module", ["ebpf_program"])
def test_ansible_doc_renders(module):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "build", "collections"), ANSIBLE_NOCOLOR="1")
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "ebpf.observability." + module],
                         env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "OPTIONS" in out.stdout and "RETURN VALUES" in out.stdout and "EXAMPLES" in out.stdout
