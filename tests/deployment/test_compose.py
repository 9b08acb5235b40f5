"""docker-compose.yaml, checked statically: the Compose CLI validates it (no engine needed), and
each rule of the deployment is a check that passes on the real file and fails on a broken copy."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.ports import free_ports

from . import deploy_checks as checks

ROOT = checks.ROOT
COMPOSE = ROOT / "docker-compose.yaml"
ENV_FILE = ROOT / ".env"


@pytest.fixture(scope="module")
def model() -> dict:
    return checks.load_compose_model(COMPOSE, ENV_FILE)


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return checks.read_env_file(ENV_FILE)


def broken_copy(
    tmp_path: Path, replace: tuple[str, str] | None = None, env_replace: tuple[str, str] | None = None
) -> tuple[Path, Path]:
    """docker-compose.yaml and .env copied to tmp_path, with one text replacement each."""
    compose_text, env_text = COMPOSE.read_text(), ENV_FILE.read_text()
    for text_name, change in (("compose", replace), ("env", env_replace)):
        if change:
            old, new = change
            text = compose_text if text_name == "compose" else env_text
            assert old in text, f"test setup: {old!r} is not in the {text_name} file any more"
            if text_name == "compose":
                compose_text = text.replace(old, new)
            else:
                env_text = text.replace(old, new)
    (tmp_path / "docker-compose.yaml").write_text(compose_text)
    (tmp_path / ".env").write_text(env_text)
    return tmp_path / "docker-compose.yaml", tmp_path / ".env"


def broken_model(tmp_path: Path, old: str, new: str) -> dict:
    compose, env_file = broken_copy(tmp_path, (old, new))
    return checks.load_compose_model(compose, env_file)


# --------------------------------------------------------------------- Compose specification --
def test_compose_file_is_valid_for_the_compose_cli():
    assert checks.check_compose_config(COMPOSE, ENV_FILE) == []


def test_compose_cli_rejects_a_file_that_breaks_the_specification(tmp_path):
    # `intervall` is not a healthcheck attribute: the Compose schema forbids unknown keys.
    compose, env_file = broken_copy(
        tmp_path, ("      interval: 10s\n      retries: 5\n", "      intervall: 10s\n      retries: 5\n")
    )
    problems = checks.check_compose_config(compose, env_file)
    assert problems and "intervall" in problems[0]


def test_compose_cli_warning_about_an_unset_variable_is_a_problem(tmp_path):
    compose, env_file = broken_copy(tmp_path, env_replace=("SPARK_WORKER_MEMORY=2g\n", ""))
    problems = checks.check_compose_config(compose, env_file)
    assert any("SPARK_WORKER_MEMORY" in p for p in problems)


def test_the_variables_of_the_caller_do_not_hide_a_missing_env_entry(tmp_path, monkeypatch):
    # scripts/env.sh exports all of .env; the check must still see what the file lacks.
    monkeypatch.setenv("SPARK_WORKER_MEMORY", "2g")
    compose, env_file = broken_copy(tmp_path, env_replace=("SPARK_WORKER_MEMORY=2g\n", ""))
    assert checks.check_compose_config(compose, env_file)


# ------------------------------------------------------------------------------ health checks --
def test_every_long_running_service_has_a_healthcheck(model):
    assert checks.check_healthchecks(model) == []
    one_shots = sorted(name for name, s in model["services"].items() if checks.is_one_shot(s))
    assert one_shots == ["airflow-init", "es-init", "kafka-init", "minio-init", "preflight"]


def test_a_service_without_healthcheck_is_reported(model):
    services = json.loads(json.dumps(model))
    del services["services"]["kafka"]["healthcheck"]
    assert checks.check_healthchecks(services) == ["kafka: long-running service without a health check"]


def test_dependencies_wait_for_health_or_completion(model):
    assert checks.check_depends_on(model) == []


def test_a_dependency_on_a_mere_start_or_an_unhealthy_target_is_reported(tmp_path):
    broken = broken_model(
        tmp_path,
        '      kafka:\n        condition: service_healthy\n    restart: "no"',
        '      kafka:\n        condition: service_started\n    restart: "no"',
    )
    assert checks.check_depends_on(broken) == ["kafka-init: depends on kafka with condition 'service_started'"]
    no_health = json.loads(json.dumps(broken))
    no_health["services"]["kafka-init"]["depends_on"]["kafka"]["condition"] = "service_healthy"
    del no_health["services"]["kafka"]["healthcheck"]
    assert "waits for kafka to be healthy, but kafka has no health check" in checks.check_depends_on(no_health)[0]


def test_airflow_waits_for_every_backing_service(model):
    depends = model["services"]["airflow-scheduler"]["depends_on"]
    for service, condition in {
        "postgres": "service_healthy",
        "airflow-init": "service_completed_successfully",
        "kafka-init": "service_completed_successfully",
        "minio-init": "service_completed_successfully",
        "elasticsearch": "service_healthy",
        "es-init": "service_completed_successfully",
        "spark-worker": "service_healthy",
        "preflight": "service_completed_successfully",
        "airflow-apiserver": "service_healthy",
        "kibana": "service_healthy",
    }.items():
        assert depends[service]["condition"] == condition, service


# ----------------------------------------------------------------------------------- images --
def test_every_image_is_pinned(model):
    assert checks.check_images_pinned(model) == []


@pytest.mark.parametrize("image", ["apache/kafka", "apache/kafka:latest"])
def test_an_unpinned_image_is_reported(tmp_path, image):
    broken = broken_model(
        tmp_path, "  kafka:\n    image: ${KAFKA_IMAGE:-apache/kafka:4.1.1}", f"  kafka:\n    image: {image}"
    )
    assert checks.check_images_pinned(broken) == [f"kafka: image {image} is not pinned to a version"]


def test_image_tags_are_read_like_docker_reads_them():
    assert checks.image_tag("localhost:5000/team/app") is None
    assert checks.image_tag("localhost:5000/team/app:1.2") == "1.2"
    assert checks.image_tag("postgres@sha256:abc") == "sha256:abc"


# -------------------------------------------------------------------------------- variables --
def test_every_variable_is_defined_in_env(env):
    assert checks.check_variables_defined(COMPOSE.read_text(), env) == []
    used = checks.compose_variables(COMPOSE.read_text())
    assert {"AIRFLOW_PORT", "KAFKA_TOPIC", "MINIO_BUCKET", "ES_JAVA_HEAP", "AIRFLOW_UID"} <= used
    # $${HOSTNAME} is for the container's shell, not for Compose
    assert "HOSTNAME" not in used


def test_an_undefined_variable_is_reported(env):
    text = COMPOSE.read_text().replace("${KIBANA_PORT}:5601", "${KIBANA_HOST_PORT:-5601}:5601")
    assert checks.check_variables_defined(text, env) == [
        "${KIBANA_HOST_PORT} is used in docker-compose.yaml but not defined in .env"
    ]


# ------------------------------------------------------------------------------------ ports --
def test_host_ports_are_unique_and_come_from_env(model, env):
    assert checks.check_host_ports_unique(model) == []
    published = {
        name: sorted(str(p["published"]) for p in s.get("ports") or [])
        for name, s in model["services"].items()
        if s.get("ports")
    }
    assert published == {
        "airflow-apiserver": [env["AIRFLOW_PORT"]],
        "airflow-scheduler": [env["SPARK_APP_UI_PORT"]],
        "kafka": [env["KAFKA_PORT"]],
        "minio": sorted([env["MINIO_PORT"], env["MINIO_CONSOLE_PORT"]]),
        "elasticsearch": [env["ELASTICSEARCH_PORT"]],
        "kibana": [env["KIBANA_PORT"]],
        "spark-master": [env["SPARK_MASTER_UI_PORT"]],
        "spark-worker": [env["SPARK_WORKER_UI_PORT"]],
        "mailpit": [env["MAILPIT_UI_PORT"]],
    }


def test_spark_uis_are_remapped_away_from_airflow(model, env):
    ports = {
        s: {str(p["target"]): str(p["published"]) for p in model["services"][s]["ports"]}
        for s in ("spark-master", "spark-worker")
    }
    assert ports == {"spark-master": {"8080": "8082"}, "spark-worker": {"8081": "8083"}}
    assert env["AIRFLOW_PORT"] == "8080"


def test_a_port_clash_is_reported(tmp_path):
    compose, env_file = broken_copy(tmp_path, env_replace=("SPARK_MASTER_UI_PORT=8082", "SPARK_MASTER_UI_PORT=8080"))
    broken = checks.load_compose_model(compose, env_file)
    assert checks.check_host_ports_unique(broken) == ["host port 8080 is published by airflow-apiserver, spark-master"]


def _ports_check(compose: Path, env_file: Path, *own_ports: int):
    """scripts/compose_ports.py (what `make start` runs before `up`) on a resolved configuration."""
    config = checks.compose_config(compose, env_file)
    assert config.returncode == 0, config.stderr
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compose_ports.py"), *map(str, own_ports)],
        input=config.stdout,
        capture_output=True,
        text=True,
        cwd=env_file.parent,
    )


def test_start_names_a_host_port_already_in_use_before_anything_starts(tmp_path):
    ports = free_ports(13)
    env_text = ENV_FILE.read_text()
    for variable, port in zip(sorted(set(re.findall(r"^([A-Z_]+_PORT)=", env_text, re.M))), ports, strict=False):
        env_text = re.sub(rf"^{variable}=.*$", f"{variable}={port}", env_text, flags=re.M)
    (tmp_path / ".env").write_text(env_text)
    (tmp_path / "docker-compose.yaml").write_text(COMPOSE.read_text())
    compose, env_file = tmp_path / "docker-compose.yaml", tmp_path / ".env"
    assert _ports_check(compose, env_file).returncode == 0  # every port free

    airflow_port = int(re.search(r"^AIRFLOW_PORT=(\d+)$", env_text, re.M).group(1))
    with socket.socket() as listener:  # e.g. the local stack's `make airflow` on the same port
        listener.bind(("127.0.0.1", airflow_port))
        listener.listen()
        taken = _ports_check(compose, env_file)
        assert taken.returncode == 1
        assert f"127.0.0.1:{airflow_port} (AIRFLOW_PORT, published by airflow-apiserver) is already in use" in (
            taken.stderr
        )
        assert "make stack-down" in taken.stderr
        # a running project keeps its own ports: `make start` on a stack that is already up
        assert _ports_check(compose, env_file, airflow_port).returncode == 0


# --------------------------------------------------------------------------- container view --
def test_airflow_containers_see_service_names_not_localhost(model, env):
    assert checks.check_container_view(model, env) == []
    scheduler_env = model["services"]["airflow-scheduler"]["environment"]
    assert scheduler_env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:29092"
    assert scheduler_env["SPARK_JARS_DIR"] == "/opt/spark-jars"
    assert scheduler_env["PIPELINE_PROJECT_DIR"] == "/opt/airflow"
    assert scheduler_env["PIPELINE_DATA_DIR"] == "/opt/airflow/data"
    assert scheduler_env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"


def test_a_host_view_endpoint_left_in_the_containers_is_reported(tmp_path, env):
    broken = broken_model(tmp_path, "    MINIO_ENDPOINT: http://minio:9000\n", "")
    problems = checks.check_container_view(broken, env)
    assert problems and all("MINIO_ENDPOINT still points at the host" in p for p in problems)


def test_a_connection_to_an_unknown_host_is_reported(tmp_path, env):
    broken = broken_model(tmp_path, '"host": "elasticsearch", "port": 9200', '"host": "elastic", "port": 9200')
    problems = checks.check_container_view(broken, env)
    assert problems and all("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT names host 'elastic'" in p for p in problems)


def test_a_connection_whose_extra_settings_drift_from_env_is_reported(tmp_path, env):
    broken = broken_model(
        tmp_path,
        '"extra": {"bootstrap.servers": "kafka:29092"}',
        '"extra": {"bootstrap.servers": "kafka:29092", "group.id": "x"}',
    )
    problems = checks.check_container_view(broken, env)
    assert problems and all("AIRFLOW_CONN_KAFKA_DEFAULT extra keys" in p for p in problems)


def test_container_connections_resolve_with_the_airflow_providers(model, monkeypatch):
    """The providers' own hooks read the container-view connections as intended."""
    from airflow.models.connection import Connection
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    environment = model["services"]["airflow-scheduler"]["environment"]
    for key, value in environment.items():
        if key.startswith("AIRFLOW_CONN_"):
            monkeypatch.setenv(key, value)
    assert SparkSubmitHook(conn_id="spark_default")._resolve_connection()["master"] == "spark://spark-master:7077"
    assert SparkSubmitHook(conn_id="spark_default")._resolve_connection()["deploy_mode"] == "client"
    minio = Connection.get_connection_from_secrets("minio_default")
    assert (minio.conn_type, minio.extra_dejson["endpoint_url"]) == ("aws", "http://minio:9000")
    kafka = Connection.get_connection_from_secrets("kafka_default")
    assert kafka.extra_dejson["bootstrap.servers"] == "kafka:29092"
    es = Connection.get_connection_from_secrets("elasticsearch_default")
    assert (es.host, es.port, es.schema) == ("elasticsearch", 9200, "http")
    kibana = Connection.get_connection_from_secrets("kibana_default")
    assert (kibana.conn_type, kibana.host, kibana.port) == ("http", "kibana", 5601)


