"""The README's commands from a plain shell: the block of "Ansible from a plain shell" (the line
that makes the venv's commands and the collection available, ansible-doc, status.yml against
this machine) run as written by bash, with the environment of a new login (no venv on PATH, no
ANSIBLE_COLLECTIONS_PATH), and its output free of warnings and ANSI codes."""
import os
import re
import subprocess

from test_playbooks import REPO

HEADING = "### Ansible from a plain shell"
CLEAN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": os.environ.get("HOME", "/root"),
             "LANG": "C.UTF-8", "TERM": "xterm"}


def readme_block(heading):
    """The first ```sh block after ``heading`` in the README."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("\n" + heading + "\n", 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def test_readme_shell_block_runs_from_a_new_shell():
    block = readme_block(HEADING)
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("make ")]
    assert any(c.startswith("ansible-doc ebpf.observability.") for c in commands), block
    assert any(c.startswith("ansible-playbook ") and "status.yml" in c for c in commands), block
    # as a user types it: not a sub-make of the make that runs these tests (no directory lines)
    user_env = dict((k, v) for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"))
    setup = subprocess.run(["make", "-s", "setup"], capture_output=True, text=True, cwd=REPO, check=False, env=user_env)
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    assert commands[0].replace("$PWD", REPO) in setup.stdout.splitlines()[-1], setup.stdout  # the line make setup prints
    bare = subprocess.run(["bash", "-c", "command -v ansible-playbook"], env=CLEAN_ENV, capture_output=True, text=True,
                          cwd=REPO, check=False)
    assert bare.returncode != 0, "ansible-playbook is on a new shell's PATH already: %s" % bare.stdout
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(commands)], env=CLEAN_ENV, capture_output=True,
                         text=True, cwd=REPO, check=False)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-6000:]
    assert "ebpf.observability.ebpf_program" in out.stdout and "OPTIONS" in out.stdout, text[-3000:]
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", out.stdout), text[-3000:]
    assert not re.search(r"\[(DEPRECATION )?WARNING\]|\w+Warning\b", text), text[-6000:]
    # Not a terminal: ansible-playbook writes no colours (ansible-doc sets its headings in bold
    # unless ANSIBLE_NOCOLOR is set, whatever the output).
    assert "\x1b[" not in out.stdout[out.stdout.index("PLAY ["):] + out.stderr


def test_make_install_gives_ansible_the_collection(tmp_path):
    """make install builds the tarball and installs it (under INSTALL_PATH here, not to touch the
    user's ~/.ansible): Ansible finds the collection there without this checkout."""
    out = subprocess.run(["make", "-s", "install", "INSTALL_PATH=%s" % tmp_path], capture_output=True, text=True, cwd=REPO,
                         check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    installed = tmp_path / "ansible_collections" / "ebpf" / "observability"
    assert (installed / "MANIFEST.json").is_file() and not (installed / ".venv").exists()
    env = dict(CLEAN_ENV, ANSIBLE_COLLECTIONS_PATH=str(tmp_path))
    doc = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-doc"), "ebpf.observability.ebpf_info"], env=env,
                         capture_output=True, text=True, cwd=str(tmp_path), check=False)
    assert doc.returncode == 0 and "OPTIONS" in doc.stdout, doc.stderr
    assert str(installed) in doc.stdout  # the installed copy, not the checkout
