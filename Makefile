# ebpf.observability — the commands the README names: make setup, demo-local, demo-clean, demo, demo-down, test, install.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
COLLECTIONS := $(CURDIR)/build/collections
SANITY_ROOT := $(CURDIR)/build/sanity/ansible_collections/ebpf/observability
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
# The one line that gives a new shell the venv's commands (ansible-playbook, ansible-doc) and this
# checkout's collection; `make setup` prints it.
ENV_LINE := export PATH="$(CURDIR)/$(BIN):$$PATH" ANSIBLE_COLLECTIONS_PATH="$(COLLECTIONS)"

# No ANSI colours in logs: when CI is set or the output is not a terminal (MAKE_TERMOUT is unset),
# Ansible, Molecule, ansible-lint and ansible-test write plain text (Molecule without its box
# drawing borders).
ifneq ($(CI)$(if $(MAKE_TERMOUT),,notty),)
MOLECULE_OPTIONS := --no-command-borders
export NO_COLOR := 1
export ANSIBLE_NOCOLOR := 1
export ANSIBLE_FORCE_COLOR := 0
export PY_COLORS := 0
endif

.PHONY: setup collection bpf test sanity unit integration demo demo-clean bench clean

setup: collection
	bash scripts/setup.sh
	@echo 'setup: in a new shell, this line makes ansible-playbook, ansible-doc and the collection available:'
	@echo '  $(ENV_LINE)'

# The collection as Ansible finds it: build/collections/ansible_collections/ebpf/observability -> .
collection:
	@mkdir -p $(COLLECTIONS)/ansible_collections/ebpf
	@ln -sfn $(CURDIR) $(COLLECTIONS)/ansible_collections/ebpf/observability

bpf:
	$(MAKE) -C bpf

# The collection as a Galaxy tarball (build/dist/), installed where Ansible looks by default
# (~/.ansible/collections), or under INSTALL_PATH.
.PHONY: install
install: setup
	rm -rf build/dist
	$(BIN)/ansible-galaxy collection build --output-path build/dist .
	env -u ANSIBLE_COLLECTIONS_PATH $(if $(INSTALL_PATH),ANSIBLE_COLLECTIONS_PATH=$(INSTALL_PATH)) \
		$(BIN)/ansible-galaxy collection install --force $(if $(INSTALL_PATH),-p $(INSTALL_PATH)) build/dist/ebpf-observability-*.tar.gz

# Two mostly single-threaded sequences of about the same length on two cores, each one's output
# printed when it ends: the static checks (sanity, lint), the older ansible-core releases (matrix)
# and the end-to-end runs, beside the unit tests and the rest of the integration tests. Then the VM
# scenarios, which use both cores.
test: setup collection
	$(MAKE) -j2 --output-sync=recurse static-checks host-tests
	@echo "static checks and host tests took $$(( $$(date +%s) - $(STARTED) )) s"
	$(MAKE) vm-test
	@echo "make test took $$(( $$(date +%s) - $(STARTED) )) s"

.PHONY: static-checks host-tests
static-checks:
	$(MAKE) sanity
	$(MAKE) lint
	$(MAKE) matrix
	$(MAKE) integration-runs

host-tests:
	$(MAKE) unit
	$(MAKE) integration-parts

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

# The integration tests in two groups that may run at once (every test has its own pin root,
# network namespaces, user and ports, and takes the host lock to change the kernel): the end-to-end
# runs (the local demo, the modules' examples, the user's catalogue through the roles, Prometheus
# and node_exporter, the fleet's canary, the README's shell block), and the rest.
INTEGRATION_RUNS := $(addprefix tests/integration/,test_demo_local.py test_module_examples.py test_catalog.py \
	test_prometheus_live.py test_node_exporter_interop.py test_fleet.py test_readme_shell.py)
.PHONY: integration-runs integration-parts
integration: integration-parts integration-runs

