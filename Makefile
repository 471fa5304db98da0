# envbuild — every target depends on `setup`, which makes .venv once and is a no-op after.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ENVBUILD := $(BIN)/envbuild
SPEC ?= envspecs/mask2former.yaml
CUDA ?= 11.7
SNAPSHOT ?= ../shared/channels-snapshot
PYTEST_ARGS ?=

.PHONY: setup test test-fast test-deps resolve lock lock-check env demo onboard bench lint typecheck clean matrix-snapshot

setup: $(VENV)/.setup-stamp

$(VENV)/.setup-stamp: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "envbuild needs Python >= 3.10 for the tool itself (found " + sys.version.split()[0] + "); set PYTHON=/path/to/python3.10+")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

# torch 2.14.1 (a CUDA 13.0 build) is what the compile tests build against.
test-deps: $(VENV)/.test-deps-stamp

$(VENV)/.test-deps-stamp: $(VENV)/.setup-stamp
	$(BIN)/pip install --quiet --disable-pip-version-check 'torch==2.14.1' 'ninja>=1.11'
	@touch $@

test: setup test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the edit loop: everything but the slow markers (about a minute); CI runs `make test`
test-fast: setup test-deps
	$(BIN)/python -m pytest -q -m "not slow and not e2e and not compile and not reliability" $(PYTEST_ARGS)

resolve: setup
	$(ENVBUILD) resolve $(SPEC) --cuda $(CUDA)

lock: setup
	$(ENVBUILD) lock $(SPEC) --cuda $(CUDA) $(if $(wildcard $(SNAPSHOT)),--channel-snapshot $(SNAPSHOT))

# after editing builder/matrix/data/*.yaml: the validated data resolve loads without validating
matrix-snapshot: setup
	$(BIN)/python -m builder.matrix.snapshot

lock-check: setup
	$(ENVBUILD) lock $(SPEC) --cuda $(CUDA) --check $(if $(wildcard $(SNAPSHOT)),--channel-snapshot $(SNAPSHOT))

env: setup
	$(ENVBUILD) env $(SPEC) --cuda $(CUDA)

demo: setup
	$(BIN)/python -m builder.demo

onboard: setup
	./onboard.sh

bench: setup test-deps
	$(BIN)/python bench/run.py

lint: setup
	$(BIN)/ruff check builder tests bench

typecheck: setup
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
