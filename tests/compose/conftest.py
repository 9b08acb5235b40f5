"""One Compose stack for the whole tests/compose suite (``make test-compose``), from nothing to nothing.

The session starts it with the make target users run (``make start STACK=compose``: build, then
``docker compose up --wait``) under its own project name and free host ports (see
compose_support.py), samples its memory with ``docker stats`` while the tests run, and takes it
down with ``docker compose down -v`` at the end whatever happened;
the last test checks that nothing of the project is left. Files the tests drop into ./data are
removed again.

Timings (``up``, each test) and the memory peak go to ``$STACK_DIR/compose-test/measurements.json``
and are printed at the end of the session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.compose.compose_support import (
    PROFILES_DAG,
    TRAINING_DAG,
    ComposeAirflow,
    ComposeLake,
    ComposeStack,
    MemorySampler,
    read_env_file,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = Path(os.environ.get("STACK_DIR", PROJECT_ROOT / ".stack")) / "compose-test"
AIRFLOW_IMAGE = "ecommerce-profiles-airflow:3.3.2"

_MEASUREMENTS: dict = {"tests": {}}


def pytest_runtest_logreport(report):
    if "tests/compose/" in report.nodeid.replace(os.sep, "/") and report.when == "call":
        _MEASUREMENTS["tests"][report.nodeid.split("::")[-1]] = {
            "outcome": report.outcome,
            "seconds": round(report.duration, 1),
        }


def pytest_sessionfinish(session, exitstatus):
    if not _MEASUREMENTS["tests"]:
        return
    _MEASUREMENTS["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    target = LOG_DIR / "measurements.json"
    target.write_text(json.dumps(_MEASUREMENTS, indent=2, default=str) + "\n")
    print(f"\n[compose] measurements: {target}\n{json.dumps(_MEASUREMENTS, indent=2, default=str)}")


@pytest.fixture(scope="session")
def measurements() -> dict:
    return _MEASUREMENTS


def _image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def compose_stack(measurements):
    """``make start STACK=compose`` from nothing; ``docker compose down -v`` at the end."""
    stack = ComposeStack.with_free_ports(LOG_DIR)
    measurements["project"] = stack.project
    measurements["ports"] = stack.ports
    if stack.leftovers() != {"containers": [], "networks": [], "volumes": []}:
        # An earlier test run that was killed: start from nothing all the same.
        stack.down()
    measurements["up_kind"] = "warm" if _image_exists(AIRFLOW_IMAGE) else "cold"
    measurements["load_before_up"] = os.getloadavg()
    sampler = MemorySampler(stack).start()
    started = time.time()
    try:
        measurements["up_s"] = round(stack.up(), 1)
        yield stack
    finally:
        sampler.stop()
        measurements["memory"] = sampler.peak()
        measurements["stack_lifetime_s"] = round(time.time() - started, 1)
        measurements["events"] = [(time.strftime("%H:%M:%S", time.localtime(t)), what) for t, what in stack.events]
        try:
            if stack.containers():
                stack.save_logs()
                stack.down()
        except (RuntimeError, subprocess.SubprocessError, OSError) as err:
            print(f"[compose] clean-up failed: {err}")


@pytest.fixture(scope="session")
def env_file() -> dict[str, str]:
    return read_env_file(PROJECT_ROOT / ".env")


@pytest.fixture(scope="session")
def airflow(compose_stack, env_file, measurements):
    """The containerised api-server, signed in as .env's admin, once both DAGs are parsed."""
    instance = ComposeAirflow(
        home=LOG_DIR,
        port=compose_stack.port("AIRFLOW_PORT"),
        env=compose_stack.env,
        log=LOG_DIR / "airflow.log",
        username=env_file["AIRFLOW_ADMIN_USER"],
        admin_password=env_file["AIRFLOW_ADMIN_PASSWORD"],
    )
    started = time.monotonic()
    instance.wait_for("the api-server, scheduler and DAG processor healthy", instance.healthy, timeout=300)
    for dag_id in (PROFILES_DAG, TRAINING_DAG):
        instance.wait_for_dag(dag_id)
    measurements["dags_parsed_after_up_s"] = round(time.monotonic() - started, 1)
    return instance


@pytest.fixture(scope="session")
def lake(compose_stack, env_file) -> ComposeLake:
    # The Elasticsearch port the host sees: the proxy an override puts in front of it when it
    # publishes one (ELASTICSEARCH_AUTH_PORT), else Elasticsearch itself; both take the pipeline's login.
    published = {
        binding["HostPort"]
        for info in compose_stack.inspect(*compose_stack.containers(all_states=False))
        for bindings in (info["NetworkSettings"]["Ports"] or {}).values()
        for binding in bindings or []
    }
    es_port = (
        "ELASTICSEARCH_AUTH_PORT"
        if str(compose_stack.port("ELASTICSEARCH_AUTH_PORT")) in published
        else "ELASTICSEARCH_PORT"
    )
    return ComposeLake(compose_stack.url("MINIO_PORT"), compose_stack.url(es_port), env_file)


@pytest.fixture(scope="session")
def data_files():
    """Paths the tests create under ./data (files or folders); removed at the end of the session."""
    created: list[Path] = []
    yield created
    for path in reversed(created):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def state() -> dict:
    """What one test leaves for the next (run ids, the clean run's end state)."""
    return {}