integration-runs: collection
	EBPF_TESTS_BUILD_DIR=$(CURDIR)/build/tests-runs $(BIN)/pytest -q -m "not matrix" $(INTEGRATION_RUNS)

integration-parts: collection
	$(BIN)/pytest -q -m "not matrix" $(addprefix --ignore=,$(INTEGRATION_RUNS)) tests/integration

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

# When this make started: the demos say how long they took.
STARTED := $(shell date +%s)

# The 2-VM lab (Linux 6.1 and 6.12, molecule/vm/) booted unless it runs, site.yml deployed to it,
# traffic, and a table of what each VM's node_exporter counted during it; `make demo-down` stops it.
demo: setup collection lab-image
	$(PY) molecule/vm/demo.py up
	rm -rf build/lab/traffic
	$(BIN)/ansible-playbook -i build/lab/inventory.yml playbooks/demo_lab.yml
	@$(PY) scripts/demo_table.py build/lab/traffic/*.json
	@echo 'What runs where, from any shell:'
	@echo '  $(ENV_LINE); ansible-playbook -i $(CURDIR)/build/lab/inventory.yml $(CURDIR)/playbooks/status.yml'
	@echo 'Stop the lab: make demo-down'
	@echo "make demo took $$(( $$(date +%s) - $(STARTED) )) s"

# demo-local: the same on this machine, without VMs (playbooks/demo_local.yml); demo-clean undoes it.
# DEMO_LOCAL_VARS: further ansible-playbook options (-e ...) for both, DEMO_LOCAL_DIR: the records.
DEMO_LOCAL_DIR := $(CURDIR)/build/demo-local
DEMO_LOCAL = $(BIN)/ansible-playbook -i playbooks/inventory/demo_local.yml -e demo_record_dir=$(DEMO_LOCAL_DIR) \
	$(DEMO_LOCAL_VARS)

demo-local: setup collection
	rm -rf $(DEMO_LOCAL_DIR)
	$(DEMO_LOCAL) playbooks/demo_local.yml
	@$(PY) scripts/demo_table.py $(DEMO_LOCAL_DIR)/*.json
	@echo 'Undo it: make demo-clean'
	@echo "make demo-local took $$(( $$(date +%s) - $(STARTED) )) s"

demo-clean: setup collection
	$(DEMO_LOCAL) playbooks/demo_local_clean.yml

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
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/molecule test -s smoke $(MOLECULE_OPTIONS)

# ansible-lint with the production profile on the whole collection from its root (.ansible-lint:
# offline, against the collection as `make collection` links it).
.PHONY: lint
lint: setup collection
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --profile production

# The demo lab (make demo): stop its VMs.
.PHONY: demo-down demo-local
demo-down: setup
	$(PY) molecule/vm/demo.py down

# Molecule scenarios on the qemu lab (molecule/<scenario>/, base config .config/molecule/config.yml,
# molecule/shared/README.md): default (6.1 and 6.12 VMs; it removes everything at the end), linux510
# (5.10; it reboots and removes too), reboot (6.12), upgrade (6.1). `vm-test` runs default, then the
# one-VM scenarios two at a time (at most two VMs on this host): linux510, the longest, beside
# reboot followed by upgrade; each one's output is printed when it ends.
VM_SCENARIOS := vm-default vm-linux510 vm-reboot vm-upgrade
.PHONY: vm-test vm-reboot-upgrade $(VM_SCENARIOS)
$(VM_SCENARIOS): setup collection lab-image
	@start=$$(date +%s); PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/molecule test -s $(@:vm-%=%) $(MOLECULE_OPTIONS); \
		status=$$?; echo "$@ took $$(( $$(date +%s) - start )) s"; exit $$status

vm-reboot-upgrade: vm-reboot
	$(MAKE) vm-upgrade

vm-test: setup collection lab-image
	$(MAKE) vm-default
	$(MAKE) -j2 --output-sync=target vm-linux510 vm-reboot-upgrade
