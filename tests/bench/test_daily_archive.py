"""The daily scenario's archive builder writes exactly what the Spark job writes and reads.

The benchmark writes its 150-day archive with pyarrow instead of running the job 150 times, so
the daily figures are only honest if that archive is indistinguishable to the job: the same
``raw/events/event_date=<D>/batch=<B>/`` partitions (parsed by the job's own
``lake.archive_file_partition``), the job's archive columns minus the two partition columns, with the
job's types and nullability, timestamps as INT64 micros UTC (the job's
``spark.sql.parquet.outputTimestampType``), each distinct event once. Small data only.
"""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from bench.daily import DailyScenario, build
from ecommerce_profiles.core import lake
from ecommerce_profiles.core.inputs import DROP_COMPLETE_MARKER
from spark_jobs.archive_transforms import BATCHED_ARCHIVE_SCHEMA
from spark_jobs.profile_transforms import ARCHIVE_SCHEMA, EVENT_DATE

SCENARIO = DailyScenario(archive_days=4, daily_events=300, seed=7, late_share=0.1, redelivered_share=0.05)
# Spark SQL type -> the Parquet logical type Spark writes for it (pyarrow's rendering)
SPARK_TO_ARROW = {"timestamp": "timestamp[us, tz=UTC]", "string": "string", "bigint": "int64", "double": "double"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("daily")
    meta = build(SCENARIO, root, progress=lambda _msg: None)
    return {"meta": meta, "dir": root / SCENARIO.name}


def _files(built) -> list[Path]:
    return sorted((built["dir"] / "lake").rglob("*"))


def test_files_sit_in_the_jobs_partitions(built):
    lake_root = built["dir"] / "lake"
    files = [p for p in _files(built) if p.is_file()]
    assert files and all(p.name.startswith("part-") and p.name.endswith(".snappy.parquet") for p in files)
    relative = [p.relative_to(lake_root).as_posix() for p in files]
    assert all(r.startswith(f"{lake.ARCHIVE_PREFIX}/{lake.EVENT_DATE_PARTITION}=") for r in relative)
    # the job's own parser of archive paths finds one (event_date, batch) per file
    partitions = {lake.archive_file_partition(r.removeprefix(f"{lake.ARCHIVE_PREFIX}/")) for r in relative}
    assert None not in partitions
    assert len(partitions) == len(files) == built["meta"]["archive_partitions"]
    first = date.fromisoformat(SCENARIO.first_day)
    days = {(first + timedelta(days=i)).isoformat() for i in range(SCENARIO.archive_days)}
    assert {d for d, _b in partitions} == days
    # a day's events came with its own drop, or late with the next day's
    for day, batch in partitions:
        next_day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        assert batch in (lake.daily_batch_id(day), lake.daily_batch_id(next_day)), (day, batch)
    assert len({b for _d, b in partitions}) > SCENARIO.archive_days - 1  # late batches exist


def test_columns_types_and_nullability_are_the_jobs(built):
    expected = [f for f in ARCHIVE_SCHEMA.fields if f.name != EVENT_DATE]  # partition columns are not stored
    for path in (p for p in _files(built) if p.is_file()):
        schema = pq.read_schema(path)
        assert schema.names == [f.name for f in expected], path
        for field in expected:
            arrow = schema.field(field.name)
            assert str(arrow.type) == SPARK_TO_ARROW[field.dataType.simpleString()], field.name
            assert arrow.nullable == field.nullable, field.name
        physical = pq.ParquetFile(path).schema.column(0)
        assert physical.physical_type == "INT64" and "isAdjustedToUTC=true" in str(physical.logical_type)
        assert "MICROS" in str(physical.logical_type).upper()
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "SNAPPY"


def test_read_back_with_hive_partitions_each_event_once_on_its_date(built):
    dataset = ds.dataset(built["dir"] / "lake" / lake.ARCHIVE_PREFIX, format="parquet", partitioning="hive")
    table = dataset.to_table()
    assert set(table.column_names) == {f.name for f in BATCHED_ARCHIVE_SCHEMA.fields}
    assert table.num_rows == built["meta"]["archive_events"]
    rows = table.drop_columns([EVENT_DATE, lake.BATCH_PARTITION]).to_pylist()
    assert len({tuple(sorted(r.items())) for r in rows}) == len(rows)  # each distinct event once
    for event_time, event_date in zip(table.column("event_time").to_pylist(), table.column(EVENT_DATE).to_pylist()):
        assert event_time.date().isoformat() == str(event_date)
    nullable = [f.name for f in ARCHIVE_SCHEMA.fields if f.nullable]
    assert all(table.column(name).null_count > 0 for name in ("category_code", "brand"))  # empty -> null
    assert all("" not in table.column(name).to_pylist() for name in nullable)


def test_the_drop_and_the_expected_counts(built):
    meta, folder = built["meta"], built["dir"] / "incoming" / SCENARIO.run_date
    assert (folder / DROP_COMPLETE_MARKER).is_file()
    with open(folder / "events.csv", newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader)[0] == "event_time"
        drop = [tuple(r) for r in reader]
    days = Counter(r[0][:10] for r in drop)
    last_archived = (date.fromisoformat(SCENARIO.run_date) - timedelta(days=1)).isoformat()
    assert days[SCENARIO.run_date] > 0 and days[last_archived] > 0  # its day and the late events
    assert len(drop) == meta["drop_rows"]
    table = ds.dataset(built["dir"] / "lake" / lake.ARCHIVE_PREFIX, format="parquet", partitioning="hive").to_table()
    archived_keys = {
        (t.strftime("%Y-%m-%d %H:%M:%S UTC"), u, s or "")
        for t, u, s in zip(*(table.column(c).to_pylist() for c in ("event_time", "user_id", "user_session")))
    }
    again = {r for r in drop if (r[0], int(r[7]), r[8]) in archived_keys}
    expected = meta["expected"]
    assert expected["already_archived_by_other_batches"] == len(again) > 0
    assert expected["events_in_run"] == len(set(drop)) == expected["kafka_records"]
    assert expected["events_archived"] == expected["events_in_run"] - len(again)
    assert expected["archive_events_total"] == meta["archive_events"] + expected["events_archived"]


def test_a_second_build_is_the_cached_one(built):
    again = build(SCENARIO, built["dir"].parent, progress=lambda _msg: None)
    assert again["cached"] is True and again["archive_events"] == built["meta"]["archive_events"]


def test_spark_reads_it_with_the_jobs_schema(built, spark):
    """The job's read (archive_state): explicit schema, basePath, partitions from inputFiles()."""
    root = (built["dir"] / "lake" / lake.ARCHIVE_PREFIX).as_uri()
    archive = spark.read.schema(BATCHED_ARCHIVE_SCHEMA).option("basePath", root).parquet(root)
    assert archive.count() == built["meta"]["archive_events"]
    assert archive.distinct().count() == built["meta"]["archive_events"]
    read = {lake.archive_file_partition(uri.split(f"/{lake.ARCHIVE_PREFIX}/", 1)[1]) for uri in archive.inputFiles()}
    assert None not in read and len(read) == built["meta"]["archive_partitions"]
    nulls = archive.where(" OR ".join(f"{f.name} IS NULL" for f in BATCHED_ARCHIVE_SCHEMA.fields if not f.nullable))
    assert nulls.count() == 0
    mismatched = archive.where("to_date(event_time) != event_date")  # the session time zone is UTC
    assert mismatched.count() == 0
