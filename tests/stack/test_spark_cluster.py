"""The opt-in Spark standalone cluster of the local stack (scripts/services/spark.sh).

The production path of Compose, on this machine: a job submitted in client mode to
spark://127.0.0.1:7077 runs on the worker's executors, which call the driver back, fetch the
connector jars from it (spark.jars, as job_conf sets for a non-local master), read a Kafka offset
range, write and read the MinIO lake through s3a and run Python workers; its output equals that of
the same job on local[2]. The module brings the cluster up and stops it again at the end (unless
it was already running before), so the rest of the suite does not pay for its memory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from ecommerce_profiles.spark_submit_conf import job_conf, local_jars, s3a_conf_from_env, spark_submit_command
from spark_jobs.spark_conf import EARLIEST, offsets_json
from tests.spark_jobs.spark_io_support import (
    PROJECT_ROOT,
    create_topic,
    delete_topic,
    minio_filesystem,
    produce_json_events,
    run_spark_submit,
    watermarks,
)

from .stack_cli import assert_status_up, assert_up_refuses_taken_port, run_stack

MASTER = f"spark://127.0.0.1:{os.environ.get('SPARK_MASTER_PORT', '7077')}"
MASTER_UI = f"http://127.0.0.1:{os.environ['SPARK_MASTER_UI_PORT']}"
PARTITIONS = 3
SPARK_WORK_DIR = Path(os.environ["STACK_DIR"]) / "data" / "spark" / "work"
LEFTOVER_APP_DIR = SPARK_WORK_DIR / "app-19700101000000-0000"

# Kafka range -> raw Parquet in the lake (s3a write) -> read back (s3a read) -> a Python UDF and a
# shuffle -> totals per user in the lake. Writes a small report (where it ran) as JSON.
JOB = """
import json
import sys

from pyspark.sql import SparkSession, functions as F

from spark_jobs.spark_conf import kafka_batch_options

bootstrap, topic, starting, ending, raw_uri, totals_uri, report_path = sys.argv[1:]
spark = SparkSession.builder.appName("test_spark_cluster").getOrCreate()
(
    spark.read.format("kafka")
    .options(**kafka_batch_options(bootstrap, topic, starting, ending))
    .load()
    .selectExpr("CAST(key AS STRING) AS key", "CAST(value AS STRING) AS value", "partition", "offset")
    .write.mode("overwrite").parquet(raw_uri)
)
raw = spark.read.parquet(raw_uri)
event_type = F.udf(lambda value: json.loads(value)["event_type"].upper(), "string")
(
    raw.select(
        F.col("key").alias("user_id"),
        event_type("value").alias("event_type"),
        F.get_json_object("value", "$.price").cast("decimal(10,2)").alias("price"),
    )
    .groupBy("user_id", "event_type")
    .agg(F.count("*").alias("events"), F.sum("price").alias("spent"))
    .write.mode("overwrite").parquet(totals_uri)
)
context = spark.sparkContext
# The driver and every executor the job had.
infos = context._jsc.sc().statusTracker().getExecutorInfos()
with open(report_path, "w") as report:
    json.dump({
        "master": context.master,
        "app_id": context.applicationId,
        "driver_host": context.getConf().get("spark.driver.host"),
        "executors": len(infos) - 1,
        "hosts": sorted({info.host() for info in infos}),
    }, report)
