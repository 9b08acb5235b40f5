"""A private pipeline environment for end-to-end tests: own data dir, topic, bucket, alias and
Airflow metadata DB, so tests (and people) running at the same time do not disturb each other."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from bench import services
from ecommerce_profiles.connections import elasticsearch_settings_from_env, lake_admin_settings_from_env

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "ecommerce_customer_profiles"
COUNTERS = {"view": "views", "cart": "carts", "purchase": "purchases"}


@dataclass
class PipelineNames:
    """A test pipeline's root folder and environment: its own data dir, bucket, topic and alias."""

    root: Path
    env: dict[str, str]

    @property
    def data_dir(self) -> Path:
        return Path(self.env["PIPELINE_DATA_DIR"])

    @property
    def bucket(self) -> str:
        return self.env["MINIO_BUCKET"]

    @property
    def alias(self) -> str:
        return self.env["ELASTICSEARCH_INDEX"]


@dataclass
class Pipeline(PipelineNames):
    logs: list[str] = field(default_factory=list)

    def dags_test(self, logical_date: str, conf: dict | None = None, expect_success: bool = True) -> str:
        cmd = ["airflow", "dags", "test", DAG_ID, logical_date]
        if conf:
            cmd += ["-c", json.dumps(conf)]
        result = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=1500)
        log = result.stdout + result.stderr
        self.logs.append(log)
        succeeded = result.returncode == 0 and "Customer profiles as of" in log
        assert succeeded == expect_success, log[-8000:]
        return log

    def remove(self) -> None:
        """Delete the pipeline's bucket, topic and indices (a long-lived dev stack would otherwise
        keep every test run's, and Elasticsearch refuses new indices past 1,000 shards)."""
        remove_pipeline_resources(self.bucket, self.env["KAFKA_TOPIC"], self.alias)


