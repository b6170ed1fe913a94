# csvkafka — `make demo` and `make test` work from a fresh clone: they install what is missing,
# start the local stack (dev/stack) and run.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# The native core (worker/native) is built by pip with cargo; its build is cached per user.
export PATH := $(HOME)/.cargo/bin:$(PATH)
export CARGO_TARGET_DIR ?= $(HOME)/.cache/csvkafka/cargo-target
NATIVE := worker/native/Cargo.toml worker/native/Cargo.lock $(wildcard worker/native/src/*.rs)

.PHONY: venv stack promtool demo test test-unit test-integration test-e2e lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(NATIVE)
	@echo "make: installing csvkafka into $(VENV) and building its native core (Rust; about a minute the first time)"
	[ -x $(BIN)/python ] || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/python -c 'import confluent_kafka; from csvkafka_worker import _native; print("make: native core built:", _native.check() or "ready")'
	touch $@

stack: venv
	dev/stack up

# Checks the chart's alerting rules (tests/unit/test_chart_alerts.py): built once from the Go module
# proxy (minutes the first time), then cached.
promtool:
	dev/build/promtool.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	cargo fmt --manifest-path worker/native/Cargo.toml --check

test: lint stack promtool
	$(BIN)/pytest -ra $(PYTEST_ARGS) tests/unit tests/integration tests/e2e

test-unit: venv promtool
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
