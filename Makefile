# Setpoint: `make test` sets up and runs every check; `make demo` sets up and starts the demo.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.setpoint-runtime
TEST_STAMP    := $(VENV)/.setpoint-test
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check
DEMO_ARGS ?=
# Two pytest workers: the suite waits on real processes and sockets as much as it computes.
PYTEST_WORKERS ?= 2

.PHONY: setup setup-runtime frontend frontend-test lint typecheck pytest test demo screenshots clean

$(RUNTIME_STAMP): pyproject.toml
	@echo "==> [setup 1/3] virtual environment in $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> [setup 2/3] installing Setpoint and its runtime packages (first time: a minute or two)"
	@$(PIP) --upgrade pip
	@$(PIP) -e .
	@touch $@

$(TEST_STAMP): $(RUNTIME_STAMP)
	@echo "==> [setup 3/3] installing the test tools (pytest, ruff, mypy, Playwright, ...)"
	@$(PIP) -e '.[test]'
	@touch $@

setup-runtime: $(RUNTIME_STAMP)
setup: $(TEST_STAMP)

FRONTEND_SOURCES := $(shell find frontend/src frontend/index.html frontend/vite.config.ts frontend/tsconfig.json -type f 2>/dev/null)

frontend/node_modules/.package-lock.json: frontend/package-lock.json
	@echo "==> [ui 1/2] installing the web UI's packages (npm ci)"
	@cd frontend && npm ci --no-audit --no-fund --loglevel=error

frontend/dist/index.html: frontend/node_modules/.package-lock.json $(FRONTEND_SOURCES)
	@echo "==> [ui 2/2] building the web UI (npm run build)"
	@cd frontend && npm run build --silent

frontend: frontend/dist/index.html

frontend-test: frontend/node_modules/.package-lock.json
	@echo "==> vitest"
	@cd frontend && npm test --silent

lint: setup
	@echo "==> ruff"
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

typecheck: setup
	@echo "==> mypy"
	@$(BIN)/mypy
	@$(BIN)/mypy --strict protocol

pytest: setup
	@echo "==> pytest"
	@$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadscope --durations=20

test: lint typecheck frontend frontend-test pytest

# The unit view and run view of the chromatography example, as the browser tests see them
# (docs/screenshots/, linked from docs/quickstart.md). Needs Debian's Chromium.
screenshots: setup frontend
	@echo "==> screenshots (browser tests of the plot) into docs/screenshots/"
	@SETPOINT_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/browser/test_plot.py

demo: setup-runtime frontend
	@$(BIN)/python -m uod_examples.demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
