"""I/O helpers shared by the Spark jobs: single objects through the Hadoop FileSystem (s3a),
the shuffle size rule, the JSON summary. No transformations here (those are pure, elsewhere)."""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from typing import Any

from pyspark.sql import DataFrame, Row, SparkSession

from spark_jobs.spark_conf import MAGIC_COMMIT_SQL_CONF, magic_commit_options

# ~1 shuffle partition per 600k input events, for the read's collapse and the profiles alike:
# at 20M events 4 read partitions spilled 6.9 GB, 34 none (job 717 -> 620 s, ab-read-partitions-20000000.json).
EVENTS_PER_SHUFFLE_PARTITION = 600_000
# The archive's Parquet takes ~35 bytes per event (898,873 generated events in 31.0 MB): the
# profile job sizes its shuffle from the archive's file sizes instead of counting the rows.
ARCHIVE_BYTES_PER_EVENT = 35


@contextmanager
def magic_commit(spark: SparkSession):
    """Writes started inside use the S3A magic committer: sets its commit protocol on the session
    and yields the Hadoop options the writer must also get (``writer.options(**options)``); the
    session's own settings come back after."""
    saved = {key: spark.conf.get(key, None) for key in MAGIC_COMMIT_SQL_CONF}
    for key, value in MAGIC_COMMIT_SQL_CONF.items():
        spark.conf.set(key, value)
    try:
        yield magic_commit_options()
    finally:
        for key, previous in saved.items():
            if previous is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, previous)


def jvm(spark: SparkSession) -> Any:
    """The driver JVM's py4j gateway view (None only once the context has stopped)."""
    gateway = spark.sparkContext._jvm
    if gateway is None:
        raise RuntimeError("the SparkContext has stopped: no JVM to call")
    return gateway


def single_row(frame: DataFrame) -> Row:
    """The one row of a global aggregation (``first()`` is typed Optional; an aggregation has a row)."""
    row = frame.first()
    if row is None:
        raise RuntimeError("a global aggregation returned no row")
    return row


def hadoop_path(spark: SparkSession, uri: str):
    """(Hadoop Path, its FileSystem) for ``uri``, with the session's s3a settings."""
    path = jvm(spark).org.apache.hadoop.fs.Path(uri)
    return path, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def path_exists(spark: SparkSession, uri: str) -> bool:
    path, fs = hadoop_path(spark, uri)
    return bool(fs.exists(path))


def delete_path(spark: SparkSession, uri: str) -> None:
    path, fs = hadoop_path(spark, uri)
    fs.delete(path, True)


def delete_matching(spark: SparkSession, pattern: str) -> int:
    """Delete every path matching a Hadoop glob (e.g. ``s3a://b/raw/events/.spark-staging-*``)."""
    path, fs = hadoop_path(spark, pattern)
    matches = fs.globStatus(path) or []
    for status in matches:
        fs.delete(status.getPath(), True)
    return len(matches)


def list_files(spark: SparkSession, uri: str) -> dict[str, int]:
    """{path relative to ``uri``: size} of every file below ``uri`` ({} when it does not exist).

    One recursive listing (on S3A a flat LIST of the prefix), not a Spark job per folder.
    """
    root, fs = hadoop_path(spark, uri)
    if not fs.exists(root):
        return {}
    prefix = fs.makeQualified(root).toString().rstrip("/") + "/"
    found = {}
    files = fs.listFiles(root, True)
    while files.hasNext():
        status = files.next()
        path = status.getPath().toString()
        found[path[len(prefix) :] if path.startswith(prefix) else path] = int(status.getLen())
    return found


def read_text(spark: SparkSession, uri: str) -> str:
    """One object's text through the Hadoop FileSystem (commons-io ships with Spark)."""
    path, fs = hadoop_path(spark, uri)
    stream = fs.open(path)
    try:
        return jvm(spark).org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """Write one object (not a Spark output directory) through the Hadoop FileSystem (s3a)."""
    path, fs = hadoop_path(spark, uri)
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def write_summary(spark: SparkSession, uri: str, summary: dict, log: logging.Logger) -> None:
    text = json.dumps(summary, indent=2, sort_keys=True)
    write_text(spark, uri, text + "\n")
    log.info("summary written to %s:\n%s", uri, text)


def shuffle_partitions_for(events: int, configured: int) -> int:
    """~1 shuffle partition per 600k events, never fewer than ``configured``."""
    return max(configured, -(-events // EVENTS_PER_SHUFFLE_PARTITION))


def scaled_shuffle_partitions(spark: SparkSession, events: int) -> int:
    """Raise spark.sql.shuffle.partitions with the input: ~1 partition per 600k events.

    The configured value (4 on the local stack) suits a daily drop; never lowered.
    """
    wanted = shuffle_partitions_for(events, int(spark.conf.get("spark.sql.shuffle.partitions") or 0))
    spark.conf.set("spark.sql.shuffle.partitions", str(wanted))
    return wanted
