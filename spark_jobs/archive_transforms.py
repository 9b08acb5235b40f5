"""The event archive's batch semantics as small pure functions (no I/O).

The archive holds each distinct event once, in ``event_date=<D>/batch=<B>/``: the batch is the
ingest unit that delivered it (``ecommerce_profiles.core.lake``). A run owns its batch: it rewrites
its own partitions and never touches another batch's.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from ecommerce_profiles.core.lake import BATCH_PARTITION, EVENT_DATE_PARTITION
from spark_jobs.profile_transforms import ARCHIVE_SCHEMA

BATCHED_ARCHIVE_SCHEMA = StructType([*ARCHIVE_SCHEMA.fields, StructField(BATCH_PARTITION, StringType(), False)])
ARCHIVE_COLUMNS = [f.name for f in ARCHIVE_SCHEMA.fields]


def archived_by_other_batches(archive: DataFrame, batch_id: str, dates: Iterable[str]) -> DataFrame:
    """The archived events of ``dates`` that other batches own (partition-pruned read)."""
    dates = sorted(set(dates))
    return archive.where(F.col(EVENT_DATE_PARTITION).isin(dates) & (F.col(BATCH_PARTITION) != batch_id)).select(
        *ARCHIVE_COLUMNS
    )


def not_yet_archived(events: DataFrame, archived_elsewhere: DataFrame | None) -> DataFrame:
    """The run's distinct events minus those another batch already holds.

    EXCEPT DISTINCT compares whole rows and treats NULLs as equal (brand, category_code and
    user_session are often empty), which is exactly "the same event". A semi join on
    (user_id, event_time) before it was slower (daily re-run archive stage 9.6-12.7 s -> 12.7-14.1 s):
    reading the other batches' files is the cost, not the comparison.
    """
    events = events.select(*ARCHIVE_COLUMNS)
    if archived_elsewhere is None:
        return events
    return events.subtract(archived_elsewhere.select(*ARCHIVE_COLUMNS))


def with_batch(events: DataFrame, batch_id: str) -> DataFrame:
    return events.withColumn(BATCH_PARTITION, F.lit(batch_id))


def profile_input(archive: DataFrame | None, run_events: DataFrame, batch_id: str, snapshot_date: str) -> DataFrame:
    """Every archived event up to the snapshot date: the other batches from the lake, this
    run's batch from ``run_events`` (just written, so not read back)."""
    mine = run_events.select(*ARCHIVE_COLUMNS).where(F.col(EVENT_DATE_PARTITION) <= F.lit(snapshot_date))
    if archive is None:
        return mine
    others = archive.where(
        (F.col(BATCH_PARTITION) != batch_id) & (F.col(EVENT_DATE_PARTITION) <= F.lit(snapshot_date))
    ).select(*ARCHIVE_COLUMNS)
    return mine.unionByName(others)
