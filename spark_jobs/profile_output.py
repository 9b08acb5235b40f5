"""The finished profiles as their stores take them: the profile contract check, the
Elasticsearch row shape, and the layout of the rows over the writers (pure DataFrame functions)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ecommerce_profiles.core.schemas import PROFILE_COLUMNS, PROFILE_FIELDS
from spark_jobs.spark_types import spark_schema

# The fewest Parquet files of a fully built snapshot and concurrent Elasticsearch bulk writers:
# the snapshot is small (one row per user) and two writers keep a 2-core single-node stack busy.
# A cluster with more task slots gets one writer per slot (writer_count); an incremental build
# keeps its own partitions (writer_partitions).
SNAPSHOT_PARTITIONS = 2


def check_profile_schema(profiles: DataFrame) -> DataFrame:
    """The profile contract: exactly PROFILE_FIELDS, in order, with their types."""
    profiles = profiles.select(*PROFILE_COLUMNS)
    expected = {f.name: f.dataType for f in spark_schema(PROFILE_FIELDS).fields}
    actual = {f.name: f.dataType for f in profiles.schema.fields}
    if actual != expected:
        wrong = {n: (str(actual.get(n)), str(t)) for n, t in expected.items() if actual.get(n) != t}
        raise ValueError(
            f"profiles do not match ecommerce_profiles.core.schemas PROFILE_FIELDS (actual, expected): {wrong}"
        )
    return profiles


def for_elasticsearch(profiles: DataFrame) -> DataFrame:
    """Profile rows as the index mapping expects them.

    user_id is a keyword (19-digit ids exceed what JSON numbers keep exactly in Kibana), dates
    are ``strict_date`` strings and timestamps ISO-8601 UTC strings, so nothing depends on how
    the connector serialises Spark date/timestamp values.
    """
    columns = []
    for field in PROFILE_FIELDS:
        column = F.col(field.name)
        if field.name == "user_id":
            column = column.cast("string")
        elif field.type == "date":
            column = F.date_format(column, "yyyy-MM-dd")
        elif field.type == "timestamp":
            # The session time zone is UTC (job_conf), so 'Z' is exact.
            column = F.date_format(column, "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'")
        columns.append(column.alias(field.name))
    return profiles.select(*columns)


def writer_count(task_slots: int) -> int:
    """One snapshot file and Elasticsearch writer per task slot of the job, at least SNAPSHOT_PARTITIONS."""
    return max(SNAPSHOT_PARTITIONS, task_slots)


def writer_partitions(profiles: DataFrame, incremental: bool, writers: int = SNAPSHOT_PARTITIONS) -> DataFrame:
    """The profiles in parts of about equal size for the snapshot's files and the Elasticsearch
    bulk writers, so that every writer task works to the end, without another shuffle.

    A full build's rows come from the aggregation's hash partitions, which are even: they are
    merged into ``writers`` parts. An incremental build's are the earlier snapshot's file
    splits (even: written this way) and the changed users' few small partitions; they stay as
    they are. Merging them (coalesce merges partitions by count, not size) gave one writer
    413,818 of 416,470 profiles in the daily benchmark.
    """
    return profiles if incremental else profiles.coalesce(writers)
