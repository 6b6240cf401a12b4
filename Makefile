# gnn-service: every target sets up what it needs (virtualenv .venv, pinned install).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint format models clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "gnn-service needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[dev]'
	# The pipeline benchmark's celery-batches peer: 0.11 declares celery<5.7, and runs on the
	# pinned 5.7 as the benchmark uses it (training/benchmarks/batches_peer.py).
	$(BIN)/python -m pip install --quiet --no-deps celery-batches==0.11
	@touch $(STAMP)

setup: $(STAMP)  ## Create .venv and install the pinned dependencies

run: setup  ## Run the service on the embedded default (no servers needed)
	$(BIN)/gnn-service run

test: setup  ## The full test suite (Redis/PostgreSQL tests skip without servers unless CI=true)
	$(BIN)/pytest --durations=15

lint: setup  ## ruff lint and format check, mypy --strict, the package contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

models: setup  ## Regenerate the bundled model and docs/models.md from fixed seeds (~7-12 min)
	$(BIN)/python -m cli.build models

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .gnn-data .pytest_cache .mypy_cache .ruff_cache
