"""One function per benchmark stage; each returns the figures it measured (a flat dict).

Every stage runs the pipeline's own code: the validator, the producer, the Spark job with the
DAG's conf, the DuckDB reference, and the DAG itself with ``airflow dags test`` in a private
environment (own data directory, Airflow metadata DB, topic, bucket and alias, as
tests/support/pipeline.py builds one).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench import analysis, services
from bench.system import PROJECT_ROOT, PySpy, ThreadCpu, file_digest, say, shown, tail
from ecommerce_profiles import connections
from ecommerce_profiles.core import lake

# The Spark master of the spark stage: the local[2] the DAG uses on the local stack (spark_default).
SPARK_MASTER = "local[2]"
DAG_ID = "ecommerce_customer_profiles"


# ------------------------------------------------------------------------------ validate, produce --
def stage_validate(csv_path: Path, staging_dir: Path) -> dict[str, Any]:
    """The DAG's validation core: accepted rows into the staging file the producer sends."""
    from ecommerce_profiles.core import validation

    staging_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = validation.validate_files(
        [csv_path], staging_dir / validation.STAGING_FILE_NAME, staging_dir / validation.QUARANTINE_FILE_NAME
    )
    seconds = time.perf_counter() - started
    summary = {
        "rows_read": result.rows_read,
        "rows_accepted": result.rows_accepted,
        "rows_quarantined": result.rows_quarantined,
        "staging_path": result.staging_path,
        "max_event_date": result.max_event_date,
    }
    say(
        f"validate: {result.rows_read:,} rows read, {result.rows_accepted:,} accepted in {seconds:.1f}s "
        f"({result.rows_read / seconds:,.0f} rows/s)"
    )
    return {"validate_s": round(seconds, 3), "validation": summary}


def stage_produce(staging_path: str, topic: str, accepted: int, py_spy_dir: Path | None) -> dict[str, Any]:
    """The DAG's own produce code into a fresh topic; the rate is over the whole call (producer
    set-up and final flush included)."""
    from ecommerce_profiles.core import producer

    services.create_topic(topic)
    say(f"produce: {accepted:,} events -> topic {topic} with the DAG's producer")
    error: Exception | None = None
    result: dict[str, Any] = {}
    with PySpy(py_spy_dir, "produce") as spy:
        started = time.perf_counter()
        try:
            result = dict(
                producer.produce_staging_file(
                    staging_path, topic, kafka_config=connections.kafka_config_from_env(), expected_count=accepted
                )
            )
        except Exception as exc:  # noqa: BLE001 - still count what reached the topic
            error = exc
        seconds = time.perf_counter() - started
    in_topic = services.topic_message_count(topic)
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
    say(
        f"produce: {delivered:,} delivered, {in_topic:,} in the topic, lost {out['lost_events']:,}, "
        f"{seconds:.1f}s = {out['produce_events_per_s']:,.0f} events/s"
    )
    if error is not None:
        raise RuntimeError(f"producer failed after {seconds:.1f}s ({in_topic} in topic): {error}") from error
    return out


def stage_baseline(csv_path: Path, topic: str, rows: int, max_events: int | None) -> dict[str, Any]:
    from bench.baseline_producer import produce_baseline

    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python logs every connection at INFO
    services.create_topic(topic)
    limit = None if not max_events or max_events >= rows else max_events
    say(
        f"baseline: kafka-python send() per row -> topic {topic}"
        + (f" (first {limit:,} of {rows:,} rows)" if limit else "")
    )
    result = produce_baseline(
        str(csv_path),
        connections.kafka_config_from_env()["bootstrap.servers"],
        topic,
        max_events=limit,
        progress=lambda sent, secs: say(f"  baseline {sent:,} sent, {sent / secs:,.0f}/s"),
    )
    in_topic = services.topic_message_count(topic)
    out = {
        "baseline_events": result["sent"],
        "baseline_s": round(result["seconds"], 3),
        "baseline_produce_events_per_s": round(result["events_per_s"], 1),
        "baseline_acknowledged": result["acknowledged"],
        "baseline_failed": result["failed"],
        "baseline_topic_messages": in_topic,
        "baseline_lost_events": result["sent"] - in_topic,
    }
    say(
        f"baseline: {result['sent']:,} sent, {result['acknowledged']:,} acknowledged, {result['failed']:,} failed, "
        f"lost {out['baseline_lost_events']:,}, {result['seconds']:.1f}s = {result['events_per_s']:,.0f} events/s"
    )
    return out


