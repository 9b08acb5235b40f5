"""The archive's batch semantics, as pure functions on a local SparkSession."""

from __future__ import annotations

import datetime as dt

from spark_jobs.archive_transforms import (
    BATCHED_ARCHIVE_SCHEMA,
    not_yet_archived,
    profile_input,
    with_batch,
)
from spark_jobs.profile_transforms import ARCHIVE_SCHEMA


def _event(second: int, brand: str | None = None, session: str | None = None, day: int = 17):
    return (
        dt.datetime(2020, 11, day, 10, 0, second),
        "view",
        1,
        2,
        None,
        brand,
        1.5,
        7,
        session,
        dt.date(2020, 11, day),
    )


def test_events_another_batch_holds_are_left_out_nulls_included(spark):
    run = spark.createDataFrame([_event(1), _event(2, brand="acme"), _event(3, session="s")], ARCHIVE_SCHEMA)
    elsewhere = spark.createDataFrame([_event(1), _event(3, session="other")], ARCHIVE_SCHEMA)
    new = not_yet_archived(run, elsewhere)
    assert sorted(r.event_time.second for r in new.collect()) == [2, 3]
    assert not_yet_archived(run, None).count() == 3


def test_profile_input_reads_other_batches_and_takes_this_batch_from_the_run(spark):
    archive = spark.createDataFrame(
        [
            (*_event(1, day=16), "drop-2020-11-16"),
            (*_event(2, day=17), "drop-2020-11-17"),
            (*_event(3, day=18), "drop-2020-11-16"),
        ],
        BATCHED_ARCHIVE_SCHEMA,
    )
    run = spark.createDataFrame([_event(4, day=17), _event(5, day=19)], ARCHIVE_SCHEMA)
    events = profile_input(archive, run, "drop-2020-11-17", "2020-11-18")
    # batch drop-2020-11-17's archived copy (second 2) is replaced by the run; day 19 is after the snapshot
    assert sorted(r.event_time.second for r in events.collect()) == [1, 3, 4]
    assert with_batch(run, "b").columns[-1] == "batch"
