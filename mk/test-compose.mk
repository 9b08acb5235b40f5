# make test-compose: the Docker Compose stack started for real and the DAGs run in it
# (tests/compose, marked `compose`; plain `make test` leaves them out and needs no Docker).
#
# One stack for the whole suite, from nothing to nothing: `make start STACK=compose` (build the
# images, docker compose up --wait) under the project name COMPOSE_TEST_PROJECT and free host
# ports (so it runs beside the local stack and beside a user's own Compose stack), the DAGs
# driven through the api-server's REST API and the UI (Playwright + Debian's Chromium), faults
# with `docker compose kill`, and `docker compose down -v` at the end (not `make clean`: it
# also stops a dockerd the project started, and with it every other project on that engine). Timings and
# the memory peak: $(STACK_DIR)/compose-test/measurements.json; service logs beside it.

COMPOSE_TEST_PROJECT ?= ecommerce-profiles-test

.PHONY: test-compose

test-compose: venv compose-engine ## The Compose stack for real: build, up --wait, DAG runs, faults, UI, down -v (needs Docker)
	@$(ENV) COMPOSE_TEST_PROJECT=$(COMPOSE_TEST_PROJECT) pytest -m compose -s tests/compose $(PYTEST_ARGS)
