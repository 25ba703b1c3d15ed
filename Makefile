# ebpf.observability — the two commands the README names are `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
COLLECTIONS := $(CURDIR)/build/collections
SANITY_ROOT := $(CURDIR)/build/sanity/ansible_collections/ebpf/observability
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)

.PHONY: setup collection bpf test sanity unit integration demo demo-clean bench clean

setup:
	bash scripts/setup.sh

# The collection as Ansible finds it: build/collections/ansible_collections/ebpf/observability -> .
collection:
	@mkdir -p $(COLLECTIONS)/ansible_collections/ebpf
	@ln -sfn $(CURDIR) $(COLLECTIONS)/ansible_collections/ebpf/observability

bpf:
	$(MAKE) -C bpf

test: setup collection
	$(MAKE) sanity
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) matrix
	$(MAKE) integration
	$(MAKE) vm-test

# ansible-test needs the tree at ansible_collections/<ns>/<name> as a real directory: sync a copy
# (a git index of its own, so ansible-test lists its files rather than the ignored build/).
sanity: collection
	@mkdir -p $(SANITY_ROOT)
	rsync -a --delete --exclude .venv --exclude build --exclude .git --exclude '*.bpf.o' \
		--exclude __pycache__ --exclude .pytest_cache --exclude tests/output ./ $(SANITY_ROOT)/
	cd $(SANITY_ROOT) && { [ -d .git ] || git init -q; } && git add -A \
		&& $(CURDIR)/$(BIN)/ansible-test sanity --venv --python 3.11 --color no

unit: collection
	$(BIN)/pytest -q tests/unit

integration: collection
	$(BIN)/pytest -q -m "not matrix" tests/integration

# The older ansible-core releases meta/runtime.yml admits (.venv has the newest): the unit tests
# and site, site again (no change), remove against localhost with each one's own virtualenv
# (scripts/setup.sh, pinned by tests/matrix/ansible-core-<version>.txt).
MATRIX_VENVS ?= $(HOME)/.cache/ebpf-observability/venvs
MATRIX := 2.17 2.18
.PHONY: matrix
matrix: collection
	set -e; for version in $(MATRIX); do \
		echo "ansible-core $$version"; \
		$(MATRIX_VENVS)/ansible-core-$$version/bin/pytest -q -p no:cacheprovider \
			tests/unit tests/integration/test_site_noop.py; \
	done

# The 2-VM lab (Linux 6.1 and 6.12, molecule/vm/) booted unless it runs, site.yml deployed to it,
# traffic, and a table of each VM's metrics from its node_exporter; `make demo-down` stops it.
demo: setup collection lab-image
	$(PY) molecule/vm/demo.py up
	$(BIN)/ansible-playbook -i build/lab/inventory.yml playbooks/demo_lab.yml

demo-clean: setup collection
	$(BIN)/ansible-playbook -i playbooks/inventory/localhost.yml playbooks/demo.yml -e demo_state=absent

bench: setup collection bpf
	$(PY) tests/bench/bench_program.py
	$(PY) tests/bench/bench_bpf_programs.py

clean:
	rm -rf build
	-$(MAKE) -C bpf clean

# The qemu lab (molecule/vm/): `lab-image` builds the guest image and kernels into
# /var/cache/ebpf-observability-lab unless the cache holds the current recipe (LAB_REBUILD=1
# forces it); `vm-smoke` runs the Molecule smoke scenario on a 6.1 and a 6.12 VM.
.PHONY: lab-image vm-smoke
lab-image: setup
	$(PY) molecule/vm/image.py $(if $(LAB_REBUILD),--rebuild) >/dev/null

vm-smoke: setup collection bpf lab-image
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/molecule test -s smoke

# ansible-lint with the production profile on the whole collection from its root (.ansible-lint:
# offline, against the collection as `make collection` links it).
.PHONY: lint
lint: setup collection
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --profile production

# The demo lab (make demo): stop its VMs. `demo-local` loads the objects on this host instead
# (`demo-clean` unloads them).
.PHONY: demo-down demo-local
demo-down: setup
	$(PY) molecule/vm/demo.py down

demo-local: setup collection bpf
	$(BIN)/ansible-playbook -i playbooks/inventory/localhost.yml playbooks/demo.yml

# Molecule scenarios on the qemu lab (molecule/<scenario>/, base config .config/molecule/config.yml,
# molecule/shared/README.md): default (6.1 and 6.12 VMs), reboot and remove (6.12), upgrade (6.1).
# `vm-test` runs default, then the one-VM scenarios two at a time (at most two VMs on this host):
# remove beside reboot followed by upgrade; each one's output is printed when it ends.
VM_SCENARIOS := vm-default vm-reboot vm-remove vm-upgrade
.PHONY: vm-test vm-reboot-upgrade $(VM_SCENARIOS)
$(VM_SCENARIOS): setup collection lab-image
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/molecule test -s $(@:vm-%=%)

vm-reboot-upgrade: vm-reboot
	$(MAKE) vm-upgrade

vm-test: setup collection lab-image
	$(MAKE) vm-default
	$(MAKE) -j2 --output-sync=target vm-remove vm-reboot-upgrade
