# The two README commands: `make run` (local service) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install system-deps services run test lint check schema bench bench-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# uv if present (on PATH or installable into the venv), else pip.
install: $(BIN)/python
	@if command -v uv >/dev/null 2>&1 || $(BIN)/python -m pip install -q uv; then \
		uv pip install -q -p $(BIN)/python -r requirements.txt -r requirements-dev.txt; \
	else \
		$(BIN)/python -m pip install -q -r requirements.txt -r requirements-dev.txt; \
	fi

# Debian packages the tests need: bubblewrap (agent sandbox), chromium (browser tests).
system-deps:
	@bash scripts/system_deps.sh bubblewrap chromium

services:
	@bash scripts/services.sh

run: install
	@bash scripts/run_local.sh

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy registry/services.py registry/selectors.py ci_runners/services ci_runners/selectors.py \
		reviews/services reviews/selectors.py ci_runners/agent

check:
	DJANGO_SECRET_KEY=check-only-$$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') \
	DJANGO_ALLOWED_HOSTS=registry.example.org \
	DATABASE_URL=postgres://postgres@127.0.0.1:5432/ecosystem_registry \
	DJANGO_SETTINGS_MODULE=config.settings.production \
	$(BIN)/python manage.py check --deploy --fail-level WARNING

schema:
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null

test: install system-deps services lint check schema
	$(BIN)/pytest

bench-deps:
	@bash scripts/system_deps.sh nginx wrk chromium

bench: install services bench-deps
	for script in registry_pages agent_env compat_fleet badges web_burst pages recipes night; do $(BIN)/python bench/$$script.py; done

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
