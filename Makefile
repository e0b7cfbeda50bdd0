# Portside: `make run` serves with embedded defaults, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Command-line tools whose pins clash with the project's (openapi-python-client pins typer): own venv.
TOOLS ?= .venv-tools

.PHONY: run test lint fmt sync-sdk bench clean

run: $(VENV)/.server-installed
	@bash scripts/system-deps.sh
	$(BIN)/portside serve

test: $(VENV)/.dev-installed $(TOOLS)/.installed
	@bash scripts/system-deps.sh
	$(BIN)/pytest

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests bench examples scripts
	$(BIN)/mypy
	$(BIN)/python scripts/unasync.py --check
	$(BIN)/deptry src

fmt: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix src tests bench examples scripts
	$(BIN)/python scripts/unasync.py

sync-sdk: $(VENV)/.dev-installed
	$(BIN)/python scripts/unasync.py

$(VENV)/bin/pip:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.server-installed: pyproject.toml | $(VENV)/bin/pip
	$(BIN)/pip install -q -e '.[server]'
	@touch $@

$(VENV)/.dev-installed: pyproject.toml | $(VENV)/bin/pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@ $(VENV)/.server-installed

$(TOOLS)/.installed: pyproject.toml
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q 'openapi-python-client>=0.21,<0.30'
	@touch $@

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
