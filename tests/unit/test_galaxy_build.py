"""What users get: `ansible-galaxy collection build` yields user content only (no lab, benchmark,
test, cache, stand-in or build files, whatever the clone holds), and ansible-builder reads the
execution environment dependencies (meta/execution-environment.yml) of the collection."""
import os
import subprocess
import sys
import tarfile

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
# Nothing of these may ship (path prefixes and file name parts).
DEVELOPMENT_ONLY = ("tests/", "molecule/", "scripts/", ".ci/", ".config/", "build/", "changelogs/fragments/",
                    "Makefile", "pytest.ini", "requirements.txt", ".ansible-lint", ".gitignore",
                    "playbooks/demo_lab.yml")
NEVER = (".pytest_cache", "__pycache__", ".pyc", ".bpf.o", ".whl", ".venv", "get_pip", "bench")
USER_CONTENT = ("COPYING", "LICENSES/GPL-3.0-or-later.txt", "LICENSES/GPL-2.0-only.txt", "LICENSES/BSD-2-Clause.txt",
                "CHANGELOG.rst", "changelogs/changelog.yaml", "README.md", "meta/runtime.yml",
                "meta/execution-environment.yml", "monitoring/prometheus/ebpf_observability.rules.yml",
                "monitoring/grafana/ebpf_observability.json", "bpf/Makefile", "bpf/xdp_counter.bpf.c",
                "playbooks/site.yml", "plugins/modules/ebpf_program.py", "roles/ebpf_programs/README.md")


def test_the_tarball_holds_user_content_only(tmp_path):
    # what a local test run leaves behind must not ship either
    os.makedirs(os.path.join(REPO, ".pytest_cache"), exist_ok=True)
    out = subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path),
                          REPO], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    with open(os.path.join(REPO, "galaxy.yml"), encoding="utf-8") as f:
        version = yaml.safe_load(f)["version"]
    with tarfile.open(os.path.join(str(tmp_path), "ebpf-observability-%s.tar.gz" % version)) as tar:
        files = sorted(m.name for m in tar.getmembers() if m.isfile() or m.issym())
    shipped = [f for f in files if f.startswith(DEVELOPMENT_ONLY) or any(part in f for part in NEVER)]
    assert shipped == [], shipped
    missing = [f for f in USER_CONTENT if f not in files]
    assert missing == [], missing


def test_ansible_builder_reads_the_execution_environment_dependencies():
    out = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-builder"), "introspect", os.path.join(REPO, "build", "collections")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    found = yaml.safe_load(out.stdout)
    system = [line.split("#")[0].strip() for line in found["system"] if "ebpf.observability" in line]
    with open(os.path.join(REPO, "meta", "ee-bindep.txt"), encoding="utf-8") as f:
        assert system == [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert isinstance(found["python"], list)
