# Two commands do all set-up: `make quickstart` and `make test` (each creates .venv on first use).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: quickstart test install dev reference gpu-check

$(BIN)/factsweep: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e .
	touch $@

# The dashboard test drives a real headless Chromium: Debian's package, installed when missing.
$(VENV)/.dev: $(BIN)/factsweep
	$(BIN)/pip install --quiet -e '.[dev]'
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	touch $@

install: $(BIN)/factsweep

dev: $(VENV)/.dev

quickstart: install
	$(BIN)/factsweep run sweeps/quickstart.yaml

test: dev
	$(BIN)/python -m pytest

# The committed laptop-scale reference reports (results/reference/): two studies, about 10 min each on 2 cores.
reference: install
	rm -rf results/*/sweep=capacity_isotropic results/*/sweep=rho_law
	$(BIN)/factsweep run sweeps/capacity_isotropic.yaml
	$(BIN)/factsweep run sweeps/rho_law.yaml
	mkdir -p results/reference
	cp results/reports/capacity_isotropic* results/reports/rho_law* results/reference/

# The prepared GPU check (docs/cluster.md, "First GPU run"): the venv's python if there is one, else python3.
gpu-check:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,python3) benchmarks/gpu_check.py
