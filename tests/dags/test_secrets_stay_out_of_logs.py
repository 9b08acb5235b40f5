"""Secrets never reach a command line or a task log.

The real ProfileJobSubmitOperator (build_profiles) runs in a fresh process with Airflow's task
logging (the SDK's structlog set-up and its secrets masker, which writes task logs), its
connections from .env, and a fake `spark-submit` first on PATH (SparkSubmitHook runs the
`spark-submit` it finds there). The fake records its argv and the --properties-file it was given
(mode, content), echoes its command line, and echoes a secret as a careless Spark would: the hook
copies that output into the task log. Then the probe logs the connection passwords on purpose.
About 8 s, no services needed.

(`airflow dags test` prints task output through the CLI's own logging, whose masker is not the
one the task SDK registers connection secrets with: there a logged password shows in clear. Task
logs written by a worker go through the SDK's masker, which this test exercises.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import services

FAKE_SPARK_SUBMIT = r'''#!{python}
"""Fake spark-submit: records argv and the properties file, echoes like a talkative Spark."""
import json, os, stat, sys
args = sys.argv[1:]
record = {"argv": args}
if "--properties-file" in args:
    path = args[args.index("--properties-file") + 1]
    info = os.stat(path)
    record.update(properties_path=path, properties_mode=stat.S_IMODE(info.st_mode),
                  properties_uid=info.st_uid, properties=open(path).read())
with open(os.environ["FAKE_SPARK_SUBMIT_LOG"], "w") as out:
    json.dump(record, out)
print("fake spark-submit argv: " + " ".join(args))
secret = [line.split(" ", 1)[1] for line in record.get("properties", "").splitlines()
          if line.startswith("spark.hadoop.fs.s3a.secret.key ")]
print("fake spark-submit read spark.hadoop.fs.s3a.secret.key=" + (secret[0] if secret else "?"))
'''

PROBE = r"""
import logging
import sys

from airflow.sdk.log import configure_logging

# Task logging as the task SDK sets it up (structlog, secrets masker), to stdout.
configure_logging(output=sys.stdout, colored_console_log=False, cache_logger_on_first_use=False)

from airflow.sdk import BaseHook

from ecommerce_profiles.operators.spark_submit import ProfileJobSubmitOperator

log = logging.getLogger("airflow.task")
operator = ProfileJobSubmitOperator(task_id="build_profiles", application=sys.argv[1], name="secrets-probe",
                                    application_args=["--snapshot-date", "2024-01-01", "--es-index", sys.argv[2]])
operator.execute({})
print("PROPERTIES_FILE=" + operator.properties_file, file=sys.stderr)
for conn_id in ("minio_default", "elasticsearch_default"):
    conn = BaseHook.get_connection(conn_id)
    log.info("probe: connection %s password is %s", conn_id, conn.password)
    log.info("probe: connection %s as a URI: %s", conn_id, conn.get_uri())
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("secrets")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "spark-submit"
    fake.write_text(FAKE_SPARK_SUBMIT.replace("{python}", sys.executable))
    fake.chmod(0o755)
    record_file = root / "spark-submit.json"
    # The operator owns its build's index (it creates it before spark-submit): a private alias
    # keeps the probe's index apart from every pipeline's, and it is deleted afterwards.
    alias = f"secrets-probe-{os.getpid()}"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_SPARK_SUBMIT_LOG": str(record_file),
        "AIRFLOW_HOME": str(root / "airflow"),
        "ELASTICSEARCH_INDEX": alias,
    }
    try:
        result = subprocess.run(
            [sys.executable, "-c", PROBE, str(root / "customer_profiles.py"), f"{alias}-20240101-probe"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        services.delete_indices(f"{alias}-*")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    properties_file = next(
        line.split("=", 1)[1] for line in result.stderr.splitlines() if line.startswith("PROPERTIES_FILE=")
    )
    return {
        "log": result.stdout + result.stderr,
        "record": json.loads(record_file.read_text()),
        "properties_file": Path(properties_file),
    }


def secrets() -> dict[str, str]:
    """Every secret of .env and of the connections the operator reads."""
    values = {
        key: os.environ[key]
        for key in (
            "MINIO_PIPELINE_PASSWORD",
            "ELASTICSEARCH_PASSWORD",
            "MINIO_ROOT_PASSWORD",
            "ELASTIC_PASSWORD",
            "KIBANA_SYSTEM_PASSWORD",
        )
    }
    for key in ("AIRFLOW_CONN_MINIO_DEFAULT", "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"):
        values[key] = json.loads(os.environ[key])["password"]
    return values


def test_spark_submit_command_line_has_no_secret(probe):
    argv = probe["record"]["argv"]
    command_line = " ".join(argv)
    for name, value in secrets().items():
        assert value not in command_line, name
    for key in ("spark.hadoop.fs.s3a.access.key", "spark.hadoop.fs.s3a.secret.key", "spark.es.net.http.auth"):
        assert key not in command_line
    assert os.environ["MINIO_PIPELINE_USER"] not in command_line
    # The job still gets its endpoints: the authenticating Elasticsearch endpoint, the lake.
    assert argv[argv.index("--es-nodes") + 1] == os.environ["ELASTICSEARCH_AUTH_URL"]
    assert argv[argv.index("--lake-uri") + 1] == f"s3a://{os.environ['MINIO_BUCKET']}"


def test_credentials_reach_spark_in_a_private_properties_file_deleted_afterwards(probe):
    record = probe["record"]
    assert record["properties_mode"] == 0o600 and record["properties_uid"] == os.getuid()
    properties = dict(line.split(" ", 1) for line in record["properties"].splitlines())
    # The pipeline's own MinIO user (not root) and the Elasticsearch login the proxy demands.
    assert properties == {
        "spark.hadoop.fs.s3a.access.key": os.environ["MINIO_PIPELINE_USER"],
        "spark.hadoop.fs.s3a.secret.key": os.environ["MINIO_PIPELINE_PASSWORD"],
        "spark.es.net.http.auth.user": os.environ["ELASTICSEARCH_USER"],
        "spark.es.net.http.auth.pass": os.environ["ELASTICSEARCH_PASSWORD"],
    }
    assert Path(record["properties_path"]) == probe["properties_file"]
    assert not probe["properties_file"].exists()


def test_task_log_has_no_secret_even_when_spark_echoes_one(probe):
    log = probe["log"]
    assert "fake spark-submit argv: --master" in log  # the hook copied spark-submit's output into the log
    assert "fake spark-submit read spark.hadoop.fs.s3a.secret.key=***" in log
    for name, value in secrets().items():
        assert value not in log, name


def test_airflow_masks_connection_passwords_when_they_are_logged(probe):
    log = probe["log"]
    assert "probe: connection minio_default password is ***" in log
    assert "probe: connection elasticsearch_default password is ***" in log
    assert f"elasticsearch://{os.environ['ELASTICSEARCH_USER']}:***@" in log
