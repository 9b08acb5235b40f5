"""Benchmarks: how fast each stage of the pipeline is, on generated data of a given size.

    make bench SIZE=885129            # = source scripts/env.sh && python -m bench.run --events 885129
    python -m bench.run --events 200000 --skip-dag --skip-baseline

One run measures, on the same generated CSV (data/bench/, cached per size and seed):
  validate   the DAG's validation core: CSV -> staging file of Kafka message values
  produce    the DAG's own produce code, staging file -> a fresh topic (events/s, lost)
  baseline   the seed's way: kafka-python, one send() per row as JSON (events/s, lost)
  spark      src/ecommerce_profiles/spark_jobs/customer_profiles.py via spark-submit on the produced offsets, writing
             the lake to a bench bucket and the profiles to a bench index (wall, start-up apart)
  duckdb     the floor: src/ecommerce_profiles/duckdb_reference.py on the same CSV
  es         profiles/s from the Spark job's Elasticsearch write stage, and separately a Python
             bulk index (helpers.parallel_bulk) of the DuckDB profiles into a scratch index
  dag        the whole DAG with `airflow dags test` on the same CSV (bench topic/bucket/alias)

Writes bench/results/<events>.json and bench/results/latest.json, then regenerates the table and
plot in docs/benchmarks.md (bench/plot.py). Everything it creates in Kafka, MinIO and
Elasticsearch is named bench* and deleted at the end unless --keep-outputs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = PROJECT_ROOT / "bench"

DEFAULT_EVENTS = 885_129  # rows of the real Kaggle file
STAGES = ("produce", "baseline", "spark", "duckdb", "es", "dag")
# The Spark master of the spark stage: the local[2] the DAG uses on the local stack (spark_default).
SPARK_MASTER = "local[2]"
# Targets on the 2-core reference machine (issue "Benchmarks: how fast each stage is").
TARGETS = {
    "produce_events_per_s": 200_000,
    "produce_speedup_vs_baseline": 25,
    "spark_vs_duckdb": 3,
    "es_docs_per_s": 20_000,
    "dag_wall_s_885k": 180,
}
# Always present in a result (null when the stage was skipped or failed).
HEADLINE_KEYS = ("produce_events_per_s", "baseline_produce_events_per_s", "lost_events", "baseline_lost_events",
                 "spark_job_s", "spark_startup_s", "duckdb_s", "es_docs_per_s", "dag_wall_s")
DAG_ID = "ecommerce_customer_profiles"
DAG_LOGICAL_DATE = "2021-03-01"  # the day after the dataset ends; other runs use other dates

_started = time.perf_counter()


def say(message: str) -> None:
    """One progress line: wall clock, seconds since start, message."""
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"[bench {stamp} +{time.perf_counter() - _started:7.1f}s] {message}", flush=True)


# ------------------------------------------------------------------------------------------
# Machine, versions, data set
# ------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "cpu_model": model,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    """The version matrix, read through scripts/versions.sh (docs/versions.md is the source)."""
    out = subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "versions.sh")],
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def bench_csv(events: int, seed: int) -> tuple[Path, float | None]:
    """The benchmark CSV for (events, seed), generated once and reused; (path, seconds or None)."""
    from ecommerce_profiles.generator import write_events_csv

    data_dir = Path(os.environ.get("PIPELINE_DATA_DIR") or PROJECT_ROOT / "data") / "bench"
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"events_{events}_seed{seed}.csv"
    if path.exists():
        say(f"data set {path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path} (cached)")
        return path, None
    say(f"generating {events:,} events (seed {seed}) -> {path}")
    partial = path.with_suffix(".csv.partial")
    started = time.perf_counter()
    write_events_csv(partial, events, seed=seed,
                     progress=lambda done, total: say(f"  generated {done:,}/{total:,}") if done % 2_000_000 < 250_000 and done < total else None)
    partial.rename(path)  # only a complete file is ever cached
    seconds = time.perf_counter() - started
    say(f"generated in {seconds:.1f}s ({events / seconds:,.0f} rows/s, {path.stat().st_size / 1e6:,.0f} MB)")
    return path, seconds


# ------------------------------------------------------------------------------------------
# Services
# ------------------------------------------------------------------------------------------
def kafka_admin():
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]})


def create_topic(topic: str) -> None:
    from confluent_kafka.admin import NewTopic

    partitions = int(os.environ.get("KAFKA_TOPIC_PARTITIONS", "3"))
    admin = kafka_admin()  # keep the handle alive until the futures resolve
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    futures[topic].result(timeout=60)
    # Metadata reaches the producer a moment later; wait until the leader is known.
    deadline = time.time() + 30
    while time.time() < deadline:
        metadata = admin.list_topics(topic=topic, timeout=10)
        parts = metadata.topics.get(topic)
        if parts and parts.error is None and len(parts.partitions) == partitions and all(
                p.leader >= 0 for p in parts.partitions.values()):
            return
        time.sleep(0.2)


def delete_topics(topics: list[str]) -> None:
    if not topics:
        return
    admin = kafka_admin()  # keep the handle alive until the futures resolve
    for topic, future in admin.delete_topics(topics, operation_timeout=60).items():
        try:
            future.result(timeout=60)
        except Exception as exc:  # noqa: BLE001 - cleanup is best effort, say what stayed
            say(f"  could not delete topic {topic}: {exc}")


def topic_offsets(topic: str) -> dict[int, tuple[int, int]]:
    """{partition: (low, high)} watermarks of a topic."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
                         "group.id": "bench-watermarks", "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic=topic, timeout=10)
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                for p in sorted(metadata.topics[topic].partitions)}
    finally:
        consumer.close()


