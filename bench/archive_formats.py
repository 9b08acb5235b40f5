"""Archive format benchmark: plain Parquet with run-owned batches vs a Delta Lake table on MinIO.

    python -m bench.archive_formats --archive-days 150 --events-per-day 6000

Issue 11, item 1 asks to *measure* both candidates on this workload before choosing. On the same
generated events (``generator.write_events_csv``, read with ``read_events_csv`` +
``collapse_duplicates`` as the Spark job does), in one local[2] SparkSession with the project's
s3a conf (``spark_submit_conf.job_conf``) plus the Delta jars, into fresh MinIO buckets:

  A. Parquet, the project's way (``archive_transforms`` + the job's ``archive_state`` /
     ``delete_partitions``): raw/events/event_date=D/batch=B/, a run's events minus what other
     batches hold on the run's dates (EXCEPT DISTINCT), dynamic overwrite of (D, B), stale
     partitions of the batch deleted; S3A classic FileOutputCommitter v2.
  B. Delta Lake 3.3 table partitioned by event_date; batches by
     ``MERGE ... ON <all columns, null-safe> WHEN NOT MATCHED THEN INSERT *``.

Steps for each (interleaved A1 B1 A2 B2 ..., so a change of machine load hits both alike):
  1 initial load   the archive days as one batch
  2 daily          one day's events + late events of earlier days + re-delivered archived events
  3 rerun          the same daily batch again
  4 read           the profile input: the whole archive, count + countDistinct

Per step: wall seconds, the 1/5/15-min load average before and after (other people's work on the
2-core machine inflates every wall time), the objects under the prefix before/after (boto3
listing), the S3A request counters of the bucket's Hadoop FileSystem, and a correctness check:
rows = distinct events delivered so far, no duplicate row, no delivered event missing.

Then (unless --skip-crash) crash tests: a child Spark process runs the next daily batch and is
SIGKILLed (Parquet: once while tasks write, once during the job commit's renames; Delta: while
the MERGE writes data files), the leftovers are listed, what plain readers see is counted, the
batch is rerun, and the final state is compared with a clean run's. Last, the archives are read
with plain pyarrow, DuckDB (local copy: no httpfs extension offline) and, for Delta, delta-rs.

Writes bench/results/archive_formats.json; docs/archive-format.md explains the numbers.
Everything it creates is under data/bench/archive_formats/ and in buckets named
bench-archive-<stamp>-*, deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BENCH_JARS_DIR = PROJECT_ROOT / ".cache" / "bench-jars"
BENCH_PY_DIR = BENCH_JARS_DIR / "python"  # delta-rs (deltalake) for the plain-Python Delta read
RESULTS_PATH = PROJECT_ROOT / "bench" / "results" / "archive_formats.json"
DATA_ROOT = PROJECT_ROOT / "data" / "bench" / "archive_formats"

DELTA_VERSION = "3.3.2"  # the Delta release line for Spark 3.5 (Scala 2.12)
DELTA_ARTIFACTS = (f"io.delta:delta-spark_2.12:{DELTA_VERSION}", f"io.delta:delta-storage:{DELTA_VERSION}")
DELTALAKE_PY_VERSION = "1.6.6"
MASTER = "local[2]"
FIRST_DAY = date(2020, 9, 24)  # the real dataset's first date
ARCHIVE_PREFIX = "raw/events"  # lake.archive_key(), in both buckets
DELTA_PREFIX = "raw/events_delta"

_started = time.perf_counter()


def say(message: str) -> None:
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"[archive_formats {stamp} +{time.perf_counter() - _started:6.1f}s] {message}", flush=True)


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ------------------------------------------------------------------------------------------
# Dependencies kept in .cache/bench-jars (git-ignored): the Delta jars from Maven Central and,
# optionally, the delta-rs Python reader from PyPI (installed with --target, not into the venv).
# ------------------------------------------------------------------------------------------
def delta_jars() -> list[str]:
    BENCH_JARS_DIR.mkdir(parents=True, exist_ok=True)
    wanted = [BENCH_JARS_DIR / f"{a.split(':')[1]}-{a.split(':')[2]}.jar" for a in DELTA_ARTIFACTS]
    missing = [a for a, path in zip(DELTA_ARTIFACTS, wanted) if not path.is_file()]
    if missing:
        repo = Path(os.environ.get("CACHE_DIR", PROJECT_ROOT / ".cache")) / "m2"
        for artifact in missing:
            say(f"resolving {artifact} from Maven Central")
            subprocess.run(
                [
                    "mvn",
                    "-B",
                    "-q",
                    f"-Dmaven.repo.local={repo}",
                    "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy",
                    f"-Dartifact={artifact}",
                    f"-DoutputDirectory={BENCH_JARS_DIR}",
                ],
                check=True,
            )
    return [str(p) for p in wanted]


def ensure_deltalake() -> bool:
    """delta-rs's Python package in BENCH_PY_DIR (installed there on first use, never in the venv)."""
    if not (BENCH_PY_DIR / "deltalake").is_dir():
        say(f"installing deltalake=={DELTALAKE_PY_VERSION} into {BENCH_PY_DIR} (not the venv)")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--target",
                str(BENCH_PY_DIR),
                f"deltalake=={DELTALAKE_PY_VERSION}",
            ],
            check=False,
        )
        return done.returncode == 0
    return True


