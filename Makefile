# Two commands do all set-up: `make quickstart` and `make test` (each creates .venv on first use).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: quickstart test test-fast install dev reference reference-reports gpu-check docs

$(BIN)/factsweep: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e .
	touch $@

# The dashboard test drives a real headless Chromium, and the MLflow server test a real PostgreSQL:
# Debian's packages, installed when missing (one line says so first).
$(VENV)/.dev: $(BIN)/factsweep
	$(BIN)/pip install --quiet -e '.[dev]'
	command -v chromium >/dev/null || (echo "make dev: installing Chromium (Debian's chromium, with apt-get) for the dashboard test" && \
	  apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (echo "make dev: installing PostgreSQL (Debian's postgresql) for the MLflow server test" && \
	  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null)
	touch $@

install: $(BIN)/factsweep

dev: $(VENV)/.dev

quickstart: install
	$(BIN)/factsweep run sweeps/quickstart.yaml

test: dev
	$(BIN)/python -m pytest

# Everything but the tests marked slow (real servers, CLI processes, kills, Ray: its sweeps run inline): about 80 s.
test-fast: dev
	$(BIN)/python -m pytest -m "not slow"

# The documents generated from the code (docs/sweep-spec.md's parameter tables, docs/schema.md), after a new
# construction, option or experiment kind.
docs: install
	$(BIN)/python -m orchestrator.generated_docs

# The property-based tests of every file reader with 1000 examples per target (the suite runs 40).
.PHONY: fuzz
fuzz: dev
	FACTSWEEP_FUZZ_EXAMPLES=1000 $(BIN)/python -m pytest tests/test_fuzz.py

# The committed laptop-scale reference reports, one folder per study in results/reference/ (report,
# figures, CSVs of its cells and probes). Resumes: a study already run (or half run) only finishes what is
# left. Refuses a tree with uncommitted code, and a study whose cells were recorded by one (a `-dirty`
# code version): a committed number must name the commit that made it.
STUDIES ?= quickstart capacity_isotropic capacity_anisotropic rho_law rho_law_d128 whitening llm_embeddings \
           transformer_usability transformer_capacity transformer_whitened_grid fact_editing \
           margin_vs_width margin_vs_facts margin_vs_beta noisy_query_law transformer_recall_vs_width \
           transformer_capacity_grid
reference: install
	@git diff --quiet HEAD -- factmlp orchestrator sweeps pyproject.toml || \
	  { echo "make reference: uncommitted changes in factmlp/, orchestrator/, sweeps/ or pyproject.toml: commit them first"; exit 1; }
	@for s in $(STUDIES); do \
	  start=$$(date +%s); \
	  $(BIN)/factsweep run sweeps/$$s.yaml > results/reference-$$s.log 2>&1 || { tail -3 results/reference-$$s.log; exit 1; }; \
	  if grep -q -- '-dirty' results/reports/$$s-cells.csv; then \
	    echo "make reference: $$s has cells recorded by uncommitted code (a -dirty code version); not copied"; exit 1; fi; \
	  mkdir -p results/reference/$$s && rm -f results/reference/$$s/* && cp results/reports/$$s.md results/reports/$$s-* results/reference/$$s/; \
	  echo "$$s: $$(( $$(date +%s) - start )) s"; \
	done

# Every committed report, its figures and findings written again by the current report code from the
# committed CSVs (orchestrator/reimport.py: nothing re-run; numbers, ids and code versions stay those of
# the recorded cells). After a change to reports, figures or findings; tests/test_reimport.py checks the
# quickstart's report is current.
reference-reports: install
	@for s in $(STUDIES); do \
	  tmp=$$(mktemp -d) && ln -s $(CURDIR)/sweeps $$tmp/sweeps && \
	  ( cd $$tmp && $(CURDIR)/$(BIN)/python -m orchestrator.reimport $(CURDIR)/results/reference/$$s > report.log 2>&1 && \
	    $(CURDIR)/$(BIN)/factsweep report sweeps/$$s.yaml >> report.log 2>&1 ) || { tail -3 $$tmp/report.log; exit 1; }; \
	  rm -f results/reference/$$s/* && cp $$tmp/results/reports/$$s.md $$tmp/results/reports/$$s-* results/reference/$$s/ && \
	  rm -rf $$tmp && echo "$$s: report written again"; \
	done

# The prepared GPU check (docs/cluster.md, "First GPU run"): the venv's python if there is one, else python3.
gpu-check:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,python3) benchmarks/gpu_check.py