def test_minio_connection_carries_the_pipeline_user_not_root(model, env):
    conn = json.loads(model["services"]["airflow-scheduler"]["environment"]["AIRFLOW_CONN_MINIO_DEFAULT"])
    assert (conn["login"], conn["password"]) == (env["MINIO_PIPELINE_USER"], env["MINIO_PIPELINE_PASSWORD"])
    assert conn["login"] != env["MINIO_ROOT_USER"]


# ---------------------------------------------------------------------------- Kafka / MinIO --
def test_kafka_listeners_and_topic(model, env):
    assert checks.check_kafka(model, env) == []
    kafka = model["services"]["kafka"]["environment"]
    assert "ZOOKEEPER" not in json.dumps(kafka).upper()
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert (
        kafka["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://kafka:29092,PLAINTEXT_HOST://localhost:{env['KAFKA_PORT']}"
    )


def test_a_kafka_init_with_other_partitions_is_reported(tmp_path, env):
    broken = broken_model(tmp_path, '- "${KAFKA_TOPIC_PARTITIONS}"', '- "1"')
    assert checks.check_kafka(broken, env) == [
        f"kafka-init: --partitions is not $KAFKA_TOPIC_PARTITIONS ({env['KAFKA_TOPIC_PARTITIONS']})"
    ]


def test_minio_init_creates_the_env_bucket(model, env):
    init = model["services"]["minio-init"]
    assert init["environment"]["MINIO_BUCKET"] == env["MINIO_BUCKET"]
    # `config` prints the file's $$ escapes as they are: the container's shell expands them.
    assert 'mc mb --ignore-existing "lake/$$MINIO_BUCKET"' in init["command"][1]


def test_elasticsearch_is_single_node_with_security_and_env_heap(model, env):
    es = model["services"]["elasticsearch"]["environment"]
    assert es["discovery.type"] == "single-node"
    assert es["xpack.security.enabled"] == "true"
    assert es["ES_JAVA_OPTS"] == f"-Xms{env['ES_JAVA_HEAP']} -Xmx{env['ES_JAVA_HEAP']}"
    kibana_test = " ".join(model["services"]["kibana"]["healthcheck"]["test"])
    assert "/api/status" in kibana_test


def test_airflow_shape_follows_the_official_file():
    raw = yaml.safe_load(COMPOSE.read_text())
    assert "x-airflow-common" in raw
    assert {
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    } <= set(raw["services"])
    assert raw["x-airflow-common"]["user"] == "${AIRFLOW_UID:-50000}:0"
    mounts = {m.split(":")[0] for m in raw["x-airflow-common"]["volumes"]}
    assert {"./dags", "./plugins", "./spark_jobs", "./include", "./data"} <= mounts