def private_pipeline_env(root: Path, prefix: str, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus unique names under ``root`` (data dir, bucket, topic, alias, Airflow home),
    and that Airflow home's metadata DB migrated; no Kafka, MinIO or Elasticsearch is needed."""
    env = private_names_env(root, prefix, base)
    subprocess.run(
        ["bash", str(PROJECT_ROOT / "scripts" / "airflow_db.sh")], check=True, env=env, capture_output=True, timeout=600
    )
    return env


def private_names_env(root: Path, prefix: str, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus unique names under ``root`` (data dir, bucket, topic, alias, Airflow home);
    nothing is created but the data dir (an `airflow standalone` migrates its own DB)."""
    suffix = uuid.uuid4().hex[:8]
    data_dir = root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **base,
        "PIPELINE_DATA_DIR": str(data_dir),
        # A sibling of the pipeline's bucket: the pipeline's MinIO user may use MINIO_BUCKET-* only.
        "MINIO_BUCKET": f"{os.environ.get('MINIO_BUCKET', 'datalake')}-{prefix}-{suffix}",
        "KAFKA_TOPIC": f"{prefix}_events_{suffix}",
        "ELASTICSEARCH_INDEX": f"{prefix}_profiles_{suffix}",
        "AIRFLOW_HOME": str(root / "airflow"),
    }
    return env


def make_pipeline(root: Path, prefix: str = "e2e") -> Pipeline:
    """Unique names, a created bucket and a migrated private Airflow DB under ``root``."""
    env = private_pipeline_env(root, prefix, os.environ)
    services.create_bucket(env["MINIO_BUCKET"])  # the root account: the pipeline's user may not
    return Pipeline(root, env)


def remove_pipeline_resources(bucket: str, topic: str, alias: str) -> None:
    """Delete a test pipeline's bucket (with its objects), Kafka topic and dated indices."""
    services.delete_bucket(bucket)
    services.delete_topics([topic])
    services.delete_indices(f"{alias}-*")


def s3():
    return lake_admin_settings_from_env().boto3_client()


def elasticsearch():
    return elasticsearch_settings_from_env().client()


def lake_keys(bucket: str, prefix: str) -> list[str]:
    client = s3()
    return [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]


def lake_rows(bucket: str, prefix: str) -> list[dict]:
    """Every row of every Parquet file under ``prefix`` (Hive partition values from the key added)."""
    client, rows = s3(), []
    for key in lake_keys(bucket, prefix):
        # data files only: not a hidden staging folder's (``.spark-staging-*``, ``_temporary``)
        if not key.endswith(".parquet") or "/." in key or "/_" in key:
            continue
        partitions = dict(part.split("=", 1) for part in key.split("/") if "=" in part)
        table = pq.read_table(io.BytesIO(client.get_object(Bucket=bucket, Key=key)["Body"].read()))
        rows += [{**partitions, **row} for row in table.to_pylist()]
    return rows


def lake_json(bucket: str, key: str) -> dict:
    return json.loads(s3().get_object(Bucket=bucket, Key=key)["Body"].read())


def alias_docs(alias: str) -> dict[str, dict]:
    es = elasticsearch()
    es.indices.refresh(index=alias)
    hits = es.search(index=alias, size=10_000, query={"match_all": {}})["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def reference_mismatches(docs: Mapping[str, dict], csv_paths: list[Path], snapshot_date: str) -> list[tuple]:
    """Every difference between Elasticsearch profile documents (``alias_docs``) and the
    independent DuckDB reference (bench/duckdb_reference.py) over ``csv_paths``: users missing on
    either side, and (user, field, document, reference) for each field that differs. Dates and
    timestamps are compared as the job writes them (``YYYY-MM-DD``, ISO-8601 UTC with
    microseconds), doubles within a relative 1e-9, nulls as absent fields."""
    import math

    from bench.duckdb_reference import duckdb_profiles
    from ecommerce_profiles.core.schemas import PROFILE_FIELDS

    reference = {str(row["user_id"]): row for row in duckdb_profiles(csv_paths, snapshot_date).to_pylist()}
    problems: list[tuple] = [("missing in the index", user) for user in sorted(reference.keys() - docs.keys())]
    problems += [("not in the reference", user) for user in sorted(docs.keys() - reference.keys())]
    for user in sorted(reference.keys() & docs.keys()):
        for field_ in PROFILE_FIELDS:
            want, got = reference[user][field_.name], docs[user].get(field_.name)
            if want is None:
                same = got is None
            elif field_.name == "user_id":
                same = got == str(want)
            elif field_.type == "date":
                same = got == want.isoformat()
            elif field_.type == "timestamp":
                same = got == want.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            elif field_.type == "double":
                same = isinstance(got, (int, float)) and math.isclose(got, float(want), rel_tol=1e-9, abs_tol=0.0)
            else:
                same = got == want
            if not same:
                problems.append((user, field_.name, got, want))
    return problems


def distinct_valid_rows(csv_paths: list[Path]) -> set[tuple[str, ...]]:
    """The distinct event rows of the CSVs, read the plain way (header skipped, exact tuples)."""
    rows: set[tuple[str, ...]] = set()
    for path in csv_paths:
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            next(reader)
            rows.update(tuple(r) for r in reader if r)
    return rows


def expected_profiles(rows: set[tuple[str, ...]], snapshot_date: str) -> dict[str, dict]:
    """Per-user counts recomputed independently of the pipeline: views, carts, purchases,
    revenue, events and the last event date, over the distinct events up to the snapshot."""
    users: dict[str, dict] = defaultdict(
        lambda: {"views": 0, "carts": 0, "purchases": 0, "revenue": 0.0, "events": 0, "last": ""}
    )
    for row in rows:
        when = datetime.strptime(row[0], "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)
        if when.date().isoformat() > snapshot_date:
            continue
        user = users[str(int(row[7]))]
        user["events"] += 1
        if row[1] in COUNTERS:
            user[COUNTERS[row[1]]] += 1
        if row[1] == "purchase":
            user["revenue"] += float(row[6])
        user["last"] = max(user["last"], when.date().isoformat())
    return dict(users)