# ------------------------------------------------------------------------------------- spark --
def run_spark_job(
    job_args: list[str],
    log_dir: Path,
    extra_conf: Mapping[str, str] | None = None,
    name: str = "spark-job",
    application: Path | None = None,
) -> tuple[float, Path | None, dict[str, float]]:
    """spark-submit of the profile job (or another ``application``) as the DAG's operator submits
    it (the same jars and conf from spark_submit_conf.job_conf, secrets in a 0600 properties file), plus
    an event log. Returns (wall seconds, the event log, CPU seconds per thread group of the
    driver JVM and its Python driver)."""
    from ecommerce_profiles import spark_submit_conf as spark_conf
    from ecommerce_profiles.core.paths import SPARK_JOB_FILE

    lake_settings = connections.lake_settings_from_env()
    es = connections.elasticsearch_settings_from_env()
    event_log_dir = log_dir / "spark-events"
    event_log_dir.mkdir(parents=True, exist_ok=True)
    conf = spark_conf.job_conf(
        spark_conf.s3a_conf(
            lake_settings.endpoint_url, lake_settings.access_key, lake_settings.secret_key, region=lake_settings.region
        ),
        master=SPARK_MASTER,
    )
    conf.update(spark_conf.es_credentials_conf(es.username, es.password))
    conf.update({"spark.eventLog.enabled": "true", "spark.eventLog.dir": event_log_dir.as_uri(), **(extra_conf or {})})
    public, secret = spark_conf.split_secrets(conf)
    secrets_file = spark_conf.write_properties_file(secret)
    cmd = spark_conf.spark_submit_command(
        application or SPARK_JOB_FILE,
        job_args,
        public,
        master=SPARK_MASTER,
        spark_submit=str(Path(sys.executable).parent / "spark-submit"),
    )
    cmd[1:1] = ["--properties-file", str(secrets_file)]
    before = set(event_log_dir.iterdir())
    log_path = log_dir / f"{name}.log"
    started = time.perf_counter()
    try:
        with open(log_path, "w") as log:
            # spark-submit execs spark-class, which execs the driver JVM: the same pid throughout
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ)
            threads = ThreadCpu(proc.pid)
            threads.start()
            proc.wait()
            thread_cpu = threads.stop()
    finally:
        secrets_file.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"spark job failed (exit {proc.returncode}); last lines of {log_path}:\n" + tail(log_path))
    return seconds, analysis.newest_event_log(event_log_dir, before), thread_cpu


def job_args(
    *,
    topic: str,
    starting: str,
    ending: str,
    expected: int | None,
    snapshot_date: str,
    run_date: str,
    batch_id: str,
    bucket: str,
    index: str,
    summary_key: str,
) -> list[str]:
    return [
        "--bootstrap-servers",
        connections.kafka_config_from_env()["bootstrap.servers"],
        "--topic",
        topic,
        "--starting-offsets",
        starting,
        "--ending-offsets",
        ending,
        *(["--expected-records", str(expected)] if expected is not None else []),
        "--snapshot-date",
        snapshot_date,
        "--run-date",
        run_date,
        "--batch-id",
        batch_id,
        "--lake-uri",
        lake.s3_uri(bucket, scheme="s3a"),
        "--es-nodes",
        connections.elasticsearch_settings_from_env().url,
        "--es-index",
        index,
        "--summary-uri",
        summary_key,
    ]


