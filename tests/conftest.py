"""Shared fixtures: the real local stack and a local SparkSession.

Tests that touch Kafka, MinIO or Elasticsearch take the `stack` fixture: it runs
`scripts/stack.sh up` (idempotent: seconds when already up) and gives the endpoints from .env.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


# Fixtures that need a running service (or spawn Airflow/spark-submit against one).
_INTEGRATION_FIXTURES = {"stack"}
# Folders whose tests need what `make setup` provisions (Airflow's DB, the Compose CLI and the
# Dockerfile linter) even where they use no service.
_INTEGRATION_FOLDERS = ("dags", "stack", "deployment", "fresh_machine")
# Tests of the Docker Compose stack (make test-compose): marked `compose`, which pytest.ini leaves
# out of every run that does not ask for it (make test needs no Docker).
_COMPOSE_FOLDERS = ("compose",)


def pytest_collection_modifyitems(config, items):
    """Mark every test `integration` when it uses the stack, `unit` otherwise.

    Derived from the fixtures a test really requests, so a new test cannot be mis-filed:
    `make test-fast` (-m unit) runs everything that needs neither services nor spark-submit.
    A local SparkSession (the `spark` fixture) is a unit test here, but a slow one: `spark`.
    """
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        folder = Path(str(item.fspath)).relative_to(PROJECT_ROOT / "tests").parts[0]
        if folder in _COMPOSE_FOLDERS:
            item.add_marker(pytest.mark.compose)
            item.add_marker(pytest.mark.integration)
        elif names & _INTEGRATION_FIXTURES or folder in _INTEGRATION_FOLDERS:
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)
        if "spark" in names:
            item.add_marker(pytest.mark.spark)


# Seconds per suite (the folder under tests/: setup, call and teardown of its tests, so a
# session fixture's start-up counts for the first suite that asks for it), printed at the end
# of every run: CI reports each suite's time from here.
_SUITE_SECONDS: dict[str, float] = {}


def _suite_of(nodeid: str) -> str:
    parts = nodeid.replace(os.sep, "/").split("::")[0].split("/")
    return "/".join(parts[:2]) if len(parts) > 2 else parts[-1]


def pytest_runtest_logreport(report):
    suite = _suite_of(report.nodeid)
    _SUITE_SECONDS[suite] = _SUITE_SECONDS.get(suite, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if not _SUITE_SECONDS:
        return
    terminalreporter.section("seconds per suite")
    for suite, seconds in sorted(_SUITE_SECONDS.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{seconds:8.1f}  {suite}")
    terminalreporter.write_line(f"{sum(_SUITE_SECONDS.values()):8.1f}  total")


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def stack() -> dict[str, str]:
    """Start (or reuse) the local stack and return its endpoints."""
    subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "stack.sh"), "up"], check=True)
    return {
        "kafka": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        "minio": os.environ["MINIO_ENDPOINT"],
        "elasticsearch": os.environ["ELASTICSEARCH_URL"],
        "bucket": os.environ["MINIO_BUCKET"],
    }


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for the whole run (JVM start-up is the expensive part)."""
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("tests")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    yield session
    session.stop()
    # py4j's finalizer logs "Closing down clientserver connection" at interpreter exit, after
    # pytest closed the stream that Airflow's log handler writes to: a "--- Logging error ---"
    # traceback at the end of every run that imported Airflow. Nothing of py4j's INFO is needed.
    logging.getLogger("py4j").setLevel(logging.WARNING)