def topic_message_count(topic: str) -> int:
    return sum(high - low for low, high in topic_offsets(topic).values())


def s3_client():
    import boto3

    return boto3.client("s3", endpoint_url=os.environ["MINIO_ENDPOINT"],
                        aws_access_key_id=os.environ["MINIO_ROOT_USER"],
                        aws_secret_access_key=os.environ["MINIO_ROOT_PASSWORD"],
                        region_name="us-east-1")


def create_bucket(bucket: str) -> None:
    s3_client().create_bucket(Bucket=bucket)


def delete_bucket(bucket: str) -> None:
    s3 = s3_client()
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        s3.delete_bucket(Bucket=bucket)
    except Exception as exc:  # noqa: BLE001 - cleanup is best effort, say what stayed
        say(f"  could not delete bucket {bucket}: {exc}")


def es_client():
    from elasticsearch import Elasticsearch

    # one INFO line per request would drown the progress lines
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    return Elasticsearch(os.environ["ELASTICSEARCH_URL"], request_timeout=120)


def delete_indices(pattern: str) -> None:
    try:
        es = es_client()
        existing = es.indices.get(index=pattern, ignore_unavailable=True, allow_no_indices=True)
        for name in existing:
            es.indices.delete(index=name)
    except Exception as exc:  # noqa: BLE001 - cleanup is best effort, say what stayed
        say(f"  could not delete indices {pattern}: {exc}")


def s3_json(bucket: str, key: str) -> dict[str, Any]:
    return json.loads(s3_client().get_object(Bucket=bucket, Key=key)["Body"].read())