def stage_spark(
    *,
    topic: str,
    offsets: Mapping[str, str],
    expected: int,
    bucket: str,
    index: str,
    snapshot_date: str,
    run_date: str,
    batch_id: str,
    log_dir: Path,
    extra_conf: Mapping[str, str] | None = None,
    name: str = "spark-job",
) -> dict[str, Any]:
    """The job on the produce topic's offsets into a bench bucket and index; wall, the job's
    own summary (start-up, stages, counts) and the event-log analysis."""
    from ecommerce_profiles.core.schemas import es_mapping

    services.es().indices.create(index=index, **es_mapping())
    summary_key = f"{lake.run_evidence_prefix(run_date, lake.safe_token(name))}/{lake.SPARK_SUMMARY_FILE}"
    args = job_args(
        topic=topic,
        starting=offsets["starting_offsets"],
        ending=offsets["ending_offsets"],
        expected=expected,
        snapshot_date=snapshot_date,
        run_date=run_date,
        batch_id=batch_id,
        bucket=bucket,
        index=index,
        summary_key=summary_key,
    )
    say(
        f"spark: customer_profiles.py on {topic} -> s3a://{bucket}, index {index}"
        + (f", extra conf {dict(extra_conf)}" if extra_conf else "")
        + f" (log {shown(log_dir / name)}.log)"
    )
    from ecommerce_profiles.core.paths import SPARK_JOB_FILE

    job_digest = file_digest(SPARK_JOB_FILE)  # the version submitted (the working tree may change meanwhile)
    seconds, event_log, thread_cpu = run_spark_job(args, log_dir, extra_conf, name)
    summary = services.s3_json(bucket, summary_key)
    services.es().indices.refresh(index=index)
    indexed = services.es().count(index=index)["count"]
    job = analysis.job_figures(summary)
    out = {
        "spark_job_s": round(seconds, 3),
        "spark_startup_s": job["startup_s"],
        "spark_total_s": job["total_s"],
        "spark_stage_s": job["stage_s"],
        "spark_counts": job["counts"],
        "spark_profiles": summary["profiles"],
        "spark_events_archived": summary["events_archived"],
        "es_indexed_docs": indexed,
        "es_spark_docs_per_s": analysis.es_docs_per_s(summary, indexed),
        "spark_profile_build": summary.get("profile_build"),
        "spark_extra_conf": dict(extra_conf or {}),
        "spark_job_sha256": job_digest,
        # where the job's CPU went, by thread: JIT compilers, task threads, GC, the Python driver
        "spark_thread_cpu_s": thread_cpu,
    }
    if event_log:
        out["spark_event_log"] = {**analysis.summarise_event_log(event_log), "path": shown(event_log)}
    say(
        f"spark: {seconds:.1f}s wall (start-up {job['startup_s']}s), {summary['profiles']:,} profiles, "
        f"{indexed:,} documents in {index}; stages {job['stage_s']}"
    )
    return out


def stage_spark_floor(*, topic: str, offsets: Mapping[str, str], expected: int, log_dir: Path) -> dict[str, Any]:
    """The floor under any Spark job of the DAG: bench/spark_floor.py (session, count of the
    run's Kafka records, stop), spark-submitted exactly like the profile job."""
    kafka = connections.kafka_config_from_env()["bootstrap.servers"]
    args = [
        "--bootstrap-servers",
        kafka,
        "--topic",
        topic,
        "--starting-offsets",
        offsets["starting_offsets"],
        "--ending-offsets",
        offsets["ending_offsets"],
    ]
    seconds, _event_log, thread_cpu = run_spark_job(
        args, log_dir, name="spark-floor", application=Path(__file__).with_name("spark_floor.py")
    )
    printed = [line for line in (log_dir / "spark-floor.log").read_text().splitlines() if line.startswith("{")]
    figures = json.loads(printed[-1])
    if figures["records"] != expected:
        raise RuntimeError(f"spark floor counted {figures['records']} Kafka records, {expected} were produced")
    say(
        f"spark floor: {seconds:.1f}s wall for a session + a count of {expected:,} Kafka records "
        f"(start-up {figures['startup_s']}s, count {figures['kafka_count_s']}s)"
    )
    return {
        "spark_floor_s": round(seconds, 3),
        "spark_floor_startup_s": figures["startup_s"],
        "spark_floor_kafka_count_s": figures["kafka_count_s"],
        "spark_floor_thread_cpu_s": thread_cpu,
    }


# ------------------------------------------------------------------------------ duckdb, es bulk --
def stage_duckdb(csv_path: Path, snapshot_date: str) -> dict[str, Any]:
    from bench import duckdb_reference

    say("duckdb: reference profiles from the CSV")
    started = time.perf_counter()
    table = duckdb_reference.duckdb_profiles(csv_path, snapshot_date)
    seconds = time.perf_counter() - started
    say(f"duckdb: {table.num_rows:,} profiles in {seconds:.1f}s")
    return {"duckdb_s": round(seconds, 3), "duckdb_profiles": table.num_rows, "_duckdb_table": table}


