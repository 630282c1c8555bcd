# Healthscore: `make demo` runs the whole system, `make test` runs every test tier.
# Each target installs what it needs (venv, pip packages; Kafka jars and PostgreSQL on first use).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo local test test-unit test-integration test-e2e lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,rocksdb]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/healthscore demo

# Kafka + PostgreSQL for development; other shells: `set -a; . ./.stack.env; set +a`.
local: install
	$(BIN)/healthscore local --env-file .stack.env

test: install
	$(BIN)/pytest tests

test-unit: install
	$(BIN)/pytest tests/unit

test-integration: install
	$(BIN)/pytest tests/integration

test-e2e: install
	$(BIN)/pytest tests/e2e

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy healthscore schemas services

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Benchmarks print figures next to a baseline measured in the same run (see each script's
# docstring). They use KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when set, else start local servers.
bench: install
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/scorer.py
	$(BIN)/python bench/alerts.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Operations tools (helm, promtool/prometheus, the Compose schema) for the deploy checks; the ops
# tests call the same script, so `make test` installs them on a fresh machine too.
.PHONY: tools
tools:
	bash scripts/tools.sh all >/dev/null