def server_cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each local-stack service (its whole process group).

    The pid files of scripts/stack.sh name each service's process-group leader; Elasticsearch's
    launcher and server JVM share one group. Empty for a service that is not a local process.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    pid_dir = Path(os.environ.get("STACK_DIR") or PROJECT_ROOT / ".stack") / "pids"
    groups: dict[int, str] = {}
    for name in ("kafka", "minio", "elasticsearch"):
        try:
            groups[int((pid_dir / f"{name}.pid").read_text().strip())] = name
        except (OSError, ValueError):
            continue
    used = dict.fromkeys(groups.values(), 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after "(comm)": state ppid pgrp ... utime is the 12th, stime the 13th field
        name = groups.get(int(fields[2]))
        if name:
            used[name] += (int(fields[11]) + int(fields[12])) / ticks
    return used


# ------------------------------------------------------------------------------------------
# py-spy (optional): sample this process while a Python stage runs
# ------------------------------------------------------------------------------------------
class PySpy:
    """`py-spy record` on this process for the duration of a with-block (--py-spy DIR)."""

    def __init__(self, out_dir: Path | None, name: str) -> None:
        self.out_dir, self.name, self.process = out_dir, name, None
        self.output: Path | None = None

    def __enter__(self):
        if self.out_dir is None:
            return self
        exe = shutil.which("py-spy")
        if not exe:
            say("  --py-spy given but py-spy is not installed (pip install py-spy): not profiling")
            return self
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.output = self.out_dir / f"{self.name}.txt"
        # raw = collapsed stacks, one line per stack with its sample count: easy to summarise.
        self.process = subprocess.Popen(
            [exe, "record", "--pid", str(os.getpid()), "--rate", "50", "--format", "raw",
             "--output", str(self.output), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # let it attach before the measured work starts
        return self

    def __exit__(self, *exc) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        say(f"  py-spy profile of {self.name}: {self.output}")

    def top(self, limit: int = 12) -> list[dict[str, Any]]:
        """Self time per function from the collapsed stacks (share of samples)."""
        if not self.output or not self.output.exists():
            return []
        own: dict[str, int] = {}
        total = 0
        for line in self.output.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            frame = stack.split(";")[-1]
            own[frame] = own.get(frame, 0) + int(count)
            total += int(count)
        ranked = sorted(own.items(), key=lambda kv: -kv[1])[:limit]
        return [{"frame": frame, "share": round(n / total, 3)} for frame, n in ranked] if total else []


# ------------------------------------------------------------------------------------------
# Stages
# ------------------------------------------------------------------------------------------
def stage_validate(csv_path: Path, staging_dir: Path) -> dict[str, Any]:
    """The DAG's validation core: accepted rows into the staging file the producer sends."""
    from ecommerce_profiles import validation

    staging_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = validation.validate_files([csv_path], staging_dir / validation.STAGING_FILE_NAME,
                                       staging_dir / validation.QUARANTINE_FILE_NAME)
    seconds = time.perf_counter() - started
    summary = {
        "rows_read": result.rows_read, "rows_accepted": result.rows_accepted,
        "rows_quarantined": result.rows_quarantined, "staging_path": result.staging_path,
        "max_event_date": result.max_event_date,
    }
    say(f"validate: {result.rows_read:,} rows read, {result.rows_accepted:,} accepted in {seconds:.1f}s "
        f"({result.rows_read / seconds:,.0f} rows/s)")
    return {"validate_s": round(seconds, 3), "validation": summary}


def stage_produce(staging_path: str, topic: str, accepted: int, py_spy_dir: Path | None) -> dict[str, Any]:
    """The DAG's own produce code (ecommerce.producer, as ProduceEventsOperator runs it) into a
    fresh topic; the rate is over the whole call (producer set-up and final flush included)."""
    from ecommerce_profiles import producer

    create_topic(topic)
    say(f"produce: {accepted:,} events -> topic {topic} with the DAG's producer")
    error: Exception | None = None
    result: dict[str, Any] = {}
    with PySpy(py_spy_dir, "produce") as spy:
        started = time.perf_counter()
        try:
            result = dict(producer.produce_staging_file(staging_path, topic, kafka_config=kafka_config(),
                                                        expected_count=accepted))
        except Exception as exc:  # noqa: BLE001 - still count what reached the topic
            error = exc
        seconds = time.perf_counter() - started
    in_topic = topic_message_count(topic)
    delivered = int(result.get("delivered", in_topic))
    out = {
        "produce_s": round(seconds, 3),
        "produce_events_per_s": round(delivered / seconds, 1),
        "produce_loop_events_per_s": result.get("events_per_second"),
        "produce_delivered": delivered,
        "produce_topic_messages": in_topic,
        "lost_events": accepted - in_topic,
        "produce_offsets": {k: result[k] for k in ("starting_offsets", "ending_offsets") if k in result},
        "produce_compression": result.get("compression"),
    }
    if spy.output:
        out["produce_profile"] = spy.top()
    say(f"produce: {delivered:,} delivered, {in_topic:,} in the topic, lost {out['lost_events']:,}, "
        f"{seconds:.1f}s = {out['produce_events_per_s']:,.0f} events/s")
    if error is not None:
        raise RuntimeError(f"producer failed after {seconds:.1f}s ({in_topic} in topic): {error}") from error
    return out


def kafka_config() -> dict[str, Any]:
    """librdkafka settings of the `kafka_default` Airflow connection (as the DAG's hook sees them)."""
    raw = os.environ.get("AIRFLOW_CONN_KAFKA_DEFAULT", "")
    try:
        return dict(json.loads(raw).get("extra", {}))
    except (ValueError, AttributeError):
        return {"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]}


def stage_baseline(csv_path: Path, topic: str, rows: int, max_events: int | None) -> dict[str, Any]:
    from bench.baseline_producer import produce_baseline

    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python logs every connection at INFO
    create_topic(topic)
    limit = None if not max_events or max_events >= rows else max_events
    say(f"baseline: kafka-python send() per row -> topic {topic}"
        + (f" (first {limit:,} of {rows:,} rows)" if limit else ""))
    result = produce_baseline(
        str(csv_path), os.environ["KAFKA_BOOTSTRAP_SERVERS"], topic, max_events=limit,
        progress=lambda sent, secs: say(f"  baseline {sent:,} sent, {sent / secs:,.0f}/s"))
    in_topic = topic_message_count(topic)
    out = {
        "baseline_events": result["sent"],
        "baseline_s": round(result["seconds"], 3),
        "baseline_produce_events_per_s": round(result["events_per_s"], 1),
        "baseline_acknowledged": result["acknowledged"],
        "baseline_failed": result["failed"],
        "baseline_topic_messages": in_topic,
        "baseline_lost_events": result["sent"] - in_topic,
    }
    say(f"baseline: {result['sent']:,} sent, {result['acknowledged']:,} acknowledged, {result['failed']:,} failed, "
        f"lost {out['baseline_lost_events']:,}, {result['seconds']:.1f}s = {result['events_per_s']:,.0f} events/s")
    return out


def spark_submit_command(args_for_job: list[str], event_log_dir: Path) -> list[str]:
    """spark-submit as the DAG runs the job: the same jars and conf (spark_conf.job_conf), local[2],
    plus an event log for the where-does-the-time-go summary."""
    from ecommerce_profiles.paths import SPARK_JOB_FILE
    from ecommerce_profiles.spark_jobs import spark_conf

    conf = spark_conf.job_conf(spark_conf.s3a_conf_from_env(), master=SPARK_MASTER)
    conf.update({"spark.eventLog.enabled": "true", "spark.eventLog.dir": event_log_dir.as_uri()})
    return spark_conf.spark_submit_command(
        SPARK_JOB_FILE, args_for_job, conf, master=SPARK_MASTER,
        spark_submit=str(Path(sys.executable).parent / "spark-submit"))


def stage_spark(topic: str, offsets: dict[str, str], bucket: str, index: str, snapshot_date: str,
                run_date: str, log_dir: Path) -> dict[str, Any]:
    from ecommerce_profiles.schemas import es_mapping

    if not offsets:  # the producer's own range when it returned one, else the whole topic
        watermarks = topic_offsets(topic)
        offsets = {"starting_offsets": json.dumps({topic: {str(p): lo for p, (lo, _hi) in watermarks.items()}}),
                   "ending_offsets": json.dumps({topic: {str(p): hi for p, (_lo, hi) in watermarks.items()}})}
    starting, ending = offsets["starting_offsets"], offsets["ending_offsets"]
    es_client().indices.create(index=index, **es_mapping())
    summary_key = f"runs/run_date={run_date}/spark_summary.json"
    event_log_dir = log_dir / "spark-events"
    event_log_dir.mkdir(parents=True, exist_ok=True)
    before = set(event_log_dir.iterdir())
    cmd = spark_submit_command([
        "--bootstrap-servers", os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        "--topic", topic,
        "--starting-offsets", starting,
        "--ending-offsets", ending,
        "--snapshot-date", snapshot_date,
        "--run-date", run_date,
        "--lake-uri", f"s3a://{bucket}",
        "--es-nodes", os.environ["ELASTICSEARCH_URL"],
        "--es-index", index,
        "--summary-uri", f"s3a://{bucket}/{summary_key}",
        "--batch-id", f"bench-{run_date}",
        *(["--expected-records", str(offsets["delivered"])] if "delivered" in offsets else []),
    ], event_log_dir)
    log_path = log_dir / "spark-job.log"
    say(f"spark: customer_profiles.py on {topic} -> s3a://{bucket}, index {index} (log {log_path})")
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"spark job failed (exit {proc.returncode}); last lines:\n" + tail(log_path))
    summary = s3_json(bucket, summary_key)
    es_client().indices.refresh(index=index)
    indexed = es_client().count(index=index)["count"]
    new_logs = sorted(set(event_log_dir.iterdir()) - before)
    out = {
        "spark_job_s": round(seconds, 3),
        "spark_startup_s": _num(summary, "spark_startup_s", "startup_s", "spark_startup_seconds"),
        "spark_stage_s": _stage_timings(summary),
        "spark_profiles": summary.get("profiles"),
        "spark_events_archived": summary.get("events_archived"),
        "es_indexed_docs": indexed,
        "spark_summary": summary,
    }
    if new_logs:
        out["spark_event_log"] = summarise_event_log(new_logs[-1])
        out["spark_event_log"]["path"] = str(new_logs[-1])
    es_stage = _es_write_seconds(out["spark_stage_s"])
    if es_stage and indexed:
        out["es_spark_docs_per_s"] = round(indexed / es_stage, 1)
    say(f"spark: {seconds:.1f}s wall (start-up {out['spark_startup_s']}s), {out['spark_profiles']} profiles, "
        f"{indexed:,} documents in {index}; stages {out['spark_stage_s']}")
    return out


def _num(mapping: dict[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, (int, float)):
            return round(float(value), 3)
    timings = mapping.get("timings") or mapping.get("stage_seconds") or {}
    for key in keys:
        if isinstance(timings.get(key), (int, float)):
            return round(float(timings[key]), 3)
    return None


def _stage_timings(summary: dict[str, Any]) -> dict[str, float]:
    for key in ("stage_seconds", "timings", "stages", "timings_s"):
        value = summary.get(key)
        if isinstance(value, dict):
            return {k: round(float(v), 3) for k, v in value.items() if isinstance(v, (int, float))}
    return {}


def _es_write_seconds(stages: dict[str, float]) -> float | None:
    for name, seconds in stages.items():
        if re.search(r"elastic|(^|_)es(_|$)", name) and seconds > 0:
            return seconds
    return None


def summarise_event_log(path: Path) -> dict[str, Any]:
    """Where the job's time went, from the Spark event log: stages by duration, task-time split."""
    stages: list[dict[str, Any]] = []
    totals = {"executor_run_ms": 0, "executor_cpu_ms": 0, "gc_ms": 0, "shuffle_write_bytes": 0,
              "shuffle_read_bytes": 0, "input_bytes": 0, "tasks": 0, "spill_disk_bytes": 0}
    app_start = app_end = None
    with open(path) as handle:
        for line in handle:
            event = json.loads(line)
            kind = event.get("Event")
            if kind == "SparkListenerApplicationStart":
                app_start = event.get("Timestamp")
            elif kind == "SparkListenerApplicationEnd":
                app_end = event.get("Timestamp")
            elif kind == "SparkListenerStageCompleted":
                info = event["Stage Info"]
                if info.get("Submission Time") and info.get("Completion Time"):
                    stages.append({
                        "stage": info["Stage ID"], "name": info["Stage Name"],
                        "tasks": info["Number of Tasks"],
                        "seconds": round((info["Completion Time"] - info["Submission Time"]) / 1000, 2),
                    })
            elif kind == "SparkListenerTaskEnd":
                metrics = event.get("Task Metrics") or {}
                totals["tasks"] += 1
                totals["executor_run_ms"] += metrics.get("Executor Run Time", 0)
                totals["executor_cpu_ms"] += metrics.get("Executor CPU Time", 0) // 1_000_000
                totals["gc_ms"] += metrics.get("JVM GC Time", 0)
                totals["spill_disk_bytes"] += metrics.get("Disk Bytes Spilled", 0)
                totals["input_bytes"] += (metrics.get("Input Metrics") or {}).get("Bytes Read", 0)
                totals["shuffle_write_bytes"] += (metrics.get("Shuffle Write Metrics") or {}).get("Shuffle Bytes Written", 0)
                read = metrics.get("Shuffle Read Metrics") or {}
                totals["shuffle_read_bytes"] += read.get("Remote Bytes Read", 0) + read.get("Local Bytes Read", 0)
    stages.sort(key=lambda s: -s["seconds"])
    return {
        "app_seconds": round((app_end - app_start) / 1000, 2) if app_start and app_end else None,
        # Far below 1 means the task threads waited for a CPU (other work on the machine) or I/O.
        "cpu_share_of_task_time": round(totals["executor_cpu_ms"] / totals["executor_run_ms"], 2)
        if totals["executor_run_ms"] else None,
        "stages_total": len(stages),
        "slowest_stages": stages[:8],
        **totals,
    }


def stage_duckdb(csv_path: Path, snapshot_date: str) -> dict[str, Any]:
    from ecommerce_profiles import duckdb_reference as duckdb_profiles

    say("duckdb: reference profiles from the CSV")
    started = time.perf_counter()
    table = duckdb_profiles.duckdb_profiles(csv_path, snapshot_date)
    seconds = time.perf_counter() - started
    rows = _row_count(table)
    say(f"duckdb: {rows:,} profiles in {seconds:.1f}s")
    return {"duckdb_s": round(seconds, 3), "duckdb_profiles": rows, "_duckdb_table": table}


def _row_count(table: Any) -> int:
    for attr in ("num_rows", "shape"):
        if hasattr(table, attr):
            value = getattr(table, attr)
            return int(value[0] if isinstance(value, tuple) else value)
    return len(table)


def stage_es_bulk(table: Any, index: str, max_docs: int) -> dict[str, Any]:
    """Bulk-index profile documents with the official client's helpers.parallel_bulk."""
    from elasticsearch import helpers

    from ecommerce_profiles.schemas import PROFILE_COLUMNS, es_mapping

    arrow = table if hasattr(table, "to_batches") else _to_arrow(table)
    arrow = arrow.slice(0, min(max_docs, arrow.num_rows))
    docs = []
    for row in arrow.select([c for c in PROFILE_COLUMNS if c in arrow.column_names]).to_pylist():
        for key, value in row.items():
            if hasattr(value, "isoformat"):
                row[key] = value.isoformat()
        row["user_id"] = str(row["user_id"])
        docs.append({"_index": index, "_id": row["user_id"], "_source": row})
    es = es_client()
    es.indices.create(index=index, **es_mapping())
    say(f"es: parallel_bulk of {len(docs):,} profile documents -> {index}")
    started = time.perf_counter()
    failed = 0
    for ok, _item in helpers.parallel_bulk(es, docs, thread_count=2, chunk_size=2000, raise_on_error=False):
        failed += not ok
    es.indices.refresh(index=index)
    seconds = time.perf_counter() - started
    count = es.count(index=index)["count"]
    out = {
        "es_bulk_docs": len(docs),
        "es_bulk_failed": failed,
        "es_bulk_indexed": count,
        "es_bulk_s": round(seconds, 3),
        "es_bulk_docs_per_s": round(count / seconds, 1) if seconds else None,
    }
    say(f"es: {count:,} indexed ({failed} failed) in {seconds:.1f}s = {out['es_bulk_docs_per_s']:,.0f} docs/s")
    return out


def _to_arrow(table: Any):
    import pyarrow as pa

    if hasattr(table, "arrow"):  # a DuckDB relation
        return table.arrow()
    if hasattr(table, "to_arrow"):
        return table.to_arrow()
    return pa.Table.from_pandas(table) if hasattr(table, "to_records") else pa.Table.from_pylist(list(table))


def stage_dag(csv_path: Path, topic: str, bucket: str, alias: str, log_dir: Path) -> dict[str, Any]:
    """The whole DAG with `airflow dags test` on the same CSV, isolated by bench names."""
    env = {**os.environ, "KAFKA_TOPIC": topic, "MINIO_BUCKET": bucket, "ELASTICSEARCH_INDEX": alias}
    create_bucket(bucket)
    subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "airflow_db.sh")], check=True, env=env)
    create_topic(topic)
    log_path = log_dir / "dag.log"
    conf = json.dumps({"input_path": str(csv_path)})
    say(f"dag: airflow dags test {DAG_ID} {DAG_LOGICAL_DATE} (topic {topic}, bucket {bucket}, alias {alias}; log {log_path})")
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.run(["airflow", "dags", "test", DAG_ID, DAG_LOGICAL_DATE, "-c", conf],
                              stdout=log, stderr=subprocess.STDOUT, env=env)
    seconds = time.perf_counter() - started
    text = log_path.read_text(errors="replace")
    if proc.returncode != 0 or "Customer profiles as of" not in text:
        raise RuntimeError(f"DAG run failed (exit {proc.returncode}); see {log_path}:\n" + tail(log_path))
    tasks = dag_task_durations(text)
    out: dict[str, Any] = {"dag_wall_s": round(seconds, 3), "dag_task_s": tasks}
    if tasks:
        # `airflow dags test` start-up, DAG parsing and scheduling between tasks
        out["dag_overhead_s"] = round(seconds - sum(tasks.values()), 2)
    try:
        summary = s3_json(bucket, f"runs/run_date={DAG_LOGICAL_DATE}/spark_summary.json")
        out["dag_spark_startup_s"] = summary.get("spark_startup_seconds")
        out["dag_spark_stage_s"] = summary.get("stage_seconds")
    except Exception as exc:  # noqa: BLE001 - the stage timings are a nice-to-have
        say(f"  (no Spark summary from the DAG run: {exc})")
    say(f"dag: {seconds:.1f}s wall; tasks {tasks}")
    return out


def dag_task_durations(log_text: str) -> dict[str, float]:
    """Task durations from the Airflow metadata DB for the newest run of the bench date."""
    import sqlite3

    conn_uri = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    db = conn_uri.removeprefix("sqlite:///") if conn_uri.startswith("sqlite:///") else \
        str(Path(os.environ.get("AIRFLOW_HOME", "")) / "airflow.db")
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            run_id = conn.execute(
                "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)).fetchone()[0]
            rows = conn.execute(
                "SELECT task_id, start_date, end_date FROM task_instance WHERE dag_id = ? AND run_id = ?",
                (DAG_ID, run_id)).fetchall()
    except Exception as exc:  # noqa: BLE001 - durations are a nice-to-have
        say(f"  (no task durations from the metadata DB: {exc})")
        return {}
    out = {}
    for task_id, start, end in rows:
        if start and end:
            out[task_id] = round((_ts(end) - _ts(start)), 2)
    return out


def _ts(value: str) -> float:
    return datetime.fromisoformat(str(value).replace(" ", "T")).timestamp()


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# ------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------
def evaluate_targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    checks: dict[str, dict[str, Any]] = {}

    def check(name: str, value: Any, target: float, at_least: bool) -> None:
        if value is None:
            return
        met = value >= target if at_least else value <= target
        checks[name] = {"value": value, "target": ("≥ " if at_least else "≤ ") + f"{target:,g}", "met": bool(met)}

    check("produce_events_per_s", result.get("produce_events_per_s"), TARGETS["produce_events_per_s"], True)
    check("produce_speedup_vs_baseline", result.get("produce_speedup_vs_baseline"),
          TARGETS["produce_speedup_vs_baseline"], True)
    if result.get("lost_events") is not None:
        checks["lost_events"] = {"value": result["lost_events"], "target": "= 0", "met": result["lost_events"] == 0}
    check("spark_vs_duckdb", result.get("spark_vs_duckdb"), TARGETS["spark_vs_duckdb"], False)
    check("es_docs_per_s", result.get("es_docs_per_s"), TARGETS["es_docs_per_s"], True)
    if result.get("dag_wall_s") is not None and abs(result["events"] - DEFAULT_EVENTS) <= DEFAULT_EVENTS * 0.05:
        check("dag_wall_s", result["dag_wall_s"], TARGETS["dag_wall_s_885k"], False)
    return checks


def derive(result: dict[str, Any]) -> None:
    if result.get("produce_events_per_s") and result.get("baseline_produce_events_per_s"):
        result["produce_speedup_vs_baseline"] = round(
            result["produce_events_per_s"] / result["baseline_produce_events_per_s"], 1)
    if result.get("spark_job_s") and result.get("duckdb_s"):
        result["spark_vs_duckdb"] = round(result["spark_job_s"] / result["duckdb_s"], 2)
        if result.get("spark_startup_s") is not None:
            result["spark_minus_startup_vs_duckdb"] = round(
                (result["spark_job_s"] - result["spark_startup_s"]) / result["duckdb_s"], 2)
    # The headline ES rate is the pipeline's own (the Spark connector); the Python bulk figure
    # stands in only when the Spark stage did not run.
    if result.get("es_spark_docs_per_s") is not None:
        result["es_docs_per_s"] = result["es_spark_docs_per_s"]
        result["es_docs_per_s_source"] = ("Spark job's write_elasticsearch stage (elasticsearch-spark connector): "
                                          "documents in the index / stage seconds")
    elif result.get("es_bulk_docs_per_s") is not None:
        result["es_docs_per_s"] = result["es_bulk_docs_per_s"]
        result["es_docs_per_s_source"] = ("Python bulk index (elasticsearch.helpers.parallel_bulk, 2 threads, "
                                          "2000 docs per request) of the DuckDB profiles")
    if result.get("spark_profiles") is not None and result.get("duckdb_profiles") is not None:
        result["profiles_match_duckdb"] = result["spark_profiles"] == result["duckdb_profiles"]
    result["targets"] = evaluate_targets(result)


def write_results(result: dict[str, Any], results_dir: Path) -> list[Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, sort_keys=False, default=str) + "\n"
    paths = [results_dir / f"{result['events']}.json", results_dir / "latest.json"]
    for path in paths:
        partial = path.with_suffix(".json.tmp")
        partial.write_text(text)
        partial.replace(path)
    return paths


def human_summary(result: dict[str, Any]) -> str:
    def fmt(value: Any, unit: str = "", digits: int = 1) -> str:
        if value is None:
            return "skipped"
        if isinstance(value, float):
            return f"{value:,.{digits}f}{unit}"
        return f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"

    lines = [
        "=" * 78,
        f"Benchmark: {result['events']:,} events on {result['machine']['cores']} cores "
        f"({result['machine']['cpu_model']}, {result['machine']['memory_gib']} GiB)",
        f"  produce (DAG code)  {fmt(result.get('produce_events_per_s'), ' events/s', 0)}"
        f"   lost {fmt(result.get('lost_events'))}",
        f"  baseline (seed)     {fmt(result.get('baseline_produce_events_per_s'), ' events/s', 0)}"
        f"   lost {fmt(result.get('baseline_lost_events'))}   speed-up {fmt(result.get('produce_speedup_vs_baseline'), 'x')}",
        f"  spark job           {fmt(result.get('spark_job_s'), ' s')} wall, of which start-up {fmt(result.get('spark_startup_s'), ' s')}",
        f"  duckdb floor        {fmt(result.get('duckdb_s'), ' s')}   spark/duckdb {fmt(result.get('spark_vs_duckdb'), 'x', 2)}",
        f"  elasticsearch       {fmt(result.get('es_docs_per_s'), ' profiles/s', 0)} ({result.get('es_docs_per_s_source', '-')})",
        f"  whole DAG           {fmt(result.get('dag_wall_s'), ' s')}",
    ]
    if result.get("targets"):
        lines.append("  targets: " + ", ".join(
            f"{name} {'met' if t['met'] else 'MISSED'} ({t['value']} vs {t['target']})"
            for name, t in result["targets"].items()))
    if result.get("errors"):
        lines.append("  errors: " + "; ".join(f"{k}: {v.splitlines()[0]}" for k, v in result["errors"].items()))
    lines.append("=" * 78)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="rows in the generated CSV")
    parser.add_argument("--seed", type=int, default=42)
    for stage in STAGES:
        parser.add_argument(f"--skip-{stage}", action="store_true", help=f"do not run the {stage} stage")
    parser.add_argument("--baseline-max-events", type=int, default=300_000,
                        help="the baseline sends the first N rows only (its rate is flat and slow; "
                             "default 300k; 0 = all rows)")
    parser.add_argument("--es-bulk-max-docs", type=int, default=500_000,
                        help="profiles bulk-indexed by the Python ES measurement (default 500k)")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--no-docs", action="store_true", help="do not regenerate docs/benchmarks.md and its plot")
    parser.add_argument("--keep-outputs", action="store_true", help="keep the bench topics, bucket and indices")
    parser.add_argument("--wait-for-load", type=float, metavar="LOAD",
                        help="first wait until the 1-minute load average is below LOAD")
    parser.add_argument("--wait-max-s", type=float, default=1800, help="longest wait for --wait-for-load")
    parser.add_argument("--py-spy", type=Path, metavar="DIR", help="profile the produce stage with py-spy into DIR")
    return parser.parse_args(argv)


def wait_for_quiet_machine(max_load: float, max_wait_s: float) -> None:
    """Wait until the 1-minute load average is below ``max_load`` (others share the cores)."""
    deadline = time.time() + max_wait_s
    while (load := os.getloadavg()[0]) >= max_load and time.time() < deadline:
        say(f"waiting for a quiet machine: load {load:.2f} >= {max_load} ({deadline - time.time():.0f}s left)")
        time.sleep(30)
    if load >= max_load:
        say(f"machine still busy (load {load:.2f}): running anyway, the figures will be pessimistic")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    if args.wait_for_load:
        wait_for_quiet_machine(args.wait_for_load, args.wait_max_s)
    skip = {stage for stage in STAGES if getattr(args, f"skip_{stage}")}
    # A produce is what the Spark job reads; without it there is nothing to run the job on.
    if "produce" in skip:
        skip.add("spark")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    run_name = f"{args.events}-{stamp}"
    log_dir = PROJECT_ROOT / ".stack" / "bench" / run_name
    log_dir.mkdir(parents=True, exist_ok=True)
    names = {
        "produce_topic": f"bench_{run_name}_produce",
        "baseline_topic": f"bench_{run_name}_baseline",
        "dag_topic": f"bench_{run_name}_dag",
        "bucket": f"bench-{run_name}",
        "index": f"bench_{run_name}_spark",
        "bulk_index": f"bench_{run_name}_bulk",
        "dag_alias": f"bench_{run_name}_dag",
    }
    result: dict[str, Any] = {
        "events": args.events,
        "seed": args.seed,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        # Other work on the machine skews every figure: record how busy it was.
        "load_avg_1m_start": round(os.getloadavg()[0], 2),
        "versions": versions(),
        "skipped": sorted(skip),
        **dict.fromkeys(HEADLINE_KEYS),
        "logs": str(log_dir.relative_to(PROJECT_ROOT)),
    }
    errors: dict[str, str] = {}
    topics: list[str] = []

    def run_stage(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if name in skip:
            return {}
        before, servers_before = os.times(), server_cpu_seconds()
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001 - one failing stage must not hide the others
            errors[name] = f"{type(exc).__name__}: {exc}"
            (log_dir / f"{name}.error.txt").write_text(traceback.format_exc())
            say(f"{name}: FAILED: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            return {}
        after = os.times()
        # CPU seconds of this process and its waited-for children (spark-submit, airflow): with
        # the wall time it shows how much of a stage was waiting for a core on a busy machine.
        # The Kafka, MinIO and Elasticsearch servers are counted apart (their process groups).
        result[f"{name}_cpu_s"] = round(sum(a - b for a, b in zip(after[:4], before[:4])), 2)
        servers_after = server_cpu_seconds()
        result[f"{name}_server_cpu_s"] = {k: round(servers_after[k] - v, 2)
                                          for k, v in servers_before.items() if k in servers_after}
        result.update({k: v for k, v in out.items() if not k.startswith("_")})
        return out

    say(f"benchmark of {args.events:,} events; skipping: {', '.join(sorted(skip)) or 'nothing'}; logs {log_dir}")
    csv_path, generate_s = bench_csv(args.events, args.seed)
    result.update({"csv": str(csv_path.relative_to(PROJECT_ROOT)) if csv_path.is_relative_to(PROJECT_ROOT) else str(csv_path),
                   "csv_mb": round(csv_path.stat().st_size / 1e6, 1), "generate_s": generate_s and round(generate_s, 1)})

    try:
        validation: dict[str, Any] = {}
        if "produce" not in skip:  # the staging file is the producer's input
            validation = run_stage("validate", lambda: stage_validate(csv_path, log_dir / "staging")).get("validation", {})
        snapshot_date = validation.get("max_event_date")
        if "produce" not in skip and validation:
            topics.append(names["produce_topic"])
            run_stage("produce", lambda: stage_produce(validation["staging_path"], names["produce_topic"],
                                                       int(validation["rows_accepted"]), args.py_spy))
        if "baseline" not in skip:
            topics.append(names["baseline_topic"])
            run_stage("baseline", lambda: stage_baseline(csv_path, names["baseline_topic"], args.events,
                                                         args.baseline_max_events))
        if "spark" not in skip and result.get("produce_topic_messages"):
            create_bucket(names["bucket"])
            run_stage("spark", lambda: stage_spark(names["produce_topic"], result.get("produce_offsets") or {},
                                                   names["bucket"], names["index"],
                                                   str(snapshot_date), DAG_LOGICAL_DATE, log_dir))
        if not args.keep_outputs:  # free the broker's disk before the DAG writes its own copy
            delete_topics(topics)
            topics.clear()
        duck = run_stage("duckdb", lambda: stage_duckdb(csv_path, str(snapshot_date or _last_event_date(csv_path))))
        if "es" not in skip and "_duckdb_table" in duck:
            run_stage("es", lambda: stage_es_bulk(duck["_duckdb_table"], names["bulk_index"], args.es_bulk_max_docs))
        duck.clear()  # free the profiles before the DAG runs
        if "dag" not in skip:
            topics.append(names["dag_topic"])
            run_stage("dag", lambda: stage_dag(csv_path, names["dag_topic"], names["bucket"] + "-dag",
                                               names["dag_alias"], log_dir))
    finally:
        if not args.keep_outputs:
            say("cleaning up bench topics, buckets and indices")
            delete_topics(topics)
            for bucket in (names["bucket"], names["bucket"] + "-dag"):
                if _bucket_exists(bucket):
                    delete_bucket(bucket)
            delete_indices(f"bench_{run_name}_*")
            shutil.rmtree(log_dir / "staging", ignore_errors=True)

    result["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    result["bench_wall_s"] = round(time.perf_counter() - _started, 1)
    if errors:
        result["errors"] = errors
    derive(result)
    for path in write_results(result, args.results_dir):
        say(f"wrote {path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path}")
    if not args.no_docs:
        from bench import plot

        for path in plot.render(args.results_dir):
            say(f"wrote {path.relative_to(PROJECT_ROOT)}")
    print(human_summary(result), flush=True)
    return 1 if errors else 0


def _bucket_exists(bucket: str) -> bool:
    try:
        s3_client().head_bucket(Bucket=bucket)
        return True
    except Exception:  # noqa: BLE001
        return False


def _last_event_date(csv_path: Path) -> str:
    """Last event date of a time-sorted CSV (its last line), for runs that skip validation."""
    with open(csv_path, "rb") as handle:
        handle.seek(max(0, handle.seek(0, 2) - 4096))
        last = handle.read().decode().strip().splitlines()[-1]
    return last[:10]


if __name__ == "__main__":
    sys.exit(main())