spark.stop()
"""


def master_state() -> dict:
    with urllib.request.urlopen(f"{MASTER_UI}/json/", timeout=5) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def spark_cluster(stack):
    """`stack.sh up spark`; `stack.sh down spark` after the module (if this module started it)."""
    already_up = run_stack("status", "spark").returncode == 0
    if not already_up:
        # What an earlier start leaves: an application's folder with its copy of the jars.
        LEFTOVER_APP_DIR.mkdir(parents=True, exist_ok=True)
        (LEFTOVER_APP_DIR / "aws-java-sdk-bundle.jar").write_bytes(b"\0" * 1024)
    started = time.monotonic()
    result = run_stack("up", "spark")
    assert result.returncode == 0, f"stack.sh up spark failed:\n{result.stderr}"
    print(f"spark cluster {'already up' if already_up else f'up in {time.monotonic() - started:.1f}s'}")
    yield MASTER
    if not already_up:
        result = run_stack("down", "spark")
        assert result.returncode == 0, result.stderr
        assert run_stack("status", "spark").returncode != 0, "the cluster is still answering after down"


@pytest.fixture(scope="module")
def events_range(stack):
    """A fresh topic with 3 partitions of JSON events; yields (topic, starting, ending) offsets JSON."""
    topic = f"test_spark_cluster_{uuid.uuid4().hex[:12]}"
    create_topic(stack["kafka"], topic, PARTITIONS)
    events = [
        {
            "user_id": 1000 + i % 17,
            "event_type": ("view", "cart", "purchase")[i % 3],
            "price": f"{(i * 7) % 500}.{i % 100:02d}",
        }
        for i in range(600)
    ]
    produce_json_events(stack["kafka"], topic, events)
    ending = watermarks(stack["kafka"], topic, PARTITIONS)
    assert sum(ending.values()) == len(events)
    yield topic, offsets_json(topic, dict.fromkeys(range(PARTITIONS), EARLIEST)), offsets_json(topic, ending)
    delete_topic(stack["kafka"], topic)


@pytest.fixture(scope="module")
def lake_prefix(stack):
    prefix = f"{stack['bucket']}/tests/spark_cluster_{uuid.uuid4().hex[:12]}"
    yield prefix
    minio_filesystem().delete_dir_contents(prefix, missing_dir_ok=True)


def run_on_cluster(application: Path, args: list[str], log: Path) -> str:
    """spark-submit in client mode to the local cluster, with the jars and conf the DAG would use."""
    conf = job_conf(s3a_conf_from_env(), master=MASTER, driver_memory="1g", ui_enabled=False)
    assert "spark.jars" in conf and "spark.driver.extraClassPath" not in conf, "a cluster gets the jars via spark.jars"
    command = spark_submit_command(
        application, args, conf, master=MASTER, spark_submit=str(Path(os.environ["VENV"]) / "bin" / "spark-submit")
    )
    with log.open("w") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=900, cwd=PROJECT_ROOT)
    text = log.read_text()
    assert result.returncode == 0, f"spark-submit to {MASTER} failed ({log}):\n{text[-8000:]}"
    return text


def read_rows(prefix: str, columns: list[str]) -> list[tuple]:
    table = ds.dataset(prefix, filesystem=minio_filesystem(), format="parquet").to_table()
    return sorted(zip(*(table.column(name).to_pylist() for name in columns)))


def test_status_reports_spark_up_with_its_url(spark_cluster):
    assert_status_up("spark", MASTER)


def test_up_deletes_the_folders_of_earlier_applications(spark_cluster):
    """The worker's own clean-up runs only while it is up: without this, every start left its
    applications' folders (~280 MB of jars each) behind."""
    assert SPARK_WORK_DIR.is_dir()
    assert not LEFTOVER_APP_DIR.exists()


def test_master_and_worker_listen_on_loopback_only(spark_cluster):
    state = master_state()
    assert state["status"] == "ALIVE"
    (worker,) = state["workers"]
    assert worker["state"] == "ALIVE"
    assert worker["cores"] == int(os.environ["SPARK_WORKER_CORES"])
    assert worker["memory"] == int(re.fullmatch(r"(\d+)g", os.environ["SPARK_WORKER_MEMORY"]).group(1)) * 1024
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    ports = {
        int(os.environ.get("SPARK_MASTER_PORT", "7077")),
        int(os.environ["SPARK_MASTER_UI_PORT"]),
        int(os.environ["SPARK_WORKER_UI_PORT"]),
        int(worker["port"]),
    }
    addresses = {}
    for line in listening.splitlines():
        local = line.split()[3]
        address, _, port = local.rpartition(":")
        if int(port) in ports:
            addresses.setdefault(int(port), set()).add(address)
    assert set(addresses) == ports, f"not listening: {ports - set(addresses)}"
    for port, bound in addresses.items():
        assert bound <= {"127.0.0.1", "[::ffff:127.0.0.1]"}, f"port {port} listens on {bound}"


