#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine needs to build, run and test the collection.
# Idempotent: apt and pip only act when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(clang llvm libbpf-dev libbpf1 bpftool iproute2 python3-venv python3-pip make rsync
    debootstrap debian-archive-keyring e2fsprogs qemu-system-x86 qemu-utils openssh-client
    prometheus-node-exporter prometheus python3-pyroute2 python3-yaml pci.ids systemtap-sdt-dev
    shellcheck locales bpftrace libbpf-tools xdp-tools)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    # The tests run Prometheus themselves on 127.0.0.1; the package's own server is not wanted.
    if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
        systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
    echo "$want" > "$stamp"
fi

# The older ansible-core releases of the tested matrix (make matrix), one virtualenv each outside
# the clone, pinned by tests/matrix/ansible-core-<version>.txt.
MATRIX_VENVS=${MATRIX_VENVS:-$HOME/.cache/ebpf-observability/venvs}
for req in tests/matrix/ansible-core-*.txt; do
    venv="$MATRIX_VENVS/$(basename "$req" .txt)"
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
    want=$(sha256sum "$req" | cut -d' ' -f1)
    if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
        "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
        echo "$want" > "$venv/.requirements.sha256"
    fi
done

# ansible-test bootstraps pip in its sanity venvs with a get-pip.py it downloads from outside the
# package index; give it the stand-in for the pip version this ansible-test asks for.
pip_version=$(.venv/bin/python - <<'PY'
import inspect
from ansible_test._internal import python_requirements as r
src = inspect.getsource(r.get_venv_packages)
print(src.split("pip='", 1)[1].split("'", 1)[0])
PY
)
get_pip="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if ! cmp -s scripts/ansible_test_get_pip.py "$get_pip"; then
    mkdir -p "$(dirname "$get_pip")"
    cp scripts/ansible_test_get_pip.py "$get_pip"
fi

# ansible-test runs its tests under en_US.UTF-8 and warns where that locale is missing.
if ! LC_ALL=en_US.UTF-8 "$PYTHON" -c 'import locale; locale.setlocale(locale.LC_ALL, "")' 2>/dev/null; then
    localedef -i en_US -c -f UTF-8 en_US.UTF-8
fi

if ! grep -qs ' /sys/fs/bpf bpf ' /proc/mounts; then
    mkdir -p /sys/fs/bpf
    mount -t bpf bpf /sys/fs/bpf
fi
echo "setup: ready"
