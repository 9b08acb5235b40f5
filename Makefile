# Everything runs through scripts/env.sh, which loads .env (the same file Docker Compose reads).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
ENV := source scripts/env.sh &&
PY := .cache/venv/bin/python
DATE ?= 2020-10-01
DATA ?=
SIZE ?= 885129
PYTEST_ARGS ?=
# The oldest Python the pinned requirements install on (Debian 12's python3.11); pyproject agrees.
PYTHON_MIN := 3.11.2

.PHONY: help prereqs setup provision tools venv jars lock stack-up stack-status stack-down stack-clean test test-fast lint test-fresh-machine demo airflow airflow-stop bench bench-daily generate distclean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

prereqs: ## System packages (Python 3.11, JDK 17, Maven, Go, nginx, ...): installed as root with apt, else the command is printed
	@bash scripts/install_prereqs.sh

setup: provision tools ## Install everything into .cache (venv, Spark connector jars, local services, deployment check tools)

# What the local stack needs (make demo, make stack-up); prereqs first: make runs them in order.
provision: prereqs venv jars
	@$(ENV) bash scripts/stack.sh provision

# docker-compose and dockerfile-lint for tests/deployment (make test), built with Go.
tools: prereqs
	@[ ! -f scripts/provision_tools.sh ] || $(ENV) bash scripts/provision_tools.sh

venv: .cache/venv/.installed ## Python 3.11 venv with the pinned requirements
.cache/venv/.installed: requirements.txt pyproject.toml
	@command -v python3.11 >/dev/null || { echo "Python $(PYTHON_MIN) or a later 3.11 is required: python3.11 not found (make prereqs installs it)"; exit 1; }
	@v=$$(python3.11 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])'); \
	  [ "$$(printf '%s\n' $(PYTHON_MIN) "$$v" | sort -V | head -n 1)" = $(PYTHON_MIN) ] || \
	  { echo "Python $(PYTHON_MIN) or a later 3.11 is required: python3.11 is $$v (requirements.txt installs on $(PYTHON_MIN), Debian 12's)"; exit 1; }
	@[ -x $(PY) ] || python3.11 -m venv .cache/venv
	@echo "Installing Python dependencies (first time: a few minutes)..."
	@.cache/venv/bin/pip install -q -r requirements.txt
	@# the project itself, editable: `import ecommerce_profiles` everywhere, no sys.path edits
	@.cache/venv/bin/pip install -q --no-deps -e .
	@touch $@

jars: venv ## Spark connector jars from Maven Central into $SPARK_JARS_DIR
	@$(ENV) bash scripts/spark_jars.sh

lock: ## Re-resolve requirements.in into the pinned requirements.txt
	@rm -rf .cache/lock-venv && python3.11 -m venv .cache/lock-venv
	@.cache/lock-venv/bin/pip install -q -r requirements.in
	@.cache/lock-venv/bin/pip freeze > requirements.txt && echo "requirements.txt updated"

stack-up: provision ## Start Kafka, MinIO and Elasticsearch locally (no Docker) and wait until healthy
	@$(ENV) bash scripts/stack.sh up

stack-status: ## Show each local service, up or down, with its URL
	@$(ENV) bash scripts/stack.sh status

stack-down: ## Stop the local stack (no stray processes)
	@$(ENV) bash scripts/stack.sh down

stack-clean: ## Stop the local stack and delete its data and logs (keeps downloads)
	@$(ENV) bash scripts/stack.sh clean

test: setup lint stack-up ## Lint and types, then the whole test suite against the local stack
	@$(ENV) pytest $(PYTEST_ARGS)

test-fast: venv lint ## Lint and types, then the unit tests only: no services, no JVM
	@$(ENV) pytest -m "unit and not spark" -q $(PYTEST_ARGS)

lint: venv ## ruff (lint + format check) on everything, mypy on the shipped code (config: pyproject.toml)
	@$(ENV) ruff check --quiet . && ruff format --check --quiet . && mypy

test-fresh-machine: venv ## The README's `make demo` in a fresh Debian 12 container (Docker engine from Debian; ~15 min)
	@$(ENV) FRESH_MACHINE=1 pytest tests/fresh_machine -p no:cacheprovider $(PYTEST_ARGS)

generate: venv ## Generate a sample dataset: make generate SIZE=200000 [OUT=data/electronics.csv]
	@$(ENV) python -m bench.generate_events --events $(SIZE) --out $${OUT:-data/electronics.csv}

demo: stack-up ## Run the DAG end to end on DATA (default: generated sample) and leave the stack up
	@$(ENV) bash scripts/demo.sh "$(DATA)"

airflow: stack-up ## Airflow UI + scheduler on the local stack (http://localhost:8080, Ctrl-C stops it)
	@$(ENV) bash scripts/airflow_local.sh start

airflow-stop: ## Stop the Airflow that make airflow started (no process left behind)
	@$(ENV) bash scripts/airflow_local.sh stop

bench: stack-up ## Benchmarks: make bench SIZE=200000 -> bench/results/latest.json, docs/benchmarks.md
	@$(ENV) python -m bench.run --events $(SIZE)

bench-daily: stack-up ## Daily run: a 150-day archive, then one day's drop through the DAG (DAYS=150 DAILY=6000)
	@$(ENV) python -m bench.run --daily --archive-days $${DAYS:-150} --daily-events $${DAILY:-6000}

distclean: stack-clean ## Also delete .cache (venv, downloads, builds)
	rm -rf .cache

-include mk/*.mk
