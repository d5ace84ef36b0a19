# isales-stats: everything a developer or CI runs goes through these targets.
#   make demo   the product on the local real stack (Kafka + Redis + worker + API)
#   make test   lint, type-check and the whole test suite against the real stack
#   make test-faults   the fault-injection runs (docs/reliability.md), about 20 minutes

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.installed-runtime
STAMP  := $(VENV)/.installed

.PHONY: install install-runtime lint format test test-faults test-fast test-python bench demo stack-up stack-down clean

# Reinstall only when the project's dependencies change. The demo needs the product alone;
# tests, lint and benchmarks need the dev extras and a browser (deploy/scripts).
$(RUNTIME_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install-runtime: $(RUNTIME_STAMP)

install: $(STAMP)
	bash deploy/scripts/install-system-packages.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The test session starts Kafka and Redis if they are not running and stops what it started.
# Branch coverage of the pytest process is printed at the end (pyproject.toml, [tool.coverage]).
test: lint
	$(BIN)/pytest -m "not faults" --cov --cov-report=term

# Crashes, rebalances, a Kafka node lost, poison input and a 10-minute soak; figures printed.
test-faults: install
	$(BIN)/pytest -m faults -s

test-fast: install
	$(BIN)/pytest -m "not slow"

# The tests that need neither Kafka nor Redis nor long runs on each other supported Python, in
# a venv of its own each (.venv-3.12, ...), after pip installed the project's wheel there as a
# user would: refused if requires-python or a dependency does not admit that version.
TEST_PYTHONS ?= 3.12 3.13

test-python:
	bash deploy/scripts/test-other-pythons.sh $(TEST_PYTHONS)

bench: install
	$(BIN)/python -m benchmarks.run

demo: install-runtime
	$(BIN)/isales-stats demo

stack-up: install-runtime
	$(BIN)/isales-stats stack up

stack-down: install-runtime
	$(BIN)/isales-stats stack down

clean:
	rm -rf $(VENV) .venv-3.* .mypy_cache .ruff_cache .pytest_cache .hypothesis
