"""S3A committer benchmark: the archive's first write with the classic committer vs the magic one.

    python -m bench.committers --events 100000 --dates 150 --rounds 2

Issue 14 asks for "a committer that writes straight to MinIO without rename copies (the S3A magic
or staging committer from spark-hadoop-cloud) ... measure each; keep only what the figures
support". The job's archive write is an append of one file per (event_date, batch) partition;
this measures exactly that shape in a fresh local[2] driver with the job's conf
(``spark_submit_conf.job_conf``), into a fresh MinIO bucket, for:

  classic  the job's conf: FileOutputCommitter, algorithm 2 (task commit renames = COPY + DELETE)
  magic    the S3A magic committer through spark-hadoop-cloud's PathOutputCommitProtocol and
           BindingParquetOutputCommitter (files are multipart uploads completed at job commit)

Each child process writes the same generated events twice: ``first`` is the fresh JVM's first
write (what a job run pays), ``second`` the same write warm. Per write: wall seconds, CPU
seconds of the driver JVM and of the MinIO server (robust to the machine's load), the S3A
request counters of the bucket's FileSystem (HEAD, LIST, PUT, COPY, DELETE, ...), and a check
that the written data reads back as every event in one file per date. Variants alternate
(classic, magic, classic, magic, ...) so a change of machine load hits both alike.

Both variants run with the job's jars (spark-hadoop-cloud among them, scripts/spark_jars.sh).
Writes bench/results/committers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.system import code_version, load_1m, machine_info, say, versions

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = PROJECT_ROOT / "bench" / "results" / "committers.json"


def magic_conf() -> dict[str, str]:
    """The job's magic-committer settings (spark_conf), here for the whole session."""
    from spark_jobs.spark_conf import MAGIC_COMMIT_SQL_CONF, magic_commit_options

    return {**MAGIC_COMMIT_SQL_CONF, **{f"spark.hadoop.{k}": v for k, v in magic_commit_options().items()}}


# The S3A counters worth reading (the FileSystem keeps dozens).
REQUEST_COUNTERS = (
    "store_io_request",
    "object_metadata_request",
    "object_list_request",
    "object_put_request",
    "object_copy_requests",
    "object_delete_request",
    "object_bulk_delete_request",
    "object_multipart_initiated",
    "directories_created",
    "files_created",
    "op_rename",
)


# ------------------------------------------------------------------------------ child process --
def child(variant: str, events: int, dates: int, bucket: str) -> dict[str, Any]:
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from ecommerce_profiles.spark_submit_conf import job_conf, s3a_conf_from_env

    conf = job_conf(s3a_conf_from_env(), master="local[2]", ui_enabled=False)
    if variant == "magic":
        conf.update(magic_conf())  # spark-hadoop-cloud is one of the job's jars (scripts/spark_jars.sh)
    builder = SparkSession.builder.master("local[2]").appName(f"committers-{variant}")
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    root = f"s3a://{bucket}/{variant}-{uuid.uuid4().hex[:6]}"
    # Events spread over the dates and grouped by date as the job's deduplication leaves them.
    frame = (
        spark.range(events)
        .select(
            F.date_add(F.lit("2020-09-24").cast("date"), (F.col("id") % dates).cast("int")).alias("event_date"),
            F.col("id").alias("user_id"),
            F.lit("view").alias("event_type"),
            (F.col("id") * 0.25).alias("price"),
        )
        .repartition(4, "event_date")
        .cache()
    )
    frame.count()
    path = spark._jvm.org.apache.hadoop.fs.Path(root)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def counters() -> dict[str, int]:
        out, it = {}, fs.getStorageStatistics().getLongStatistics()
        while it.hasNext():
            stat = it.next()
            out[stat.getName()] = int(stat.getValue())
        return out

    from bench.system import server_cpu_seconds, stat_cpu_seconds, stat_fields

    jvm_stat = Path(f"/proc/{spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()}/stat")

    def jvm_cpu_s() -> float:
        return stat_cpu_seconds(stat_fields(jvm_stat.read_text()))

    writes = {}
    for label in ("first", "second"):
        target = f"{root}/{label}"
        before = counters()
        cpu_before, minio_before = jvm_cpu_s(), server_cpu_seconds().get("minio", 0.0)
        started = time.perf_counter()
        frame.withColumn("batch", F.lit("bench")).write.partitionBy("event_date", "batch").mode("append").parquet(
            target
        )
        seconds = time.perf_counter() - started
        # CPU seconds barely depend on how busy the machine is, unlike the wall time.
        cpu_s, minio_cpu_s = jvm_cpu_s() - cpu_before, server_cpu_seconds().get("minio", 0.0) - minio_before
        after = counters()
        back = spark.read.parquet(target)
        files = back.inputFiles()
        writes[label] = {
            "seconds": round(seconds, 3),
            "driver_cpu_s": round(cpu_s, 2),
            "minio_cpu_s": round(minio_cpu_s, 2),
            "requests": {k: after.get(k, 0) - before.get(k, 0) for k in REQUEST_COUNTERS},
            "rows_read_back": back.count(),
            "files": len(files),
            "one_file_per_date": len(files) == len({f.split("event_date=")[1].split("/")[0] for f in files}) == dates,
        }
    fs.delete(path, True)
    spark.stop()
    return writes


# ----------------------------------------------------------------------------------- parent --
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--dates", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS_PATH)
    parser.add_argument("--child", choices=["classic", "magic"], help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.events, args.dates, args.bucket)), flush=True)
        return 0

    from bench import services

    bucket = f"{os.environ.get('MINIO_BUCKET', 'datalake')}-bench-committers-{uuid.uuid4().hex[:6]}"
    services.create_bucket(bucket)
    machine = machine_info()  # its speed probe before the writes, not after
    runs: list[dict[str, Any]] = []
    try:
        for round_no in range(args.rounds):
            for variant in ("classic", "magic"):
                load_before = load_1m()
                started = time.perf_counter()
                proc = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.committers",
                        "--child",
                        variant,
                        "--bucket",
                        bucket,
                        "--events",
                        str(args.events),
                        "--dates",
                        str(args.dates),
                    ],
                    capture_output=True,
                    text=True,
                    cwd=PROJECT_ROOT,
                )
                if proc.returncode != 0:
                    raise RuntimeError(f"{variant} child failed:\n{proc.stderr[-3000:]}")
                writes = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
                for label, write in writes.items():
                    if write["rows_read_back"] != args.events or not write["one_file_per_date"]:
                        raise RuntimeError(f"{variant} {label} write is wrong: {write}")
                runs.append(
                    {
                        "variant": variant,
                        "round": round_no,
                        "process_s": round(time.perf_counter() - started, 1),
                        "load_1m_before": load_before,
                        "load_1m_after": load_1m(),
                        **writes,
                    }
                )
                say(
                    f"{variant} round {round_no}: first write {writes['first']['seconds']} s "
                    f"({writes['first']['driver_cpu_s']} CPU-s, MinIO {writes['first']['minio_cpu_s']}), second "
                    f"{writes['second']['seconds']} s ({writes['second']['driver_cpu_s']} CPU-s, MinIO "
                    f"{writes['second']['minio_cpu_s']}), {writes['first']['requests']['store_io_request']} S3 requests"
                )
    finally:
        services.delete_bucket(bucket)
    result = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "versions": versions(),
        "code": code_version(),
        "events": args.events,
        "dates": args.dates,
        "runs": runs,
        "magic_conf": magic_conf(),
    }
    args.results.write_text(json.dumps(result, indent=1) + "\n")
    say(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
