"""The profile job's reads and deletes in the lake and Kafka: the run's Kafka offset range, the
archive's files and partitions, a snapshot. Spark I/O only; the transformations are elsewhere."""

from __future__ import annotations

import argparse

from pyspark.sql import DataFrame, SparkSession

from ecommerce_profiles.core import lake, profile_manifest
from ecommerce_profiles.core.lake import BATCH_PARTITION
from spark_jobs.archive_transforms import BATCHED_ARCHIVE_SCHEMA
from spark_jobs.profile_transforms import EVENT_DATE, PROFILE_SCHEMA
from spark_jobs.spark_conf import MAGIC_FOLDER, kafka_batch_options
from spark_jobs.spark_io import delete_matching, delete_path, list_files


def read_kafka_range(spark: SparkSession, args: argparse.Namespace, topic_partitions: int) -> DataFrame:
    """The records of the run's offset range [starting, ending) as a bounded batch."""
    return (
        spark.read.format("kafka")
        .options(**kafka_batch_options(args.bootstrap_servers, args.topic, args.starting_offsets, args.ending_offsets))
        # More, smaller read tasks than topic partitions: 3 partitions on 2 cores would leave
        # one core idle for the last third of the read (Spark splits each range evenly).
        .option("minPartitions", str(2 * max(topic_partitions, spark.sparkContext.defaultParallelism)))
        .load()
    )


def delete_write_leftovers(spark: SparkSession, archive_uri: str) -> None:
    """Files a killed earlier write left in its hidden staging folders (plain globbing readers
    would read them); one archive write runs at a time (build_profiles is serialized)."""
    for leftover in (".spark-staging-*", "_temporary", MAGIC_FOLDER):
        delete_matching(spark, f"{archive_uri}/{leftover}")


def archive_partitions_now(spark: SparkSession, archive_uri: str) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """The archive's data files ({relative path: size}) and their (event_date, batch) partitions."""
    files = profile_manifest.archive_files(list_files(spark, archive_uri))
    return files, {key for key in map(lake.archive_file_partition, files) if key}  # archive_files kept data files only


def read_archive(spark: SparkSession, archive_uri: str, dates: list[str] | None = None) -> DataFrame:
    """The archive (or only the given dates' folders: Spark then lists just those)."""
    paths = [f"{archive_uri}/{EVENT_DATE}={d}" for d in dates] if dates is not None else [archive_uri]
    return spark.read.schema(BATCHED_ARCHIVE_SCHEMA).option("basePath", archive_uri).parquet(*paths)


def delete_partitions(spark: SparkSession, archive_uri: str, partitions: list[tuple[str, str]]) -> None:
    for event_date, batch in partitions:
        delete_path(spark, f"{archive_uri}/{EVENT_DATE}={event_date}/{BATCH_PARTITION}={batch}")


def read_snapshot(spark: SparkSession, lake_uri: str, snapshot_date: str) -> DataFrame:
    """The profiles of a snapshot date, as the job wrote them."""
    return spark.read.schema(PROFILE_SCHEMA).parquet(f"{lake_uri}/{lake.snapshot_key(snapshot_date)}")
