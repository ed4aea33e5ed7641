# Two commands do all set-up: `make quickstart` and `make test` (each creates .venv on first use).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: quickstart test install dev

$(BIN)/factsweep: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev: $(BIN)/factsweep
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/factsweep

dev: $(VENV)/.dev

quickstart: install
	$(BIN)/factsweep run sweeps/quickstart.yaml

test: dev
	$(BIN)/python -m pytest