# Runs in a child interpreter with BENCH_PY_DIR on its PYTHONPATH, so the benchmark's own process
# never edits sys.path and the venv stays as requirements.txt locks it.
_DELTALAKE_READ = r"""
import json, os, sys, time
import deltalake, duckdb
uri, options = sys.argv[1], json.loads(os.environ["DELTA_STORAGE_OPTIONS"])
started = time.perf_counter()
table = deltalake.DeltaTable(uri, storage_options=options)
dataset = table.to_pyarrow_dataset()
rows = dataset.count_rows()
duck = duckdb.connect()
duck_rows = duck.execute("SELECT count(*) FROM dataset").fetchone()[0]
print(json.dumps({"deltalake_version": deltalake.__version__, "table_version": table.version(), "rows": rows,
                  "duckdb_over_deltalake_rows": int(duck_rows), "files": len(table.file_uris()),
                  "seconds": round(time.perf_counter() - started, 3)}))
"""


# ------------------------------------------------------------------------------------------
# Data: one generated CSV split into the batches a month of daily drops would deliver
# ------------------------------------------------------------------------------------------
def prepare_data(args: argparse.Namespace) -> dict[str, Any]:
    """archive.csv (days 1..N minus the events held back as late), daily.csv (day N+1 + late +
    re-delivered), crash.csv (day N+2, same mix; the batch the crash tests write)."""
    import numpy as np
    import pandas as pd

    from bench.generator import write_events_csv

    n_days = args.archive_days + 2
    out = DATA_ROOT / f"d{args.archive_days}_e{args.events_per_day}_s{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    all_csv = out / "all.csv"
    last = FIRST_DAY + timedelta(days=n_days - 1)
    if not all_csv.is_file():
        say(f"generating {n_days * args.events_per_day:,} events over {n_days} days into {all_csv}")
        write_events_csv(
            all_csv, n_days * args.events_per_day, seed=args.seed, start=FIRST_DAY.isoformat(), end=last.isoformat()
        )
    frame = pd.read_csv(all_csv, dtype=str, keep_default_na=False)
    day = frame["event_time"].str[:10]
    archive_end = (FIRST_DAY + timedelta(days=args.archive_days - 1)).isoformat()
    daily_day = (FIRST_DAY + timedelta(days=args.archive_days)).isoformat()
    crash_day = (FIRST_DAY + timedelta(days=args.archive_days + 1)).isoformat()
    rng = np.random.default_rng(args.seed + 1)
    old = np.flatnonzero((day <= archive_end).to_numpy())
    daily_rows = np.flatnonzero((day == daily_day).to_numpy())
    crash_rows = np.flatnonzero((day == crash_day).to_numpy())
    n_late_daily = round(args.late_share * len(daily_rows))
    n_late_crash = round(args.late_share * len(crash_rows))
    late_daily = rng.choice(old, n_late_daily, replace=False)
    rest = np.setdiff1d(old, late_daily)
    late_crash = rng.choice(rest, n_late_crash, replace=False)
    archive_rows = np.setdiff1d(rest, late_crash)
    redelivered_daily = rng.choice(archive_rows, round(args.redelivered_share * len(daily_rows)), replace=False)
    delivered = np.concatenate([archive_rows, daily_rows, late_daily])
    redelivered_crash = rng.choice(delivered, round(args.redelivered_share * len(crash_rows)), replace=False)

    batches = {
        "archive": archive_rows,
        "daily": np.concatenate([daily_rows, late_daily, redelivered_daily]),
        "crash": np.concatenate([crash_rows, late_crash, redelivered_crash]),
    }
    paths = {}
    for name, rows in batches.items():
        path = out / f"{name}.csv"
        frame.iloc[np.sort(rows)].to_csv(path, index=False)
        paths[name] = str(path)

    def distinct(*names: str) -> int:
        return int(len(frame.iloc[np.concatenate([batches[n] for n in names])].drop_duplicates()))

    return {
        "dir": str(out),
        "csv": paths,
        "days": {"first": FIRST_DAY.isoformat(), "archive_last": archive_end, "daily": daily_day, "crash": crash_day},
        "rows": {name: int(len(rows)) for name, rows in batches.items()},
        "daily_mix": {
            "day_events": int(len(daily_rows)),
            "late": int(n_late_daily),
            "redelivered": int(len(redelivered_daily)),
        },
        "crash_mix": {
            "day_events": int(len(crash_rows)),
            "late": int(n_late_crash),
            "redelivered": int(len(redelivered_crash)),
        },
        # Independent of Spark: distinct CSV rows (as text) delivered so far.
        "expected_distinct": {
            "after_load": distinct("archive"),
            "after_daily": distinct("archive", "daily"),
            "after_crash_batch": distinct("archive", "daily", "crash"),
        },
    }


# ------------------------------------------------------------------------------------------
# MinIO: buckets, listings, what plain readers see
# ------------------------------------------------------------------------------------------
def s3_client():
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=os.environ["MINIO_ENDPOINT"],
        aws_access_key_id=os.environ["MINIO_ROOT_USER"],
        aws_secret_access_key=os.environ["MINIO_ROOT_PASSWORD"],
        region_name="us-east-1",
    )


