"""What spark-submit needs for the project's jobs: connector jars, s3a endpoint and keys, JVM and
SQL settings, and secrets kept off the command line.

Plain functions of plain values (endpoint, credentials, paths): the operators feed them values
from Airflow connections, the tests from the environment (.env). Nothing here imports Airflow or
pyspark, so the DAG processor imports it cheaply. The Spark side never imports this module:
jobs are referenced by file path (``core.paths``) and get everything through their conf.

Connector jars come from the local cache that ``scripts/spark_jars.sh`` fills
(``local_jars``); no job resolves packages at run time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

# 2 local cores: a few shuffle partitions per core keep tasks busy without tiny-task overhead
# (Spark's default of 200 costs seconds of scheduling on a laptop-sized dataset).
DEFAULT_SHUFFLE_PARTITIONS = 4
DEFAULT_DRIVER_MEMORY = "2g"
PARALLEL_GC = "-XX:+UseParallelGC"


def local_jars(jars_dir: str | os.PathLike | None = None) -> list[str]:
    """Absolute paths of the cached connector jars (sorted), for ``--jars`` / ``spark.jars``.

    ``jars_dir`` defaults to $SPARK_JARS_DIR. Raises if the cache is empty, so a job never
    starts without its connectors (and never falls back to downloading them).
    """
    directory = Path(jars_dir or os.environ.get("SPARK_JARS_DIR", ".cache/spark-jars")).resolve()
    jars = sorted(str(p) for p in directory.glob("*.jar"))
    if not jars:
        raise FileNotFoundError(f"no connector jars in {directory}: run scripts/spark_jars.sh")
    return jars


def s3a_conf(
    endpoint_url: str,
    access_key: str,
    secret_key: str,
    region: str = "us-east-1",
) -> dict[str, str]:
    """``spark.hadoop.fs.s3a.*`` settings for an S3-compatible store such as MinIO."""
    scheme = urlsplit(endpoint_url).scheme or "https"
    prefix = "spark.hadoop.fs.s3a."
    return {
        prefix + "endpoint": endpoint_url,
        # MinIO serves buckets as paths (http://host:9000/bucket), not as virtual hosts.
        prefix + "path.style.access": "true",
        prefix + "connection.ssl.enabled": "true" if scheme == "https" else "false",
        # A custom endpoint has no region to derive; without one the SDK guesses and warns.
        prefix + "endpoint.region": region,
        prefix + "access.key": access_key,
        prefix + "secret.key": secret_key,
        # Only the given keys: the default chain would also probe EC2 instance metadata.
        prefix + "aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        prefix + "impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        # The classic rename-based committer by default: the S3A committers do not support
        # dynamic partition overwrite (an archive rerun); MinIO is strongly consistent, so
        # rename (copy + delete) is correct, just more requests. Algorithm 2 moves task output
        # into place at task commit: one copy per file instead of two (dynamic overwrite
        # already stages the whole job in a hidden directory; a failed snapshot write leaves
        # files that the retry's overwrite deletes). A batch's first archive write, an append,
        # uses the magic committer instead (MAGIC_COMMIT_SQL_CONF / magic_commit_options).
        prefix + "committer.name": "file",
        prefix + "committer.magic.enabled": "true",
        "spark.hadoop.mapreduce.fileoutputcommitter.algorithm.version": "2",
        # Hadoop 3.3 deletes the parent "directory marker" objects after every file it writes;
        # keeping them saves a round of requests per file (readers of the lake ignore them).
        prefix + "directory.marker.retention": "keep",
        # Buffer uploads in memory, not in temp files (parts are small; heap is plenty).
        prefix + "fast.upload.buffer": "bytebuffer",
        # No _SUCCESS objects in the lake: readers (DuckDB, pyarrow) would trip over them.
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    }


def s3a_conf_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """``s3a_conf`` from the .env variables of the local stack (MINIO_ENDPOINT, MINIO_ROOT_*)."""
    return s3a_conf(environ["MINIO_ENDPOINT"], environ["MINIO_ROOT_USER"], environ["MINIO_ROOT_PASSWORD"])


def is_local_master(master: str | None) -> bool:
    return master is not None and (master == "local" or master.startswith("local["))


def jars_conf(jars: list[str], master: str | None = None) -> dict[str, str]:
    """How the connector jars reach the driver and the executors.

    ``spark.jars`` (what ``--jars`` sets) works for every master: the driver serves the jars to
    its executors. A *local* master runs the executors inside the driver JVM, so there the jars
    go on the JVM class path at launch instead: with ``spark.jars`` Spark would copy every jar
    (the 270 MB AWS SDK bundle included) through its file server into a temp dir on each run.
    ``master=None`` (unknown) takes the choice that works everywhere.
    """
    if is_local_master(master):
        return {"spark.driver.extraClassPath": os.pathsep.join(jars)}
    return {"spark.jars": ",".join(jars)}


def job_conf(
    s3a: Mapping[str, str],
    master: str | None = None,
    jars_dir: str | os.PathLike | None = None,
    driver_memory: str | None = None,
    shuffle_partitions: int = DEFAULT_SHUFFLE_PARTITIONS,
    ui_enabled: bool = True,
) -> dict[str, str]:
    """Every ``--conf`` the profile job needs (pass to SparkSubmitOperator(conf=...) or spark-submit).

    ``s3a`` is the result of ``s3a_conf``; ``master`` the one the job is submitted to (pass it:
    a local master gets the jars on the class path, see ``jars_conf``); ``driver_memory``
    defaults to $SPARK_DRIVER_MEMORY.
    """
    conf = jars_conf(local_jars(jars_dir), master)
    conf.update(
        {
            "spark.driver.memory": driver_memory or os.environ.get("SPARK_DRIVER_MEMORY", DEFAULT_DRIVER_MEMORY),
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.shuffle.partitions": str(shuffle_partitions),
            # Overwrites replace only the partitions a write touches (the run's event dates).
            "spark.sql.sources.partitionOverwriteMode": "dynamic",
            "spark.ui.enabled": "true" if ui_enabled else "false",
            # HotSpot never JIT-compiles a method over 8000 bytecodes; Spark's default limit (65535)
            # lets the generated code of the wide profile aggregation run interpreted. With 8000
            # Spark splits or falls back instead (Spark's docs recommend it on HotSpot): -20% on
            # the profile stage at 885k events.
            "spark.sql.codegen.hugeMethodLimit": "8000",
            # Adaptive execution re-plans the query after every shuffle and runs each stage as its
            # own job: for this job's few, evenly hashed shuffles (partitions sized from the input,
            # spark_io.scaled_shuffle_partitions) that is driver time and JIT work for nothing.
            # Daily re-run 65.1 -> 58.2 s, 94 -> 78 CPU-s; 885k neutral (bench/results/ab-aqe-885129.json).
            "spark.sql.adaptive.enabled": "false",
            # The driver lists the archive's folders itself: above 32 folders (one per event date)
            # Spark would run a listing job of one task per folder, seconds of task overhead for
            # what is a few milliseconds per LIST on the object store.
            "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
            # The parallel (throughput) collector instead of G1: a batch job has no pause goal, and
            # G1's concurrent work competes with the tasks for two cores. 885k, alternating: 73.7 /
            # 68.8 -> 63.0 / 65.2 s (bench/results/ab-parallelgc-885129.json); daily re-run 64.3 -> 60.8 s.
            # Measured, not adopted (alternating A/Bs): C1-only JIT (-XX:TieredStopAtLevel=1) less
            # CPU but more wall (daily re-run 66 -> 71-75 s); C2 only 165 s vs 138 s at 885k; AppCDS
            # -1.4 s start-up for a 183 MB archive per class path; local[4] on 2 cores,
            # spark.sql.codegen.wholeStage=false and an uncompressed in-memory cache: no gain at 100k.
            "spark.driver.extraJavaOptions": PARALLEL_GC,
            "spark.executor.extraJavaOptions": PARALLEL_GC,
            # Parquet timestamps as INT64 micros (Spark's default is legacy INT96) so DuckDB and
            # pyarrow read them as-is.
            "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        }
    )
    if is_local_master(master):
        # Everything stays on loopback: otherwise the driver binds to the host's first
        # non-loopback interface (and warns that the host name resolves to 127.0.0.1).
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    conf.update(s3a)
    return conf


# Conf keys that hold secrets: they go into a 0600 properties file, never on a command line.
SECRET_CONF_KEYS = frozenset(
    {
        "spark.hadoop.fs.s3a.access.key",
        "spark.hadoop.fs.s3a.secret.key",
        "spark.es.net.http.auth.user",
        "spark.es.net.http.auth.pass",
    }
)


def es_credentials_conf(user: str | None, password: str | None) -> dict[str, str]:
    """Elasticsearch basic auth for the es-hadoop writer, as Spark conf (``spark.es.*`` is read
    by the connector like its own ``es.*`` options), so the job's options carry no secret."""
    if not user:
        return {}
    return {"spark.es.net.http.auth.user": user, "spark.es.net.http.auth.pass": password or ""}


