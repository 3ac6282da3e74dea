# Two commands on a fresh clone: `make up` (run it) and `make test` (test it).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make up PORT=8123` serves on another port.
PORT ?= 8000

.PHONY: install up test test-fast services services-stop bench bench-full lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $(STAMP)

## Run the whole system on the embedded default (SQLite files in ./data, no broker);
## prints "ready: http://127.0.0.1:PORT" once it serves.
up: install
	$(BIN)/interviewctl up --port $(PORT)

## Start local PostgreSQL and Kafka on 127.0.0.1; prints `export ...` lines to eval.
services:
	@scripts/services.sh start

services-stop:
	@scripts/services.sh stop

## Install, check the code style and types, start what the tests need (PostgreSQL, Kafka), run every test.
test: install
	$(BIN)/ruff check services tests bench
	$(BIN)/ruff format --check services tests bench
	$(BIN)/python -m mypy
	@scripts/chromium.sh
	@started="$$(scripts/services.sh start)" && eval "$$started" && \
	  $(BIN)/python -m pytest $(PYTEST_ARGS)

## Only the tests that need no infrastructure.
test-fast: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

## Quick benchmark suite (< 10 min) against real PostgreSQL and Kafka: prints a table,
## writes bench/results.json. `make bench BENCH="commands relay"` runs some modules only
## (results then go to /tmp/bench-results.json). BENCH_SECONDS, BENCH_WORKERS tune it.
bench: install
	@started="$$(scripts/services.sh start)" && eval "$$started" && $(BIN)/python -m bench $(BENCH)

## The long versions: longer windows, more events.
bench-full: install
	@started="$$(scripts/services.sh start)" && eval "$$started" && BENCH_FULL=1 $(BIN)/python -m bench $(BENCH)

lint: install
	$(BIN)/ruff check services tests bench
	$(BIN)/ruff format --check services tests bench
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) data .pytest_cache