def list_objects(s3, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    """key -> (size, etag) of every object under the prefix (directory markers included)."""
    found: dict[str, tuple[int, str]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for item in page.get("Contents", []):
            found[item["Key"]] = (item["Size"], item["ETag"])
    return found


def is_hidden(key: str) -> bool:
    """Under a '.'- or '_'-prefixed folder (Spark's staging, _temporary) or a hidden file; not the
    Delta log (counted apart)."""
    parts = key.split("/")
    return "_delta_log" not in parts and any(p.startswith((".", "_")) for p in parts[2:])


def describe_listing(listing: dict[str, tuple[int, str]]) -> dict[str, int]:
    keys = list(listing)
    data = [k for k in keys if k.endswith(".parquet") and not is_hidden(k) and "/_delta_log/" not in k]
    return {
        "objects": len(keys),
        "bytes": sum(size for size, _ in listing.values()),
        "data_files": len(data),
        "data_bytes": sum(listing[k][0] for k in data),
        "delta_log_objects": sum(1 for k in keys if "/_delta_log/" in k),
        "hidden_objects": sum(1 for k in keys if is_hidden(k)),
        "directory_markers": sum(1 for k in keys if k.endswith("/")),
    }


def listing_diff(before: dict, after: dict) -> dict[str, int]:
    added = [k for k in after if before.get(k) != after[k]]  # new keys and rewritten ones
    removed = [k for k in before if k not in after or before[k] != after[k]]
    return {
        "objects_written": len(added),
        "bytes_written": sum(after[k][0] for k in added),
        "data_files_written": sum(
            1 for k in added if k.endswith(".parquet") and not is_hidden(k) and "/_delta_log/" not in k
        ),
        "delta_log_objects_written": sum(1 for k in added if "/_delta_log/" in k),
        "objects_removed": len(removed),
    }


def plain_pyarrow_count(bucket: str, prefix: str) -> dict[str, Any]:
    """What pyarrow.dataset sees reading the folder as hive-partitioned Parquet, with its default
    ignore_prefixes ('.', '_'): no table-format log, just the files."""
    import pyarrow.dataset as ds
    from pyarrow import fs

    endpoint = os.environ["MINIO_ENDPOINT"]
    scheme, host = endpoint.split("://", 1)
    s3 = fs.S3FileSystem(
        access_key=os.environ["MINIO_ROOT_USER"],
        secret_key=os.environ["MINIO_ROOT_PASSWORD"],
        endpoint_override=host,
        scheme=scheme,
        region="us-east-1",
    )
    started = time.perf_counter()
    dataset = ds.dataset(f"{bucket}/{prefix}", filesystem=s3, format="parquet", partitioning="hive")
    rows = dataset.count_rows()
    return {"rows": rows, "files": len(dataset.files), "seconds": round(time.perf_counter() - started, 3)}


def duckdb_local_counts(s3, bucket: str, prefix: str, levels: int) -> dict[str, Any]:
    """DuckDB has no httpfs extension offline (INSTALL needs a download), so the folder is copied
    to a temp dir and read with read_parquet: once with the plain partition glob, once with '**'
    (which also descends into hidden staging folders, if any are left)."""
    import duckdb

    tmp = Path(tempfile.mkdtemp(prefix="archive-formats-duckdb-"))
    try:
        for key, (size, _) in list_objects(s3, bucket, prefix).items():
            if key.endswith("/") or size == 0:
                continue
            target = tmp / key
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(target))
        root = tmp / prefix
        result: dict[str, Any] = {}
        con = duckdb.connect()
        for name, pattern in (
            ("partition_glob", "/".join(["*"] * levels) + "/*.parquet"),
            ("recursive_glob", "**/*.parquet"),
        ):
            try:
                rows = con.execute(
                    f"SELECT count(*) FROM read_parquet('{root}/{pattern}', hive_partitioning = true)"
                ).fetchone()[0]
                result[name] = {"pattern": pattern, "rows": int(rows)}
            except Exception as error:  # noqa: BLE001 - recorded, not fatal
                result[name] = {"pattern": pattern, "error": str(error)[:300]}
        try:
            con.execute("INSTALL delta")
            result["delta_extension"] = "installed"
        except Exception as error:  # noqa: BLE001
            result["delta_extension"] = f"unavailable: {str(error).splitlines()[0][:200]}"
        con.close()
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def deltalake_count(bucket: str, prefix: str) -> dict[str, Any]:
    """The Delta table through delta-rs (reads the _delta_log): pyarrow dataset, then DuckDB on it."""
    if not ensure_deltalake():
        return {"error": "deltalake not installable here"}
    options = {
        "AWS_ENDPOINT_URL": os.environ["MINIO_ENDPOINT"],
        "AWS_ACCESS_KEY_ID": os.environ["MINIO_ROOT_USER"],
        "AWS_SECRET_ACCESS_KEY": os.environ["MINIO_ROOT_PASSWORD"],
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    }
    env = {
        **os.environ,
        "DELTA_STORAGE_OPTIONS": json.dumps(options),
        "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(BENCH_PY_DIR)])),
    }
    child = subprocess.run(
        [sys.executable, "-c", _DELTALAKE_READ, f"s3://{bucket}/{prefix}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if child.returncode != 0:
        return {
            "error": child.stderr.strip().splitlines()[-1][:300] if child.stderr.strip() else "delta-rs read failed"
        }
    return json.loads(child.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------
# Spark
# ------------------------------------------------------------------------------------------
def spark_session(app: str):
    from pyspark.sql import SparkSession

    from ecommerce_profiles import spark_submit_conf as spark_conf
    from spark_jobs.customer_profiles import quiet_spark_logs

    conf = spark_conf.job_conf(spark_conf.s3a_conf_from_env(), master=MASTER, driver_memory="3g", ui_enabled=False)
    conf["spark.driver.extraClassPath"] += os.pathsep + os.pathsep.join(delta_jars())
    conf.update(
        {
            "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
            "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
            # Only for the VACUUM RETAIN 0 HOURS of the crash test (default retention: 7 days).
            "spark.databricks.delta.retentionDurationCheck.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
        }
    )
    builder = SparkSession.builder.master(MASTER).appName(app)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    quiet_spark_logs(spark)
    return spark


def load_batch(spark, csv_path: str, cache: bool = True):
    """A run's distinct events, clustered by event_date, as the job prepares them from Kafka
    (cached and materialised unless ``cache=False``)."""
    from pyspark import StorageLevel

    from spark_jobs.archive_transforms import ARCHIVE_COLUMNS
    from spark_jobs.profile_transforms import collapse_duplicates, read_events_csv

    events = collapse_duplicates(read_events_csv(spark, csv_path)).select(*ARCHIVE_COLUMNS)
    if not cache:
        return events
    events = events.persist(StorageLevel.MEMORY_AND_DISK)
    events.count()
    return events


def s3a_counters(spark, uri: str) -> dict[str, int]:
    """S3A request counters of the bucket's FileSystem instance (its IOStatistics).

    Not ``getStorageStatistics()``: Hadoop 3.3 registers that object globally under one name, so
    every S3A instance after the first reports the first instance's counters.
    """
    jvm = spark.sparkContext._jvm
    fs = jvm.org.apache.hadoop.fs.Path(uri).getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    counters = fs.getIOStatistics().counters()
    return {str(key): int(counters.get(key)) for key in counters.keySet()}


def counter_diff(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in sorted(after.items()) if v - before.get(k, 0)}


# --- A: the project's Parquet batches -------------------------------------------------------
def parquet_ingest(spark, archive_uri: str, events, batch_id: str) -> dict[str, Any]:
    """The archive stage of customer_profiles.run(), on an already prepared batch."""
    from pyspark import StorageLevel

    from ecommerce_profiles.core.lake import BATCH_PARTITION, EVENT_DATE_PARTITION
    from spark_jobs.archive_transforms import archived_by_other_batches, not_yet_archived, with_batch
    from spark_jobs.customer_profiles import archive_state, delete_partitions

    run_dates = sorted(r[0].isoformat() for r in events.select(EVENT_DATE_PARTITION).distinct().collect())
    archive, partitions = archive_state(spark, archive_uri)
    other_dates = {d for d, b in partitions if b != batch_id and d in set(run_dates)}
    elsewhere = archived_by_other_batches(archive, batch_id, other_dates) if other_dates else None
    new_events = not_yet_archived(events, elsewhere).persist(StorageLevel.MEMORY_AND_DISK)
    new_per_date = {r[0].isoformat(): r[1] for r in new_events.groupBy(EVENT_DATE_PARTITION).count().collect()}
    (
        with_batch(new_events, batch_id)
        .write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .partitionBy(EVENT_DATE_PARTITION, BATCH_PARTITION)
        .parquet(archive_uri)
    )
    stale = sorted((d, b) for d, b in partitions if b == batch_id and d not in new_per_date)
    delete_partitions(spark, archive_uri, stale)
    new_events.unpersist()
    return {
        "batch": batch_id,
        "run_dates": len(run_dates),
        "events_archived": sum(new_per_date.values()),
        "partitions_written": len(new_per_date),
        "stale_partitions_deleted": len(stale),
    }


def parquet_table(spark, archive_uri: str):
    from spark_jobs.archive_transforms import BATCHED_ARCHIVE_SCHEMA

    return spark.read.schema(BATCHED_ARCHIVE_SCHEMA).option("basePath", archive_uri).parquet(archive_uri)


# --- B: Delta Lake --------------------------------------------------------------------------
def delta_initial_load(spark, table_uri: str, events) -> dict[str, Any]:
    events.write.format("delta").partitionBy("event_date").mode("append").save(table_uri)
    return {"operation": "append (creates the table)"}


def merge_sql(table_uri: str, source_view: str, columns: list[str]) -> str:
    condition = " AND ".join(f"t.`{c}` <=> s.`{c}`" for c in columns)
    return f"MERGE INTO delta.`{table_uri}` AS t USING {source_view} AS s ON {condition} WHEN NOT MATCHED THEN INSERT *"


def delta_merge(spark, table_uri: str, events, view: str) -> dict[str, Any]:
    from spark_jobs.archive_transforms import ARCHIVE_COLUMNS

    events.createOrReplaceTempView(view)
    row = spark.sql(merge_sql(table_uri, view, ARCHIVE_COLUMNS)).first()
    return {"operation": "MERGE insert-if-absent", **(row.asDict() if row else {})}


def delta_table(spark, table_uri: str):
    return spark.read.format("delta").load(table_uri)


def delta_history(spark, table_uri: str) -> list[dict[str, Any]]:
    rows = (
        spark.sql(f"DESCRIBE HISTORY delta.`{table_uri}`").select("version", "operation", "operationMetrics").collect()
    )
    return [
        {"version": r["version"], "operation": r["operation"], "metrics": dict(r["operationMetrics"] or {})}
        for r in sorted(rows, key=lambda r: r["version"])
    ]


# --- the read and the checks ----------------------------------------------------------------
def profile_input_read(table) -> dict[str, int]:
    """The profile job's input: every archived event, count + distinct counts of event columns."""
    from pyspark.sql import functions as F

    from spark_jobs.archive_transforms import ARCHIVE_COLUMNS

    row = (
        table.select(*ARCHIVE_COLUMNS)
        .agg(
            F.count(F.lit(1)).alias("rows"),
            # A struct is never null, so rows with empty brand/category/session count too.
            F.countDistinct(F.struct(*ARCHIVE_COLUMNS)).alias("distinct_events"),
            F.countDistinct("event_date").alias("dates"),
            F.countDistinct("user_id").alias("users"),
        )
        .first()
    )
    return row.asDict()


def fingerprint(df) -> dict[str, Any]:
    """rows, distinct rows and an order-independent fingerprint (sum of a 64-bit row hash over
    the distinct rows) of the event columns: equal fingerprints + equal distinct counts mean the
    same set of events, without an anti-join of the whole archive."""
    from pyspark.sql import functions as F

    from spark_jobs.archive_transforms import ARCHIVE_COLUMNS

    distinct = df.select(*ARCHIVE_COLUMNS).groupBy(*ARCHIVE_COLUMNS).agg(F.count(F.lit(1)).alias("copies"))
    row = distinct.agg(
        F.sum("copies").alias("rows"),
        F.count(F.lit(1)).alias("distinct_events"),
        F.sum(F.xxhash64(*ARCHIVE_COLUMNS).cast("decimal(38,0)")).alias("fingerprint"),
    ).first()
    return {
        "rows": int(row["rows"] or 0),
        "distinct_events": int(row["distinct_events"]),
        "fingerprint": str(row["fingerprint"]),
    }


def check_table(table, delivered: dict[str, Any]) -> dict[str, Any]:
    """rows = distinct delivered events, no duplicate row, the same set of events as delivered
    (``delivered`` is ``fingerprint()`` of the distinct delivered events)."""
    got = fingerprint(table)
    ok = (
        got["rows"] == delivered["distinct_events"]
        and got["distinct_events"] == got["rows"]
        and got["fingerprint"] == delivered["fingerprint"]
    )
    return {
        **got,
        "expected_rows": delivered["distinct_events"],
        "duplicates": got["rows"] - got["distinct_events"],
        "same_events_as_delivered": got["fingerprint"] == delivered["fingerprint"],
        "ok": ok,
    }


# ------------------------------------------------------------------------------------------
# Measuring one step
# ------------------------------------------------------------------------------------------
class Bench:
    def __init__(self, spark, s3) -> None:
        self.spark = spark
        self.s3 = s3
        self.steps: list[dict[str, Any]] = []

    def step(
        self,
        fmt: str,
        name: str,
        bucket: str,
        prefix: str,
        action: Callable[[], dict],
        check: Callable[[], dict] | None = None,
    ) -> dict[str, Any]:
        uri = f"s3a://{bucket}/{prefix}"
        say(f"{fmt}: {name} ... (load {load_avg()})")
        before = list_objects(self.s3, bucket, prefix)
        counters_before = s3a_counters(self.spark, uri)
        load_before = load_avg()
        started = time.perf_counter()
        detail = action()
        wall = time.perf_counter() - started
        load_after = load_avg()
        counters = counter_diff(counters_before, s3a_counters(self.spark, uri))
        after = list_objects(self.s3, bucket, prefix)
        record = {
            "format": fmt,
            "step": name,
            "wall_s": round(wall, 2),
            "load_before": load_before,
            "load_after": load_after,
            "detail": detail,
            "objects": listing_diff(before, after),
            "prefix_after": describe_listing(after),
            "s3a_requests": counters,
        }
        if check is not None:
            check_started = time.perf_counter()
            record["check"] = check()
            record["check"]["seconds"] = round(time.perf_counter() - check_started, 2)
        self.steps.append(record)
        say(
            f"{fmt}: {name} {wall:.1f}s, {record['objects']['objects_written']} objects written, "
            f"check={record.get('check', {}).get('ok', '-')}"
        )
        return record


# ------------------------------------------------------------------------------------------
# Crash tests: a child process runs a batch and is SIGKILLed mid-write
# ------------------------------------------------------------------------------------------
def child_main(spec: dict[str, Any]) -> int:
    """Runs in the child process: one batch, nothing else (the parent kills it)."""
    spark = spark_session(f"archive_formats_child_{spec['format']}")
    events = load_batch(spark, spec["csv"], cache=False)
    print("CHILD_READY", flush=True)
    if spec["format"] == "parquet":
        parquet_ingest(spark, spec["uri"], events, spec["batch_id"])
    else:
        delta_merge(spark, spec["uri"], events, "crash_batch")
    print("CHILD_DONE", flush=True)
    spark.stop()
    return 0


def run_and_kill(
    spec: dict[str, Any],
    s3,
    bucket: str,
    prefix: str,
    should_kill: Callable[[dict, dict], bool],
    log_path: Path,
    timeout_s: float = 420,
) -> dict[str, Any]:
    """Start the child, poll the prefix, SIGKILL the child's process group when should_kill(before,
    now) says so. Returns what happened (killed or not, and when)."""
    before = list_objects(s3, bucket, prefix)
    with open(log_path, "w", encoding="utf-8") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.archive_formats", "--child", json.dumps(spec)],
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started = time.perf_counter()
        killed_after = None
        polls = 0
        try:
            while time.perf_counter() - started < timeout_s:
                if child.poll() is not None:
                    break
                now = list_objects(s3, bucket, prefix)
                polls += 1
                if should_kill(before, now):
                    os.killpg(child.pid, signal.SIGKILL)  # the child python and its spark-submit JVM
                    killed_after = time.perf_counter() - started
                    break
                time.sleep(0.15)
            else:
                os.killpg(child.pid, signal.SIGKILL)
        finally:
            child.wait()
    time.sleep(1)  # let MinIO settle any in-flight request of the dead JVM
    return {
        "killed": killed_after is not None,
        "killed_after_s": round(killed_after, 2) if killed_after else None,
        "child_exit": child.returncode,
        "polls": polls,
        "log": str(log_path),
    }


def new_parquet_files(before: dict, now: dict) -> list[str]:
    return [k for k in now if k not in before and k.endswith(".parquet")]


def crash_tests(bench: Bench, spark, s3, ctx: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    pq_bucket, delta_bucket = ctx["pq_bucket"], ctx["delta_bucket"]
    pq_uri, delta_uri = ctx["pq_uri"], ctx["delta_uri"]
    crash_batch = ctx["crash_batch_id"]
    log_dir = ctx["log_dir"]
    expected_before, expected_after = ctx["expected"]["after_daily"], ctx["expected"]["after_crash_batch"]

    # What a clean run of the crash batch writes: its events minus all archived before it.
    crash_events = ctx["crash_events"]
    clean_per_date = {
        r[0].isoformat(): r[1]
        for r in crash_events.subtract(ctx["delivered_daily"]).groupBy("event_date").count().collect()
    }

    def partition_counts(uri: str) -> dict[str, int]:
        rows = parquet_table(spark, uri).groupBy("event_date", "batch").count().collect()
        return {f"{r[0].isoformat()}/{r[1]}": r[2] for r in rows}

    def readers_view(bucket: str, prefix: str, table) -> dict[str, Any]:
        return {"spark_rows": table.count(), "pyarrow_plain": plain_pyarrow_count(bucket, prefix)}

    # ---- Parquet ----------------------------------------------------------------------------
    other_partitions_before = {k: v for k, v in partition_counts(pq_uri).items() if not k.endswith(crash_batch)}
    spec = {"format": "parquet", "uri": pq_uri, "csv": ctx["csv"]["crash"], "batch_id": crash_batch}
    phases = {
        # a task has closed an output file in the job's hidden staging folder
        "tasks": lambda before, now: any("/.spark-staging-" in k for k in new_parquet_files(before, now)),
        # job commit: the first staged partition has been renamed into the batch's final folder
        "commit": lambda before, now: any(
            f"/batch={crash_batch}/" in k and "/.spark-staging-" not in k for k in new_parquet_files(before, now)
        ),
    }
    for phase, condition in phases.items():
        say(f"crash test: parquet, SIGKILL during {phase} (load {load_avg()})")
        before = list_objects(s3, pq_bucket, ARCHIVE_PREFIX)
        run = run_and_kill(spec, s3, pq_bucket, ARCHIVE_PREFIX, condition, log_dir / f"crash_parquet_{phase}.log")
        after = list_objects(s3, pq_bucket, ARCHIVE_PREFIX)
        left = [k for k in after if k not in before]
        final_batch_files = [
            k for k in left if f"/batch={crash_batch}/" in k and not is_hidden(k) and k.endswith(".parquet")
        ]
        visible = readers_view(pq_bucket, ARCHIVE_PREFIX, parquet_table(spark, pq_uri))
        results[f"parquet_kill_during_{phase}"] = {
            **run,
            "load": load_avg(),
            "objects_left": len(left),
            "hidden_staging_objects_left": sum(1 for k in left if is_hidden(k)),
            "staging_folders_left": sorted({k.split("/")[2] for k in left if is_hidden(k)}),
            "final_batch_partitions_present": len({k.rsplit("/", 1)[0] for k in final_batch_files}),
            "final_batch_partitions_clean_run": len(clean_per_date),
            "rows_visible": visible,
            "rows_before_batch": expected_before,
            "rows_after_clean_batch": expected_after,
        }
        say(
            f"  killed={run['killed']} after {run['killed_after_s']}s: {len(left)} objects left, "
            f"spark sees {visible['spark_rows']} rows (before {expected_before}, clean after {expected_after})"
        )

    # the retry: the same batch again, in the parent session
    rerun = bench.step(
        "parquet",
        "crash batch rerun after kills",
        pq_bucket,
        ARCHIVE_PREFIX,
        lambda: parquet_ingest(spark, pq_uri, crash_events, crash_batch),
        lambda: check_table(parquet_table(spark, pq_uri), ctx["delivered_crash"]),
    )
    counts = partition_counts(pq_uri)
    batch_counts = {k.split("/")[0]: v for k, v in counts.items() if k.endswith(f"/{crash_batch}")}
    others_after = {k: v for k, v in counts.items() if not k.endswith(crash_batch)}
    after = list_objects(s3, pq_bucket, ARCHIVE_PREFIX)
    results["parquet_after_rerun"] = {
        "check": rerun["check"],
        "batch_partitions_equal_clean_run": batch_counts == clean_per_date,
        "other_batches_unchanged": others_after == other_partitions_before,
        "hidden_staging_objects_still_left": sum(1 for k in after if is_hidden(k)),
        "staging_folders_still_left": sorted({k.split("/")[2] for k in after if is_hidden(k)}),
        "pyarrow_plain": plain_pyarrow_count(pq_bucket, ARCHIVE_PREFIX),
        "duckdb_local_copy": duckdb_local_counts(s3, pq_bucket, ARCHIVE_PREFIX, levels=2),
    }

    # ---- Delta ------------------------------------------------------------------------------
    say(f"crash test: delta, SIGKILL while the MERGE writes data files (load {load_avg()})")
    version_before = delta_history(spark, delta_uri)[-1]["version"]
    before = list_objects(s3, delta_bucket, DELTA_PREFIX)
    spec = {"format": "delta", "uri": delta_uri, "csv": ctx["csv"]["crash"]}
    run = run_and_kill(
        spec,
        s3,
        delta_bucket,
        DELTA_PREFIX,
        lambda b, now: any("/_delta_log/" not in k for k in new_parquet_files(b, now)),
        log_dir / "crash_delta.log",
    )
    after = list_objects(s3, delta_bucket, DELTA_PREFIX)
    left = [k for k in after if k not in before]
    version_after_kill = delta_history(spark, delta_uri)[-1]["version"]
    visible = readers_view(delta_bucket, DELTA_PREFIX, delta_table(spark, delta_uri))
    results["delta_kill_during_merge"] = {
        **run,
        "load": load_avg(),
        "objects_left": len(left),
        "orphan_data_files": sum(1 for k in left if k.endswith(".parquet") and "/_delta_log/" not in k),
        "delta_log_objects_left": sum(1 for k in left if "/_delta_log/" in k),
        "table_version_before": version_before,
        "table_version_after_kill": version_after_kill,
        "rows_visible": visible,
        "deltalake": deltalake_count(delta_bucket, DELTA_PREFIX),
        "rows_before_batch": expected_before,
        "rows_after_clean_batch": expected_after,
    }
    say(
        f"  killed={run['killed']} after {run['killed_after_s']}s: {len(left)} objects left, version "
        f"{version_before}->{version_after_kill}, spark sees {visible['spark_rows']}, plain pyarrow "
        f"{visible['pyarrow_plain']['rows']}"
    )
    rerun = bench.step(
        "delta",
        "crash batch rerun after kill",
        delta_bucket,
        DELTA_PREFIX,
        lambda: delta_merge(spark, delta_uri, crash_events, "crash_batch"),
        lambda: check_table(delta_table(spark, delta_uri), ctx["delivered_crash"]),
    )
    results["delta_after_rerun"] = {
        "check": rerun["check"],
        "pyarrow_plain": plain_pyarrow_count(delta_bucket, DELTA_PREFIX),
        "deltalake": deltalake_count(delta_bucket, DELTA_PREFIX),
        "duckdb_local_copy": duckdb_local_counts(s3, delta_bucket, DELTA_PREFIX, levels=1),
    }
    started = time.perf_counter()
    # VACUUM lists the table with spark.sql.sources.parallelPartitionDiscovery.parallelism tasks
    # (default 10,000: minutes of empty tasks on 2 cores).
    spark.conf.set("spark.sql.sources.parallelPartitionDiscovery.parallelism", "4")
    spark.sql(f"VACUUM delta.`{delta_uri}` RETAIN 0 HOURS").collect()
    spark.conf.unset("spark.sql.sources.parallelPartitionDiscovery.parallelism")
    results["delta_after_vacuum_retain_0_hours"] = {
        "seconds": round(time.perf_counter() - started, 2),
        "pyarrow_plain": plain_pyarrow_count(delta_bucket, DELTA_PREFIX),
        "spark_rows": delta_table(spark, delta_uri).count(),
    }
    return results


# ------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    model = platform.processor()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {"cores": os.cpu_count(), "memory_gib": mem_gib, "cpu": model, "python": platform.python_version()}


def summary_table(steps: list[dict[str, Any]]) -> str:
    lines = [
        "| step | format | wall s | load 1m before→after | objects written | data files written | "
        "data files in prefix | S3A PUT / COPY / DELETE / LIST / HEAD requests | rows = expected |",
        "|---|---|---:|---|---:|---:|---:|---|---|",
    ]
    for s in steps:
        req = s["s3a_requests"]
        puts = req.get("object_put_request", 0)
        copies = req.get("object_copy_requests", 0)
        deletes = req.get("object_delete_request", 0) + req.get("object_bulk_delete_request", 0)
        lists = req.get("object_list_request", 0) + req.get("object_continue_list_request", 0)
        heads = req.get("object_metadata_request", 0)
        check = s.get("check")
        verdict = "-" if not check else ("yes" if check["ok"] else "NO") + f" ({check['rows']:,})"
        lines.append(
            f"| {s['step']} | {s['format']} | {s['wall_s']:.1f} | {s['load_before'][0]}→{s['load_after'][0]} | "
            f"{s['objects']['objects_written']} | {s['objects']['data_files_written']} | "
            f"{s['prefix_after']['data_files']} | {puts} / {copies} / {deletes} / {lists} / {heads} | {verdict} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive-days", type=int, default=150)
    parser.add_argument("--events-per-day", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--late-share", type=float, default=0.05, help="late events per daily batch, share of the day's events"
    )
    parser.add_argument(
        "--redelivered-share", type=float, default=0.01, help="re-delivered archived events, share of the day's events"
    )
    parser.add_argument("--skip-crash", action="store_true", help="no SIGKILL crash tests")
    parser.add_argument("--keep", action="store_true", help="keep the buckets")
    parser.add_argument("--results", type=Path, default=RESULTS_PATH)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(json.loads(args.child))

    result: dict[str, Any] = {
        "benchmark": "archive_formats",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.archive_formats " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(),
        "load_avg_start": load_avg(),
        "note": "2-core machine shared with other engineers' test runs: every wall time is inflated by their load; "
        "load_before/load_after (1/5/15-min averages) are recorded with every step.",
        "params": {k: v for k, v in vars(args).items() if k not in ("child", "results")},
        "errors": [],
    }
    result["params"]["results"] = str(args.results)
    data = prepare_data(args)
    result["data"] = data
    say(f"batches: {data['rows']}, expected distinct: {data['expected_distinct']}")

    from ecommerce_profiles.core import lake

    s3 = s3_client()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    pq_bucket, delta_bucket = f"bench-archive-{stamp}-parquet", f"bench-archive-{stamp}-delta"
    for bucket in (pq_bucket, delta_bucket):
        s3.create_bucket(Bucket=bucket)
    pq_uri, delta_uri = f"s3a://{pq_bucket}/{ARCHIVE_PREFIX}", f"s3a://{delta_bucket}/{DELTA_PREFIX}"
    log_dir = PROJECT_ROOT / ".stack" / "bench" / f"archive_formats-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    result["buckets"] = {"parquet": pq_uri, "delta": delta_uri}

    spark_started = time.perf_counter()
    spark = spark_session("archive_formats")
    result["versions"] = {
        "spark": spark.version,
        "delta_spark": DELTA_VERSION,
        "hadoop": spark.sparkContext._jvm.org.apache.hadoop.util.VersionInfo.getVersion(),
        "delta_jars": [Path(j).name for j in delta_jars()],
    }
    result["spark_startup_s"] = round(time.perf_counter() - spark_started, 2)
    bench = Bench(spark, s3)
    try:
        say("loading the batches into memory (not timed: both formats get the same cached input)")
        archive_in = load_batch(spark, data["csv"]["archive"])
        daily_in = load_batch(spark, data["csv"]["daily"])
        crash_in = load_batch(spark, data["csv"]["crash"])
        delivered = {
            "after_load": fingerprint(archive_in),
            "after_daily": fingerprint(archive_in.union(daily_in)),
            "after_crash_batch": fingerprint(archive_in.union(daily_in).union(crash_in)),
        }
        spark_expected = {k: v["distinct_events"] for k, v in delivered.items()}
        result["expected_distinct_spark"] = spark_expected
        result["delivered_fingerprints"] = delivered
        if spark_expected != data["expected_distinct"]:
            result["errors"].append(
                f"Spark's distinct counts {spark_expected} differ from pandas' {data['expected_distinct']}"
            )
        expected = spark_expected

        archive_batch = lake.file_batch_id("bench/archive_formats/archive.csv")
        daily_batch = lake.daily_batch_id(data["days"]["daily"])
        crash_batch = lake.daily_batch_id(data["days"]["crash"])

        def pq_check(stage: str):
            return lambda: check_table(parquet_table(spark, pq_uri), delivered[stage])

        def delta_check(stage: str):
            return lambda: check_table(delta_table(spark, delta_uri), delivered[stage])

        plan = [
            (
                "parquet",
                "1 initial load",
                lambda: parquet_ingest(spark, pq_uri, archive_in, archive_batch),
                pq_check("after_load"),
            ),
            (
                "delta",
                "1 initial load",
                lambda: delta_initial_load(spark, delta_uri, archive_in),
                delta_check("after_load"),
            ),
            (
                "parquet",
                "2 daily batch",
                lambda: parquet_ingest(spark, pq_uri, daily_in, daily_batch),
                pq_check("after_daily"),
            ),
            (
                "delta",
                "2 daily batch",
                lambda: delta_merge(spark, delta_uri, daily_in, "daily_batch"),
                delta_check("after_daily"),
            ),
            (
                "parquet",
                "3 rerun of the daily batch",
                lambda: parquet_ingest(spark, pq_uri, daily_in, daily_batch),
                pq_check("after_daily"),
            ),
            (
                "delta",
                "3 rerun of the daily batch",
                lambda: delta_merge(spark, delta_uri, daily_in, "daily_batch"),
                delta_check("after_daily"),
            ),
            ("parquet", "4 full read (profile input)", lambda: profile_input_read(parquet_table(spark, pq_uri)), None),
            ("delta", "4 full read (profile input)", lambda: profile_input_read(delta_table(spark, delta_uri)), None),
        ]
        for fmt, name, action, check in plan:
            bucket, prefix = (pq_bucket, ARCHIVE_PREFIX) if fmt == "parquet" else (delta_bucket, DELTA_PREFIX)
            record = bench.step(fmt, name, bucket, prefix, action, check)
            if name.startswith("4"):
                d = record["detail"]
                record["check"] = {
                    "rows": d["rows"],
                    "distinct_events": d["distinct_events"],
                    "expected_rows": expected["after_daily"],
                    "ok": d["rows"] == d["distinct_events"] == expected["after_daily"],
                }
        result["delta_history"] = delta_history(spark, delta_uri)
        result["readers_after_steps"] = {
            "parquet": {"pyarrow_plain": plain_pyarrow_count(pq_bucket, ARCHIVE_PREFIX)},
            "delta": {
                "pyarrow_plain_ignoring_log": plain_pyarrow_count(delta_bucket, DELTA_PREFIX),
                "deltalake": deltalake_count(delta_bucket, DELTA_PREFIX),
            },
        }

        if not args.skip_crash:
            ctx = {
                "pq_bucket": pq_bucket,
                "delta_bucket": delta_bucket,
                "pq_uri": pq_uri,
                "delta_uri": delta_uri,
                "crash_batch_id": crash_batch,
                "log_dir": log_dir,
                "expected": expected,
                "csv": data["csv"],
                "crash_events": crash_in,
                "delivered_daily": archive_in.union(daily_in),
                "delivered_crash": delivered["after_crash_batch"],
            }
            try:
                result["crash"] = crash_tests(bench, spark, s3, ctx)
                result["delta_history_after_crash_tests"] = delta_history(spark, delta_uri)
            except Exception:  # noqa: BLE001 - the measured steps still get written
                result["errors"].append("crash tests: " + traceback.format_exc()[-2000:])
                say("crash tests failed:\n" + traceback.format_exc())
    finally:
        result["steps"] = bench.steps
        result["load_avg_end"] = load_avg()
        result["total_s"] = round(time.perf_counter() - _started, 1)
        result["table"] = summary_table(bench.steps)
        spark.stop()
        if not args.keep:
            for bucket in (pq_bucket, delta_bucket):
                try:
                    keys = list(list_objects(s3, bucket, ARCHIVE_PREFIX if bucket == pq_bucket else DELTA_PREFIX))
                    for i in range(0, len(keys), 1000):
                        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]})
                    leftover = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
                    if leftover:
                        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in leftover]})
                    s3.delete_bucket(Bucket=bucket)
                except Exception as error:  # noqa: BLE001
                    result["errors"].append(f"cleanup of {bucket}: {error}")
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
        say(f"results in {args.results} ({result['total_s']} s total)")
        print(result["table"])
    all_ok = all(s.get("check", {}).get("ok", True) for s in bench.steps) and not result["errors"]
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