def stage_es_bulk(table: Any, index: str, max_docs: int) -> dict[str, Any]:
    """Bulk-index profile documents (a pyarrow table) with the official client's helpers.parallel_bulk."""
    from elasticsearch import helpers

    from ecommerce_profiles.core.schemas import PROFILE_COLUMNS, es_mapping

    table = table.slice(0, min(max_docs, table.num_rows))
    docs = []
    for row in table.select([c for c in PROFILE_COLUMNS if c in table.column_names]).to_pylist():
        for key, value in row.items():
            if hasattr(value, "isoformat"):
                row[key] = value.isoformat()
        row["user_id"] = str(row["user_id"])
        docs.append({"_index": index, "_id": row["user_id"], "_source": row})
    es = services.es()
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


# --------------------------------------------------------------------------------------- dag --
def private_pipeline(root: Path, *, topic: str, bucket: str, alias: str) -> dict[str, str]:
    """An environment of its own for ``airflow dags test``: data directory, Airflow metadata DB,
    topic, bucket and alias (the way tests/support/pipeline.py isolates a run)."""
    env = {
        **os.environ,
        "PIPELINE_DATA_DIR": str(root / "data"),
        "AIRFLOW_HOME": str(root / "airflow"),
        "KAFKA_TOPIC": topic,
        "MINIO_BUCKET": bucket,
        "ELASTICSEARCH_INDEX": alias,
    }
    (root / "data").mkdir(parents=True, exist_ok=True)
    if not services.bucket_exists(bucket):
        services.create_bucket(bucket)
    subprocess.run(
        ["bash", str(PROJECT_ROOT / "scripts" / "airflow_db.sh")], check=True, env=env, capture_output=True, timeout=900
    )
    return env


def run_dag(
    env: Mapping[str, str], logical_date: str, conf: Mapping[str, Any] | None, log_path: Path
) -> dict[str, Any]:
    """``airflow dags test`` of the DAG; wall, seconds per task (from the metadata DB through
    Airflow's CLI) and the run's Spark summary (through the date's latest.json in the lake)."""
    from ecommerce_profiles.core.paths import SPARK_JOB_FILE

    job_digest = file_digest(SPARK_JOB_FILE)
    cmd = ["airflow", "dags", "test", DAG_ID, logical_date] + (["-c", json.dumps(conf)] if conf else [])
    say(
        f"dag: {' '.join(cmd[:5])}{' -c ' + json.dumps(conf) if conf else ''} "
        f"(bucket {env['MINIO_BUCKET']}, log {shown(log_path)})"
    )
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(env))
    wall = time.perf_counter() - started
    if proc.returncode != 0 or "Customer profiles as of" not in log_path.read_text(errors="replace"):
        raise RuntimeError(f"DAG run failed (exit {proc.returncode}); see {log_path}:\n" + tail(log_path))
    instances = analysis.task_instances(DAG_ID, logical_date, env)
    bucket = env["MINIO_BUCKET"]
    run_summary = services.s3_json(bucket, lake.latest_run_key(logical_date))
    evidence_prefix = run_summary["evidence"].removeprefix(lake.s3_uri(bucket) + "/")
    spark_summary = services.s3_json(bucket, f"{evidence_prefix}/{lake.SPARK_SUMMARY_FILE}")
    tasks = analysis.task_seconds(instances)
    return {
        "wall_s": round(wall, 3),
        "task_s": tasks,
        "task_span_s": analysis.task_span_s(instances),
        "job_sha256": job_digest,
        "states": {ti["task_id"]: ti["state"] for ti in instances},
        "run_summary": run_summary,
        "spark_summary": spark_summary,
    }


def stage_dag(csv_path: Path, root: Path, *, topic: str, bucket: str, alias: str, logical_date: str) -> dict[str, Any]:
    """The whole DAG on the same CSV as a one-shot file: ``input_path`` relative to the data dir."""
    env = private_pipeline(root, topic=topic, bucket=bucket, alias=alias)
    relative = Path("bench") / csv_path.name
    target = Path(env["PIPELINE_DATA_DIR"]) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(csv_path, target)  # same file system: no copy
    except OSError:
        shutil.copyfile(csv_path, target)
    run = run_dag(env, logical_date, {"input_path": relative.as_posix()}, root / "dag.log")
    job = analysis.job_figures(run["spark_summary"])
    out = {
        "dag_wall_s": run["wall_s"],
        "dag_task_s": run["task_s"],
        # `airflow dags test` start-up, DAG parsing and scheduling between tasks
        "dag_overhead_s": round(run["wall_s"] - sum(run["task_s"].values()), 2),
        "dag_spark_startup_s": job["startup_s"],
        "dag_spark_stage_s": job["stage_s"],
        "dag_job_sha256": run["job_sha256"],
    }
    say(f"dag: {run['wall_s']:.1f}s wall; tasks {run['task_s']}")
    return out


