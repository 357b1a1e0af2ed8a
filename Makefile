# leadtier runbook: one target per stage. `make` (or `make help`) lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= configs/demo.yaml
ARGS   ?=
SRC    := features models pipelines tests bench
FAST_MARKERS := not slow and not spark and not browser and not realdata

.PHONY: help install demo-data features train predict worklist report retier serve bench test test-fast mutation format lint browser clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "}; /^[a-zA-Z_-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  (CONFIG=$(CONFIG); set CONFIG=configs/online_retail.yaml etc.; ARGS passes options to the command,"
	@echo "   e.g. ARGS='--data-root DIR' for demo-data, features, train, predict and report; see leadtier CMD --help)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev,spark]"
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install leadtier (re-runs only when pyproject.toml changes)

demo-data: $(STAMP) ## Generate the synthetic demo CRM data (data/demo)
	$(BIN)/leadtier demo-data --config $(CONFIG) $(ARGS)

features: $(STAMP) ## Build the customer feature table as of the snapshot date
	$(BIN)/leadtier features --config $(CONFIG) $(ARGS)

train: $(STAMP) ## Set up, make demo data if missing, build features, tune, train, register (MLflow) and summarise
	@if [ "$(CONFIG)" = "configs/demo.yaml" ] && [ ! -f data/demo/customers.parquet ]; then \
		$(BIN)/leadtier demo-data --config $(CONFIG); fi
	@if [ "$(CONFIG)" = "configs/demo_b2b.yaml" ] && [ ! -f data/demo_b2b/opportunities.parquet ]; then \
		$(BIN)/leadtier demo-data --config $(CONFIG); fi
	$(BIN)/leadtier features --config $(CONFIG) $(ARGS)
	$(BIN)/leadtier train --config $(CONFIG) $(ARGS)

predict: $(STAMP) ## Score the prospects with the champion model (rows in = scored + rejected)
	$(BIN)/leadtier predict --config $(CONFIG) $(ARGS)

worklist: $(STAMP) ## Write the due-dated call list (by owner and week, by expected value) from the predictions
	$(BIN)/leadtier worklist --config $(CONFIG) $(ARGS)

report: $(STAMP) ## Write the HTML segment and tier report and print its path
	$(BIN)/leadtier report --config $(CONFIG) $(ARGS)

retier: $(STAMP) ## Re-tier as of today (features, predict, worklist, report as one set); prints who moved
	$(BIN)/leadtier retier --config $(CONFIG) $(ARGS)

serve: $(STAMP) ## Serve the champion model over REST on 127.0.0.1 (MLflow's scoring app behind leadtier's request checks)
	$(BIN)/leadtier serve --config $(CONFIG) $(ARGS)

bench: $(STAMP) ## Run the benchmarks; prints one JSON object per line
	$(BIN)/python -m bench $(ARGS)

browser: ## Install headless Chromium and a CJK font (Debian packages) for the report browser test
	@{ command -v chromium && fc-list 2>/dev/null | grep -qi wqy; } >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = "0" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; \
		else echo "chromium missing and not root: the browser test will be skipped"; fi; }

lint: $(STAMP) ## ruff over the code (check and format check)
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)

mutation: $(STAMP) ## Mutation check: deliberate bugs in the rules that matter, one line each (not part of make test)
	$(BIN)/python tests/mutation/run.py $(ARGS)

format: $(STAMP) ## Rewrite the code in place: ruff format, then ruff check --fix
	$(BIN)/ruff format $(SRC)
	$(BIN)/ruff check --fix $(SRC)

test: $(STAMP) browser ## Install everything needed, then lint and run the whole test suite (what CI runs)
	$(BIN)/ruff check $(SRC)
	$(BIN)/python -m pytest $(ARGS)

test-fast: $(STAMP) ## Unit tests only (no slow, spark, browser or realdata tests): the edit-test loop
	$(BIN)/python -m pytest -q -m "$(FAST_MARKERS)" $(ARGS)

clean: ## Remove generated data, outputs and the local MLflow store (keeps .venv)
	rm -rf data/demo data/demo_b2b outputs mlflow.db mlruns mlartifacts test-artifacts
