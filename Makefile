# sagaflow — the few targets a person wants. Everything installs itself; downloads and builds
# are cached outside the clone in $(SAGAFLOW_CACHE) so a second run is fast.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export SAGAFLOW_CACHE ?= $(HOME)/.cache/sagaflow
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.DEFAULT_GOAL := help
.PHONY: help install stack-install up down status logs demo test lint typecheck unit integration k8s-check bench chaos clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## virtualenv with sagaflow and its pinned dependencies

$(VENV)/.installed: pyproject.toml scripts/bootstrap.sh
	@scripts/bootstrap.sh
	@touch $@

stack-install: install ## fetch Kafka jars, Postgres binaries and build Jaeger (cached)
	@$(PY) -m sagaflow.devstack install

up: stack-install ## start Kafka, Postgres and Jaeger on 127.0.0.1 (idempotent)
	@$(PY) -m sagaflow.devstack up

down: ## stop the local stack; leaves no process running
	@if [ -x $(PY) ]; then $(PY) -m sagaflow.devstack down; fi

status: install ## what the local stack is doing
	@$(PY) -m sagaflow.devstack status

demo: up ## the main job: four checkout sagas end to end on the local stack
	@$(PY) -m sagaflow.demo

lint: install ## ruff lint and format check
	@echo "==> ruff"
	@ruff check .
	@ruff format --check .

typecheck: install ## mypy --strict on the library and services
	@echo "==> mypy --strict"
	@mypy

k8s-check: install ## render and validate every deploy/k8s overlay, offline
	@scripts/k8s-check.sh

test: lint typecheck stack-install k8s-check ## the one gate: lint, types, k8s, every test tier
	@echo "==> pytest (unit, integration, e2e, fault)"
	@pytest -m "not k8s" --cov=sagaflow --cov-report=term:skip-covered -q

unit: install ## the pure core only; no services needed
	@pytest -m unit -q

bench: up ## benchmarks: numbers, not pass/fail (results in bench-results/)
	@$(PY) -m sagaflow.bench

chaos: up ## long chaos run: 600 sagas under kill -9s, a zombie, broker and Postgres kills
	@$(PY) -m tests.chaos.run --sagas $${CHAOS_SAGAS:-600} --rounds $${CHAOS_ROUNDS:-4} \
		--span $${CHAOS_SPAN:-240} --wait $${CHAOS_WAIT:-300}

clean: down ## remove the virtualenv and local stack data (the download cache stays)
	rm -rf $(VENV) .stack
