# Two entry points that set up a fresh machine by themselves:
#   make demo   - the whole journey on the sample data shipped in the repo
#   make test   - lint (ruff, mypy, clippy), then Rust and Python tests
# Both create .venv, install the pinned Python dependencies (torch included) and build the
# Rust core into it with maturin. Nothing needs to be installed beforehand but Python 3.10+
# and a Rust toolchain.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Marker files so set-up steps rerun only when their inputs change.
DEPS   := $(VENV)/.deps-installed
CORE   := $(VENV)/.core-built
RUST_SOURCES := Cargo.toml Cargo.lock pyproject.toml $(shell find rust -name '*.rs' -o -name Cargo.toml 2>/dev/null)
PYTEST_ARGS ?=
UV_VERSION := 0.13.9
# Test processes (pytest-xdist): about half the tests wait on the processes they start, so two
# workers keep two cores busy; each test file stays in one worker (its fixtures are built once),
# the files with the most slow tests first (tests/conftest.py orders them).
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test test-fast lint test-rust test-python bench install reference clean

demo: install
	$(BIN)/salibi demo --out demo-out

test: lint test-rust test-python

# The quick loop while editing: no slow and no GPU tests.
test-fast: install
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "not slow and not cuda" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check python tests data
	$(BIN)/ruff format --check python tests data
	$(BIN)/mypy
	cargo clippy --workspace --all-targets --release --quiet -- -D warnings

test-rust:
	cargo test -p salibi-core --release --quiet

# Bytecode for the package and the tests first: where PYTHONDONTWRITEBYTECODE is set, every
# salibi process the tests start would compile them again (0.3-0.5 s each, ~150 processes).
test-python: install
	@$(BIN)/python -m compileall -q -j 0 python tests > /dev/null
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

bench: install
	cargo bench -p salibi-core
	$(BIN)/python tests/benchmarks/bias_tables.py

install: $(CORE)

# Regenerate the command reference and shell completions in cli/ (a test checks them).
reference: install
	$(BIN)/python -m salibi.cli.reference > cli/REFERENCE.md
	for shell in bash zsh fish; do _SALIBI_COMPLETE=$${shell}_source $(BIN)/salibi > cli/completions/salibi.$$shell; done

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# uv installs the pinned wheels in parallel, bytecode compiled as pip does (measured on 2 cores:
# 59 s against pip's 2 min 38 s); pip installs them where uv cannot run.
# uv's cache lives inside the venv unless UV_CACHE_DIR says otherwise: on the venv's own file
# system uv hard-links the unpacked wheels into it, so the install takes its 7.2 GB once and
# removing the venv frees all of it (a cache in ~/.cache outlived the clones that filled it, and
# CI stopped on "No space left on device"). pip's fallback keeps no cache either.
UV_CACHE_DIR ?= $(abspath $(VENV))/.uv-cache
$(DEPS): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION) \
		&& UV_CACHE_DIR=$(UV_CACHE_DIR) $(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -r requirements.txt -r requirements-dev.txt \
		|| $(BIN)/python -m pip install --quiet --no-cache-dir -r requirements.txt -r requirements-dev.txt
	touch $@

$(CORE): $(DEPS) $(RUST_SOURCES)
	@# pip's 'Requirement already satisfied' lines are noise when all went well: shown on failure only.
	@echo "building the Rust core into $(VENV) (log: $(VENV)/core-build.log)"
	@VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/maturin develop --release --quiet > $(VENV)/core-build.log 2>&1 \
		|| { cat $(VENV)/core-build.log; exit 1; }
	@touch $@

clean:
	rm -rf $(VENV) target demo-out