def split_secrets(conf: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(public conf for --conf, secret conf for the properties file)."""
    public = {k: v for k, v in conf.items() if k not in SECRET_CONF_KEYS}
    secret = {k: v for k, v in conf.items() if k in SECRET_CONF_KEYS}
    return public, secret


def write_properties_file(conf: Mapping[str, str], directory: str | os.PathLike | None = None) -> Path:
    """Write ``conf`` as a spark-submit ``--properties-file`` readable by its owner only (0600).

    Java properties syntax: ``key value`` per line, with backslash, ':', '=' and leading
    spaces escaped. The caller deletes the file when spark-submit has ended.
    """
    import tempfile

    def escape(text: str) -> str:
        return (
            text.replace("\\", "\\\\")
            .replace("\n", "\\n")
            .replace(":", "\\:")
            .replace("=", "\\=")
            .replace("#", "\\#")
            .replace("!", "\\!")
        )

    fd, name = tempfile.mkstemp(prefix="spark-secrets-", suffix=".properties", dir=directory)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        for key, value in sorted(conf.items()):
            text = escape(str(value))
            if text.startswith((" ", "\t")):  # leading blanks would be skipped by the reader
                text = "\\" + text
            handle.write(f"{escape(key)} {text}\n")
    return Path(name)


def spark_submit_conf_args(conf: Mapping[str, str]) -> list[str]:
    """``--conf key=value`` arguments for a spark-submit command line."""
    args: list[str] = []
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    return args


def spark_submit_command(
    application: str | os.PathLike,
    application_args: list[str],
    conf: Mapping[str, str],
    master: str = "local[2]",
    spark_submit: str = "spark-submit",
) -> list[str]:
    """A spark-submit argv (for scripts and tests; the DAG uses SparkSubmitOperator instead).

    The connector jars are in ``conf`` (see ``job_conf`` / ``jars_conf``).
    """
    return [spark_submit, "--master", master, *spark_submit_conf_args(conf), str(application), *application_args]