def stage_previous_snapshot(topic: str, bucket: str, alias: str, run_date: str, root: Path) -> dict[str, Any]:
    """The day before the drop, as a daily deployment has it: the profile job run with nothing
    new to archive (an empty offset range, a batch of its own) rebuilds every profile of the
    previous day from the archive and leaves that snapshot and its manifest behind. The drop's run
    can then carry it forward; this run's time is the full rebuild's."""
    from spark_jobs.spark_conf import offsets_json

    previous_date = (date.fromisoformat(run_date) - timedelta(days=1)).isoformat()
    nothing = offsets_json(topic, dict.fromkeys(services.create_topic(topic), 0))
    out = stage_spark(
        topic=topic,
        offsets={"starting_offsets": nothing, "ending_offsets": nothing},
        expected=0,
        bucket=bucket,
        index=f"{alias}_previous",
        snapshot_date=previous_date,
        run_date=previous_date,
        batch_id="bench-previous-day",
        log_dir=root,
        name="previous-snapshot-job",
    )
    say(
        f"daily: the snapshot of {previous_date} rebuilt in full in {out['spark_job_s']:.1f}s "
        f"({out['spark_profile_build']['mode']}); stages {out['spark_stage_s']}"
    )
    return {
        "daily_previous_job_s": out["spark_job_s"],
        "daily_previous_stage_s": out["spark_stage_s"],
        "daily_previous_thread_cpu_s": out["spark_thread_cpu_s"],
        "daily_previous_profile_build": out["spark_profile_build"],
    }


def stage_daily_archive(
    scenario: Mapping[str, Any], scenario_dir: Path, root: Path, *, topic: str, bucket: str, alias: str
) -> dict[str, Any]:
    """The private pipeline environment, and the scenario's archive uploaded to its bucket."""
    env = private_pipeline(root, topic=topic, bucket=bucket, alias=alias)
    started = time.perf_counter()
    files, size = services.upload_tree(scenario_dir / "lake", bucket, "")
    upload_s = round(time.perf_counter() - started, 1)
    say(
        f"daily: archive of {scenario['archive_days']} days ({scenario['archive_events']:,} events, "
        f"{files} files, {size / 1e6:,.1f} MB) uploaded to {bucket} in {upload_s}s"
    )
    return {"_env": env, "daily_archive_upload": {"files": files, "bytes": size}, "archive_upload_s": upload_s}


def stage_daily(scenario: Mapping[str, Any], scenario_dir: Path, root: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """One day's drop through the whole DAG with the scenario's archive behind it."""
    from bench.daily import install_drop

    run_date = scenario["run_date"]
    install_drop(scenario_dir, Path(env["PIPELINE_DATA_DIR"]), run_date)
    run = run_dag(env, run_date, None, root / "daily-dag.log")
    summary = run["spark_summary"]
    job = analysis.job_figures(summary)
    spark_task = run["task_s"].get("build_profiles")
    out = {
        "daily_dag_wall_s": run["wall_s"],
        "daily_spark_job_s": spark_task,
        "daily_spark_total_s": job["total_s"],
        "daily_spark_startup_s": job["startup_s"],
        "daily_spark_stage_s": job["stage_s"],
        "daily_task_s": run["task_s"],
        "daily_job_sha256": run["job_sha256"],
        "daily_task_span_s": run["task_span_s"],
        "daily_overhead_s": round(run["wall_s"] - sum(run["task_s"].values()), 2),
        "daily_counts": job["counts"],
        "daily_counts_expected": scenario["expected"],
        "daily_counts_match": all(summary[k] == v for k, v in scenario["expected"].items()),
        "daily_profile_build": summary.get("profile_build"),
        "_offsets": {
            "starting_offsets": json.dumps(summary["starting_offsets"]),
            "ending_offsets": json.dumps(summary["ending_offsets"]),
            "expected": summary["kafka_records"],
            "batch_id": summary["batch_id"],
            "snapshot_date": summary["snapshot_date"],
        },
    }
    say(
        f"daily: DAG {run['wall_s']:.1f}s wall, build_profiles {spark_task}s; tasks {run['task_s']}; "
        f"job stages {job['stage_s']}; counts as expected: {out['daily_counts_match']}"
    )
    return out
