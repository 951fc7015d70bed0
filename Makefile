# The two set-up commands the README promises: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA_DIR ?= ./data
PORT   ?= 3476

.PHONY: serve test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# The HTTP server arrives with the API; until then this shows what the CLI offers.
serve: $(VENV)/.installed
	$(BIN)/stonetown --help

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	$(BIN)/python bench/dsl_bench.py
	$(BIN)/python bench/storage_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
