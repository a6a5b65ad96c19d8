# specstress developer commands. `make demo` and `make test` each work from a fresh clone:
# whichever runs first creates the virtual environment at .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint fast bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "specstress needs Python >= 3.11 (set PYTHON=python3.11)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,dask]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/specstress run specs/runs/demo.yaml

test: lint
	$(BIN)/python -m pytest -q --durations=25

# ruff, then the import contracts (.importlinter) and the import-cycle check
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python tests/lint_layers.py

# the fast tier, for the development loop (under 2 minutes)
fast: $(STAMP)
	SPECSTRESS_FAST=1 $(BIN)/python -m pytest -q -m "not slow and not server"

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf .specstress .pytest_cache .ruff_cache
