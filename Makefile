# isales-stats: everything a developer or CI runs goes through these targets.
#   make demo   the product on the local real stack (Kafka + Redis + worker + API)
#   make test   lint, type-check and the whole test suite against the real stack
#   make test-faults   the fault-injection runs (docs/reliability.md), about 15 minutes

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

# The tests that need neither Kafka nor Redis nor long runs, on each other supported Python
# the PATH holds (or pyenv installed without making it global), each in a venv of its own
# (.venv-3.12, ...) where pip installs the project as it would for a user: refused if
# requires-python or a dependency does not admit that version. Every version runs; the
# target fails if one failed.
TEST_PYTHONS ?= 3.12 3.13
FAST_TESTS   := not stack and not slow and not faults

test-python:
	@failed=""; for version in $(TEST_PYTHONS); do \
	  python=python$$version; \
	  if ! $$python -c "" >/dev/null 2>&1 && command -v pyenv >/dev/null; then \
	    installed=$$(pyenv versions --bare | grep -E "^$$version\.[0-9]+$$" | tail -n 1); \
	    python=$$(pyenv root)/versions/$$installed/bin/python$$version; fi; \
	  if ! $$python -c "" >/dev/null 2>&1; then \
	    echo "python$$version: neither on the PATH nor installed by pyenv, skipped"; continue; fi; \
	  venv=.venv-$$version; \
	  test -x $$venv/bin/python || $$python -m venv $$venv || exit 1; \
	  $$venv/bin/pip install --quiet --upgrade pip || exit 1; \
	  $$venv/bin/pip install --quiet -e ".[dev]" || exit 1; \
	  echo "== $$($$venv/bin/python --version): pytest -m '$(FAST_TESTS)'"; \
	  $$venv/bin/pytest -q -p no:cacheprovider -m "$(FAST_TESTS)" || failed="$$failed $$version"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-python: failed on Python$$failed"; exit 1; fi

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
