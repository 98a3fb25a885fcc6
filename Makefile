# Setpoint: `make test` sets up and runs every check; `make demo` sets up and starts the demo.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setpoint-installed

.PHONY: setup lint typecheck pytest test clean

$(STAMP): pyproject.toml
	@echo "==> [setup 1/2] virtual environment in $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> [setup 2/2] installing Setpoint with its test tools (first time: a few minutes)"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

lint: setup
	@echo "==> ruff"
	@$(BIN)/ruff check .

typecheck: setup
	@echo "==> mypy"
	@$(BIN)/mypy
	@$(BIN)/mypy --strict protocol

pytest: setup
	@echo "==> pytest"
	@$(BIN)/python -m pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
