"""The production Spark path: the DAG's operator submits the profile job to a standalone cluster.

The local stack's opt-in cluster (master + worker from the venv's pyspark, configured like
Compose's spark-master/spark-worker) runs the job in client mode: connector jars shipped to the
executor through spark.jars, executors calling the driver back, S3A and Elasticsearch
credentials reaching the executors from the 0600 properties file. The snapshot it writes must
equal the profiles `local[2]` computes from the same file with the same transforms.
"""

from __future__ import annotations

import io
import json
import subprocess

import pyarrow.parquet as pq
import pytest

from bench.generator import write_events_csv
from ecommerce_profiles.core.schemas import PROFILE_COLUMNS
from spark_jobs.profile_transforms import build_profiles, dedupe_events, read_events_csv
from tests.support.pipeline import PROJECT_ROOT, lake_json, lake_keys, make_pipeline, s3

SNAPSHOT = "2020-10-03"
INPUT = "cluster/events.csv"


@pytest.fixture(scope="module")
def cluster(stack):
    subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "stack.sh"), "up", "spark"], check=True, timeout=300)
    yield "spark://127.0.0.1"
    subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "stack.sh"), "down", "spark"], check=False, timeout=120)


@pytest.fixture(scope="module")
def cluster_run(cluster, tmp_path_factory):
    pipeline = make_pipeline(tmp_path_factory.mktemp("cluster"), prefix="cluster")
    source = pipeline.data_dir / INPUT
    source.parent.mkdir(parents=True)
    write_events_csv(source, 4_000, seed=21, start="2020-10-01", end=SNAPSHOT, n_users=400)
    pipeline.env["AIRFLOW_CONN_SPARK_DEFAULT"] = json.dumps(
        {"conn_type": "spark", "host": cluster, "port": 7077, "extra": {"deploy-mode": "client"}}
    )
    log = pipeline.dags_test(SNAPSHOT, conf={"input_path": INPUT})
    yield {"pipeline": pipeline, "source": source, "log": log}
    pipeline.remove()


def _snapshot_rows(bucket: str) -> list[dict]:
    client, rows = s3(), []
    for key in lake_keys(bucket, f"profiles/snapshot_date={SNAPSHOT}/"):
        if key.endswith(".parquet"):
            rows += pq.read_table(io.BytesIO(client.get_object(Bucket=bucket, Key=key)["Body"].read())).to_pylist()
    return rows


def test_the_job_ran_on_the_cluster_not_locally(cluster_run):
    # SparkSubmitHook logs the command (secrets masked): the master is the cluster's.
    assert "--master spark://127.0.0.1:7077" in cluster_run["log"]


def test_cluster_profiles_equal_local_profiles(cluster_run, spark):
    pipeline = cluster_run["pipeline"]
    summary = lake_json(
        pipeline.bucket, next(k for k in lake_keys(pipeline.bucket, "runs/") if k.endswith("spark_summary.json"))
    )
    local = build_profiles(dedupe_events(read_events_csv(spark, str(cluster_run["source"]))), SNAPSHOT)
    expected = {r["user_id"]: r for r in (row.asDict() for row in local.select(*PROFILE_COLUMNS).collect())}
    got = {r["user_id"]: r for r in _snapshot_rows(pipeline.bucket)}
    assert summary["profiles"] == len(got) == len(expected)
    assert set(got) == set(expected)
    for user_id, row in expected.items():
        other = got[user_id]
        for column in PROFILE_COLUMNS:
            want, have = row[column], other[column]
            if isinstance(want, float) and have is not None:
                assert have == pytest.approx(want, rel=1e-9), (user_id, column)
            elif hasattr(want, "tzinfo") and have is not None:
                assert have.replace(tzinfo=None) == want.replace(tzinfo=None), (user_id, column)
            else:
                assert have == want, (user_id, column)
