# Every target creates its own virtualenv: nothing needs to be installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint typecheck unit unit-postgresql bench bench-gateway bench-litellm clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy src

unit: $(STAMP)
	$(BIN)/pytest

# The suite's second pass, on PostgreSQL: the tests marked `journal` (tests/conftest.py marks
# every module using admin_gateway, serve_config or journal_url_for, so new gateway tests join
# by themselves), each SQLite file they use standing for a throwaway database on the local
# server (or SPENDGATE_TEST_POSTGRES_URL's). The others open no journal, pin SQLite on
# purpose (its locks, its files) or run on both databases in the first pass already:
# repeating them would add ~3 minutes for nothing. ~4 minutes on 2 cores; without a server
# the marked tests are skipped, saying why. Run through env, not a shell, as `unit` is: the
# shell completion test's `spendgate --show-completion` detects the shell it runs under, and
# /bin/sh is not one Typer completes.
unit-postgresql: $(STAMP)
	env SPENDGATE_TEST_JOURNAL=postgresql $(BIN)/pytest -m journal

test: lint typecheck unit unit-postgresql

# The mock upstream and the gateway on the built-in demo config: a burst of varied
# traffic, a summary, then serving until Ctrl-C.
demo: $(STAMP)
	$(BIN)/spendgate demo

bench: $(STAMP)
	$(BIN)/python bench/plan_bench.py
	$(BIN)/python bench/token_estimate.py

# Gateway overhead against a canned nginx upstream (needs: apt-get install nginx-light wrk).
bench-gateway: $(STAMP)
	$(BIN)/python bench/gateway_bench.py

# The same load against LiteLLM's proxy, installed into its own virtualenv.
bench-litellm: $(STAMP)
	bench/litellm/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
