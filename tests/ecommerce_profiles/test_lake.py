"""The archive's file layout as every reader parses it (ecommerce_profiles.core.lake)."""

from __future__ import annotations

from ecommerce_profiles.core.lake import archive_event_dates, archive_file_partition


def test_archive_files_name_their_date_and_batch():
    assert archive_file_partition("event_date=2020-10-01/batch=drop-2020-10-02/part-00000-x.snappy.parquet") == (
        "2020-10-01",
        "drop-2020-10-02",
    )


def test_staging_folders_markers_and_stray_objects_are_not_archive_files():
    for path in (
        ".spark-staging-1/event_date=2020-10-01/batch=b/part-0.parquet",  # a crashed overwrite
        "_temporary/0/event_date=2020-10-01/batch=b/part-0.parquet",
        "event_date=2020-10-01/batch=b/_SUCCESS",
        "event_date=2020-10-01/batch=b/.part-0.parquet.crc",
        "event_date=2020-10-01/part-0.parquet",  # no batch
        "event_date=2020-13/batch=b/part-0.parquet",
        "raw/events/event_date=2020-10-01/batch=b/part-0.parquet",
    ):  # not relative to the root
        assert archive_file_partition(path) is None, path


def test_event_dates_are_distinct_sorted_and_only_from_data_files():
    paths = [
        "event_date=2020-10-02/batch=a/part-0.parquet",
        "event_date=2020-10-01/batch=a/part-0.parquet",
        "event_date=2020-10-02/batch=b/part-0.parquet",
        "event_date=2020-10-03/batch=c/_SUCCESS",
    ]
    assert archive_event_dates(paths) == ["2020-10-01", "2020-10-02"]
    assert archive_event_dates([]) == []