def test_bare_up_and_status_leave_the_cluster_out(spark_cluster, tmp_path):
    """Opt-in: without SPARK=cluster a bare `status` (and `up`) only covers the default services."""
    result = run_stack("status", env={"STACK_DIR": str(tmp_path / "stack")})
    assert result.returncode == 0, result.stdout + result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines()]
    assert "kafka" in listed and "spark" not in listed
    opted_in = run_stack("status", env={"STACK_DIR": str(tmp_path / "stack"), "SPARK": "cluster"})
    assert re.search(rf"^spark\s+up\s+{re.escape(MASTER)}$", opted_in.stdout, re.MULTILINE), opted_in.stdout


def test_job_on_the_cluster_equals_local(spark_cluster, events_range, lake_prefix, tmp_path):
    topic, starting, ending = events_range
    job = tmp_path / "cluster_job.py"
    job.write_text(JOB)
    outputs = {}
    for name in ("cluster", "local"):
        args = [
            os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            topic,
            starting,
            ending,
            f"s3a://{lake_prefix}/{name}/raw",
            f"s3a://{lake_prefix}/{name}/totals",
            str(tmp_path / f"{name}.json"),
        ]
        log = tmp_path / f"{name}.log"
        started = time.monotonic()
        if name == "cluster":
            run_on_cluster(job, args, log)
        else:
            run_spark_submit(job, args, log)
        print(f"job on {name}: {time.monotonic() - started:.1f}s")
        outputs[name] = (
            read_rows(f"{lake_prefix}/{name}/raw", ["key", "value", "partition", "offset"]),
            read_rows(f"{lake_prefix}/{name}/totals", ["user_id", "event_type", "events", "spent"]),
        )

    cluster_raw, cluster_totals = outputs["cluster"]
    assert len(cluster_raw) == 600
    assert sum(events for _, _, events, _ in cluster_totals) == 600
    assert {event_type for _, event_type, _, _ in cluster_totals} == {"VIEW", "CART", "PURCHASE"}
    assert outputs["cluster"] == outputs["local"]

    # It really ran on the cluster: on the worker's executor, which called the driver back on
    # loopback and fetched the connector jars from it.
    report = json.loads((tmp_path / "cluster.json").read_text())
    assert report["master"] == MASTER
    # SPARK_LOCAL_IP=127.0.0.1 (scripts/env.sh): the driver listens there and advertises its name
    driver_host = report["driver_host"]
    assert driver_host in ("127.0.0.1", "localhost")
    assert report["executors"] == 1
    assert set(report["hosts"]) <= {"127.0.0.1", "localhost"}
    finished = {app["id"]: app for app in master_state()["completedapps"]}
    assert finished[report["app_id"]]["state"] == "FINISHED"
    executor_dirs = list((Path(os.environ["STACK_DIR"]) / "data" / "spark" / "work" / report["app_id"]).iterdir())
    assert len(executor_dirs) == 1
    fetched = {path.name for path in executor_dirs[0].glob("*.jar")}
    assert fetched == {Path(jar).name for jar in local_jars()}
    executor_log = (executor_dirs[0] / "stderr").read_text()
    assert f"Connecting to driver: spark://CoarseGrainedScheduler@{driver_host}:" in executor_log
    assert f"Fetching spark://{driver_host}:" in executor_log


def test_up_fails_clearly_when_the_master_port_is_taken(tmp_path):
    assert_up_refuses_taken_port(
        tmp_path, "spark", "SPARK_MASTER_PORT", "SPARK_MASTER_UI_PORT", "spark://127.0.0.1:{port}"
    )
