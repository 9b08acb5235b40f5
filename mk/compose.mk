# The seed's commands for both routes (included by the Makefile):
#
#   STACK=compose  the Docker Compose deployment (docker-compose.yaml, docs/deployment.md)
#   STACK=local    the same services as local processes (scripts/stack.sh), Airflow from the venv
#
# Default: compose when `docker compose` and a Docker engine answer, else local.
# ingest/process run parts of the ecommerce_customer_profiles DAG for one logical date DATE on
# one CSV file DATA (default: data/electronics.csv, else data/events.csv): a path inside ./data
# (the data directory; the containers mount it at /opt/airflow/data), passed to the DAG relative to it:
#   make ingest   `airflow dags test` with every task after produce_events marked success
#                 without running: CSV -> validate_events -> produce_events -> Kafka
#   make process  `airflow tasks test` of the remaining tasks in that same run (they read its
#                 XComs: offsets, snapshot date): Kafka -> Spark -> MinIO + Elasticsearch (+ Kibana)

ENV ?= source scripts/env.sh &&
COMPOSE ?= docker compose
# Stand-in images (scripts/compose_images.sh select, run by `make start`): when no registry
# answered, .stack/compose-images.env names them and adds docker-compose.standin.yaml
# (COMPOSE_FILE); every target below then passes it to Compose after .env (`start` brings the
# stack up in a second make, which sees the file it has just written).
# scripts/compose_images.sh writes it under STACK_DIR (default .stack), the same variable here.
COMPOSE_IMAGES_ENV ?= $(or $(STACK_DIR),.stack)/compose-images.env
COMPOSE_CMD = $(COMPOSE)$(if $(wildcard $(COMPOSE_IMAGES_ENV)), --env-file .env --env-file $(COMPOSE_IMAGES_ENV))
DAG_ID ?= ecommerce_customer_profiles
DATE ?= 2020-10-01
DATA ?=
INGEST_TASKS := plan_run wait_for_input validate_events produce_events
PROCESS_TASKS ?= create_profile_index build_profiles publish_profiles import_kibana_objects summarise_run clean_up_run
# Evaluated once; `make STACK=local ...` overrides.
ifeq ($(origin STACK),undefined)
STACK := $(shell docker compose version >/dev/null 2>&1 && docker info >/dev/null 2>&1 && echo compose || echo local)
endif
ifeq ($(filter $(STACK),compose local),)
$(error STACK must be compose or local, not '$(STACK)')
endif

# The dataset the pipeline targets read: DATA, else the first of the two seed names.
DATASET = $(or $(DATA),$(firstword $(wildcard data/electronics.csv data/events.csv)),data/electronics.csv)
# Airflow CLI: in the scheduler container (it runs the tasks) or from the venv.
ifeq ($(STACK),compose)
AIRFLOW_CLI = $(COMPOSE_CMD) exec -T airflow-scheduler airflow
else
AIRFLOW_CLI = $(ENV) bash scripts/airflow_db.sh && $(ENV) airflow
endif
empty :=
space := $(empty) $(empty)
MARK_SUCCESS_PATTERN = ^($(subst $(space),|,$(strip $(PROCESS_TASKS))))$$
# `airflow tasks test` and `airflow dags test` exit 0 even when a task fails: ask for the state.
# $(call require_success,<task id or shell variable>)
require_success = state=$$($(AIRFLOW_CLI) tasks state $(DAG_ID) $(1) $(DATE) 2>/dev/null | tail -n 1); \
	case "$$state" in success|skipped) echo "=== $(1): $$state";; \
	  *) echo "=== $(1): $${state:-no state} (see the log above)" >&2; exit 1;; esac

.PHONY: check-data start stop ingest process logs ps clean compose-up compose-engine compose-base-image compose-engine-status

# A Docker engine for STACK=compose where the machine has none ready (scripts/docker_engine.sh):
# Debian's docker.io, dockerd in the background (no systemd), the compose and buildx CLI plugins
# built from the Go module proxy. A no-op where `docker info`, `docker compose` and `docker buildx` work.
compose-engine: ## Docker engine + compose/buildx plugins, installed and started when missing
	@bash scripts/docker_engine.sh ensure

compose-base-image: ## Debian bookworm base image for the stand-in images (debootstrap; prints its name)
	@bash scripts/docker_engine.sh base-image

compose-engine-status: ## Docker engine, plugins and base image: what is there and who started it
	@bash scripts/docker_engine.sh status

check-data: ## Is the dataset in place? (data/electronics.csv or data/events.csv: header, rows)
	@$(ENV) python scripts/check_data.py $(DATA)

start: ## Start every service (STACK=compose: docker compose up --build --wait; local: stack-up)
ifeq ($(STACK),compose)
	@./setup-environment.sh
	@# A Docker engine, the compose and buildx plugins (installed/started/built only when missing),
	@# then the images: official ones, or stand-ins when no registry answers (it says which and why).
	@bash scripts/docker_engine.sh ensure
	@bash scripts/compose_images.sh select
	@$(MAKE) --no-print-directory compose-up

compose-up: ## docker compose up -d --build --wait with the images `make start` selected
	@# Taken host ports fail here, named, before any build (not half-way through `up`); a
	@# project that already runs keeps its own ports.
	@[ -n "$$($(COMPOSE_CMD) ps -q 2>/dev/null)" ] || $(COMPOSE_CMD) config --format json | python3 scripts/compose_ports.py
	$(COMPOSE_CMD) up -d --build --wait
else
	@$(ENV) bash scripts/stack.sh up
	@echo "Local stack up. The Airflow UI runs in the foreground with: make airflow"
endif

stop: ## Stop every service, keep the data (compose: down; local: stack-down)
ifeq ($(STACK),compose)
	$(COMPOSE_CMD) down
	@# Stops dockerd only when scripts/docker_engine.sh started it.
	@bash scripts/docker_engine.sh stop
else
	@$(ENV) bash scripts/stack.sh down
endif

ingest: check-data ## CSV -> Kafka: validate_events + produce_events of DAG_ID for DATE on DATA
	$(AIRFLOW_CLI) dags test $(DAG_ID) $(DATE) -c '{"input_path": "$(DATASET:data/%=%)"}' \
	  --mark-success-pattern '$(MARK_SUCCESS_PATTERN)'
	@set -e; for task in $(INGEST_TASKS); do $(call require_success,$$task); done

process: ## Kafka -> Spark -> MinIO + Elasticsearch: the rest of the run `make ingest` made
	@set -e; for task in $(PROCESS_TASKS); do \
	  echo "=== $$task ($(DAG_ID), $(DATE))"; \
	  $(AIRFLOW_CLI) tasks test $(DAG_ID) $$task $(DATE); \
	  $(call require_success,$$task); \
	done

logs: ## Follow the logs (compose: every service; local: .stack/logs/*.log)
ifeq ($(STACK),compose)
	$(COMPOSE_CMD) logs -f --tail=100
else
	@$(ENV) tail -n 50 -F "$$STACK_LOG_DIR"/*.log
endif

ps: ## State and health of each service
ifeq ($(STACK),compose)
	$(COMPOSE_CMD) ps
else
	@$(ENV) bash scripts/stack.sh status
endif

clean: ## Stop and delete the services' data (compose: down -v; local: stack-clean); keeps .cache
ifeq ($(STACK),compose)
	$(COMPOSE_CMD) down -v --remove-orphans
	@bash scripts/docker_engine.sh stop
else
	@$(ENV) bash scripts/stack.sh clean
endif
