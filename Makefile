# Harvey — every install, run and check step lives here. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HARVEY := $(VENV)/bin/harvey
SHARED ?= ../shared
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: help install demo test lint format serve bench eval clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN {FS = ":.*## "}; {printf "  %-20s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check pip==26.3
	$(PIP) install -q -r requirements.lock
	$(PIP) install -q --no-deps -e .
	$(PY) -m harvey.search.onnx_e5 .harvey/onnx
	touch $@

install: $(VENV)/.installed ## Create .venv with every dependency pinned (requirements.lock)

demo: install ## Ingest the demo corpus, draft a petição and a parecer, record feedback, run maintenance
	HARVEY_EVENTS_AUTH=none $(HARVEY) demo

test: install tools ## Run the whole test suite against the local PostgreSQL and Redis
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" REDIS_URL="$${REDIS_URL:-$(TEST_REDIS_URL)}" \
		$(PY) -m pytest -q

lint: install ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check shared functions tests bench
	$(VENV)/bin/ruff format --check shared functions tests bench
	MYPYPATH=shared $(VENV)/bin/mypy --ignore-missing-imports --explicit-package-bases shared/harvey functions

format: install ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix shared functions tests
	$(VENV)/bin/ruff format shared functions tests

bench: install tools ## Benchmarks → bench/results.md (medians of repeated runs, side by side)
	$(PY) bench/run.py --out bench/results.md

eval: install ## Quality on ../shared/eval → bench/eval.md (retrieval, faithfulness, PII)
	$(PY) bench/eval.py --shared $(SHARED)/eval --out bench/eval.md

serve: install ## Run the four functions locally (ports 8081 generate, 8082 feedback, 8083 maintenance, 8084 ingest)
	$(HARVEY) db migrate
	trap 'kill 0' EXIT; \
	export HARVEY_EVENTS_AUTH=none; \
	$(VENV)/bin/functions-framework --target generate --source functions/generate/main.py --port 8081 & \
	$(VENV)/bin/functions-framework --target feedback --source functions/feedback/main.py --port 8082 & \
	$(VENV)/bin/functions-framework --target maintenance --source functions/maintenance/main.py --port 8083 & \
	$(VENV)/bin/functions-framework --target ingest --source functions/ingest/main.py --port 8084 & \
	wait

clean: ## Stop the embedded PostgreSQL and remove the embedded stores under .harvey/ (keeps .venv)
	@if [ -f .harvey/pg/postmaster.pid ]; then kill -INT "$$(head -1 .harvey/pg/postmaster.pid)" 2>/dev/null || true; sleep 1; fi
	rm -rf .harvey

include mk/ops.mk
