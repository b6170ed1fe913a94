# csvkafka — `make demo` and `make test` work from a fresh clone: they install what is missing,
# start the local stack (dev/stack) and run.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: venv stack demo test test-unit test-integration test-e2e lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

stack: venv
	dev/stack up

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint stack
	$(BIN)/pytest -ra $(PYTEST_ARGS) tests/unit tests/integration tests/e2e

test-unit: venv
	$(BIN)/pytest -ra $(PYTEST_ARGS) tests/unit

test-integration: stack
	$(BIN)/pytest -ra $(PYTEST_ARGS) tests/integration

test-e2e: stack
	$(BIN)/pytest -ra $(PYTEST_ARGS) tests/e2e

demo: stack
	dev/demo

bench: stack
	$(BIN)/python -m bench

clean:
	dev/stack down
	rm -rf $(VENV)
