# The quick start: `make run` serves the chat, `make test` runs the whole suite.
# Both create .venv and install the pinned requirements on first use.

PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast check format bench

$(VENV)/.run-deps: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-deps: $(VENV)/.run-deps requirements-dev.txt requirements-bench.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

# Serve everything on one process: the MQTT gate at ws://$(HOST):$(PORT)/mqtt, the admin.
# Development mode (DEBUG on, the development key) on this machine; README: "Deploying".
run: $(VENV)/.run-deps
	$(BIN)/python manage.py migrate --noinput
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/daphne -b $(HOST) -p $(PORT) mqantsite.asgi:application

# Lint, types, import layering, then every test (the slow end-to-end ones included).
test: check
	$(BIN)/python -m pytest

# The fast tests only: no server processes.
test-fast: $(VENV)/.dev-deps
	$(BIN)/python -m pytest -m "not e2e"

# The load tool's full run (about 15 minutes): docs/bench/ and docs/benchmarks.md's tables;
# then what QoS 1 pushes cost against QoS 0 (about 2 minutes, printed: docs/benchmarks.md).
bench: $(VENV)/.dev-deps
	$(BIN)/python -m bench --update-docs
	$(BIN)/python -m bench.qos

check: $(VENV)/.dev-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

format: $(VENV)/.dev-deps
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
