# sagaflow — the few targets a person wants. Everything installs itself; downloads and builds
# are cached outside the clone in $(SAGAFLOW_CACHE) so a second run is fast.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export SAGAFLOW_CACHE ?= $(HOME)/.cache/sagaflow
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.DEFAULT_GOAL := help
.PHONY: help install stack-install up down status logs demo test lint typecheck unit integration k8s-check bench chaos clean \
	containers containers-down test-containers certs test-cluster

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

containers: stack-install ## the project's own Docker engine and the container tier's images (cached)
	@$(PY) -m sagaflow.devstack.containers up

containers-down: ## stop the project's Docker engine and every container on it
	@if [ -x $(PY) ]; then $(PY) -m sagaflow.devstack.containers down; fi

demo: up ## the main job: four checkout sagas end to end on the local stack
	@$(PY) -m sagaflow.devstack.demo

lint: install ## ruff lint and format check
	@echo "==> ruff"
	@ruff check .
	@ruff format --check .

typecheck: install ## mypy --strict on the library and services
	@echo "==> mypy --strict"
	@mypy

k8s-check: install ## render and validate every deploy/k8s overlay, offline
	@scripts/k8s-check.sh

# The UI's browser tests drive Debian's Chromium through Playwright (never `playwright install`,
# which downloads a browser). Installed once, as root or through sudo.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@echo "==> installing Chromium from the Debian packages (for the UI's browser tests)"
	@SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium

# The container tier's part of `make test`: the checkout sagas, duplicate delivery, an aborted
# transaction never applied, and the project's image (structure and end to end).
CONTAINER_SAMPLE := tests/containers tests/k8s/test_dockerfile.py \
	tests/integration/test_checkout_sagas.py tests/integration/test_duplicate_tasks.py \
	tests/integration/test_rebuild.py::test_aborted_events_are_never_applied

test: lint typecheck stack-install certs k8s-check $(CHROMIUM) ## the one gate: lint, types, k8s, every test tier
	@echo "==> pytest (unit, integration, e2e, fault) on the local stack"
	@pytest -m "not k8s and not containers and not cluster" --cov=sagaflow --cov-report=term:skip-covered -q
	@$(MAKE) --no-print-directory _container-tier TIER_TESTS="$(CONTAINER_SAMPLE)"

test-containers: lint typecheck stack-install ## the integration, e2e and fault tiers on containers
	@$(MAKE) --no-print-directory _container-tier TIER_TESTS='-m "not unit and not k8s and not cluster"'

# Builds what is missing (progress shown), runs TIER_TESTS on containers, and stops the engine
# and its containers whatever the outcome.
_container-tier: containers
	@echo "==> pytest on the container tier (SAGAFLOW_TEST_SERVICES=containers)"
	@start=$$(date +%s); rc=0; \
	SAGAFLOW_TEST_SERVICES=containers pytest -q -p no:cacheprovider $(TIER_TESTS) || rc=$$?; \
	$(MAKE) --no-print-directory containers-down; \
	echo "==> container tier: $$(( $$(date +%s) - start ))s"; exit $$rc

certs: install ## CA and broker certificate for the SASL_SSL broker (.stack/certs, once)
	@$(PY) -m sagaflow.devstack certs

test-cluster: stack-install certs ## kill -9 a broker of a 3-node cluster under load (slow)
	@pytest -m cluster -q -s

unit: install ## the pure core only; no services needed
	@pytest -m unit -q

# BENCH_ARGS: e.g. --quick, --duration 120, --sampling 1.0, --orchestrators 2 --workers 2.
BENCH_ARGS ?=
bench: up ## benchmarks, numbers not pass/fail (bench-results/); BENCH_ARGS=--quick for a short run
	@$(PY) -m sagaflow.bench $(BENCH_ARGS)

chaos: up ## long chaos run: 600 sagas under kill -9s, a zombie, broker and Postgres kills
	@$(PY) -m tests.chaos.run --sagas $${CHAOS_SAGAS:-600} --rounds $${CHAOS_ROUNDS:-4} \
		--span $${CHAOS_SPAN:-240} --wait $${CHAOS_WAIT:-300}

clean: down ## remove the virtualenv and local stack data (the download cache stays)
	rm -rf $(VENV) .stack
