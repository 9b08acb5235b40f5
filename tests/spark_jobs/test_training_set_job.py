"""End to end: spark_jobs/training_set.py via spark-submit against MinIO.

A small archive (the hand-worked events of test_label_transforms.py, with one event stored by two
batches) is written with pyarrow into a fresh uuid-named bucket, laid out exactly like the
profile job's archive (``raw/events/event_date=D/batch=B/*.parquet``). One run builds the
training set for S = 2020-10-10 (7-day purchase, 30-day revenue labels); its output is read
back with pyarrow, pandas and DuckDB. A second run asks for a snapshot whose label window the
archive does not cover yet and must refuse, writing nothing. Two spark-submits in all.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import uuid
from collections import defaultdict
from pathlib import Path

import boto3
import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.fs
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.arrow import ArrowFSWrapper
from spark_io_support import MASTER, PROJECT_ROOT, list_files, minio_filesystem, run_spark_submit
from test_label_transforms import FEATURE_EVENTS, PLANTED_EVENTS, S

from ecommerce_profiles.core import lake
from ecommerce_profiles.core.paths import TRAINING_SET_JOB_FILE
from ecommerce_profiles.core.schemas import PROFILE_COLUMNS
from ecommerce_profiles.spark_submit_conf import job_conf, s3a_conf_from_env, spark_submit_command
from spark_jobs.label_transforms import LabelHorizons, training_set_columns
from spark_jobs.training_set import (
    EXIT_NOT_READY,
    TrainingSetNotReady,
    check_ready,
    parse_args,
    summary_key,
)
from tests.support.lake_seed import archive_file_key, events_table

JOB = TRAINING_SET_JOB_FILE
SECOND_BATCH = "file-extra-0123456789"
# One event (user 1's 20.00 purchase in the last second of S+7) delivered again by another batch.
REDELIVERED = [e for e in PLANTED_EVENTS if e["price"] == 20.0]


# --------------------------------------------------------------------------------- no Spark --
def test_readiness_rule():
    dates = [dt.date(2020, 10, 1), dt.date(2020, 11, 9)]
    check_ready(dates, S, LabelHorizons())  # window ends on S + 30 = 2020-11-09: complete
    with pytest.raises(
        TrainingSetNotReady, match=r"labels not complete yet .* ends on 2020-11-10 .* last event date is 2020-11-09"
    ):
        check_ready(dates, S + dt.timedelta(days=1), LabelHorizons())
    with pytest.raises(TrainingSetNotReady, match="no history"):
        check_ready(dates, dt.date(2020, 9, 1), LabelHorizons(7, 7))
    with pytest.raises(TrainingSetNotReady, match="empty"):
        check_ready([], S, LabelHorizons())


def test_arguments():
    args = parse_args(["--lake-uri", "s3a://lake/", "--snapshot-date", "2020-10-10", "--revenue-horizon-days", "14"])
    assert args.lake_uri == "s3a://lake"
    assert args.horizons == LabelHorizons(7, 14)
    assert (
        args.summary_uri
        == "s3a://lake/training_sets/_summaries/snapshot_date=2020-10-10.json"
        == "s3a://lake/" + summary_key("2020-10-10")
    )
    with pytest.raises(SystemExit):
        parse_args(["--lake-uri", "s3a://lake", "--snapshot-date", "2020-10-10", "--purchase-horizon-days", "0"])


# ------------------------------------------------------------------------------ the stack --
@pytest.fixture(scope="module")
def bucket(stack):
    name = f"training-set-test-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=stack["minio"],
        aws_access_key_id=os.environ["MINIO_ROOT_USER"],
        aws_secret_access_key=os.environ["MINIO_ROOT_PASSWORD"],
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=name)
    yield name
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=item["Key"])
    s3.delete_bucket(Bucket=name)


@pytest.fixture(scope="module")
def fs() -> pyarrow.fs.S3FileSystem:
    return minio_filesystem()


def _write(fs, path: str, rows: list[dict]) -> None:
    pq.write_table(events_table(rows), path, filesystem=fs)


@pytest.fixture(scope="module")
def lake_root(bucket, fs) -> str:
    """The archive, one daily-drop batch per event date plus a second batch holding a re-delivery;
    a stale file in the partition the run replaces and another snapshot date it must keep."""
    by_date = defaultdict(list)
    for e in FEATURE_EVENTS + PLANTED_EVENTS:
        by_date[e["event_time"].date()].append(e)
    for day, rows in by_date.items():
        _write(fs, f"{bucket}/{archive_file_key(day, f'drop-{day}')}", rows)
    day = REDELIVERED[0]["event_time"].date()
    _write(fs, f"{bucket}/{archive_file_key(day, SECOND_BATCH)}", REDELIVERED)
    pq.write_table(
        pa.table({"stale": [1]}), f"{bucket}/{lake.training_set_key(S.isoformat())}/part-stale.parquet", filesystem=fs
    )
    pq.write_table(
        pa.table({"keep": [1]}), f"{bucket}/{lake.training_set_key('2020-10-01')}/part-00000.parquet", filesystem=fs
    )
    return bucket


@pytest.fixture(scope="module")
def first_run(lake_root, fs, tmp_path_factory) -> dict:
    log = tmp_path_factory.mktemp("training_set") / "run.log"
    run_spark_submit(
        JOB,
        [
            "--lake-uri",
            f"s3a://{lake_root}",
            "--snapshot-date",
            S.isoformat(),
            "--purchase-horizon-days",
            "7",
            "--revenue-horizon-days",
            "30",
        ],
        log,
    )
    with fs.open_input_stream(f"{lake_root}/{summary_key(S.isoformat())}") as stream:
        return json.loads(stream.read())


def test_summary_counts(first_run, lake_root):
    assert first_run["snapshot_date"] == "2020-10-10" and first_run["label_window_end"] == "2020-11-09"
    assert (
        first_run["archive_first_event_date"] == "2020-10-01" and first_run["archive_last_event_date"] == "2020-11-10"
    )
    # rows read up to S+30: 17 events minus the one dated S+31, plus the re-delivered copy
    assert (
        first_run["archive_rows_read"] == 17 and first_run["duplicates_dropped"] == 2
    )  # the copy, the exact duplicate
    assert first_run["feature_events"] == len(FEATURE_EVENTS) == 7 and first_run["label_events"] == 8
    assert first_run["rows"] == 4  # users 1, 2, 3, 5 (user 4 is first seen after S)
    assert first_run["positives"] == {"purchased_within_7d": 2}  # users 1 and 5
    assert first_run["label_revenue"] == {"revenue_within_30d": 90.0}  # 80 (user 1) + 10 (user 2)
    assert first_run["users_with_revenue"] == {"revenue_within_30d": 2}
    assert first_run["output_uri"] == f"s3a://{lake_root}/training_sets/snapshot_date=2020-10-10"


def test_only_the_snapshot_partition_is_replaced(first_run, lake_root, fs):
    written = sorted(i.path for i in list_files(fs, f"{lake_root}/{lake.training_set_key(S.isoformat())}"))
    assert written and all(p.rsplit("/", 1)[-1].startswith("part-") and p.endswith(".parquet") for p in written)
    assert not any("stale" in p for p in written)
    assert [i.path for i in list_files(fs, f"{lake_root}/{lake.training_set_key('2020-10-01')}")] == [
        f"{lake_root}/{lake.training_set_key('2020-10-01')}/part-00000.parquet"
    ]


def test_pyarrow_and_pandas_read_plain_types_and_the_hand_worked_labels(first_run, lake_root, fs):
    path = f"{lake_root}/{lake.training_set_key(S.isoformat())}"
    table = pq.read_table(path, filesystem=fs)
    assert table.column_names == training_set_columns()
    types = dict(zip(table.schema.names, table.schema.types))
    assert types["user_id"] == pa.int64() and types["snapshot_date"] == pa.date32()
    assert types["label_window_end"] == pa.date32() and types["first_seen"] == pa.timestamp("us", tz="UTC")
    assert types["purchased_within_7d"] == pa.bool_() and types["revenue_within_30d"] == pa.float64()
    assert not table.schema.field("purchased_within_7d").nullable

    frame = pd.read_parquet(path, filesystem=fs).set_index("user_id").sort_index()  # as docs/profiles.md shows
    assert frame["purchased_within_7d"].to_dict() == {1: True, 2: False, 3: False, 5: True}
    assert frame["revenue_within_30d"].to_dict() == {1: 80.0, 2: 10.0, 3: 0.0, 5: 0.0}
    # Features as of S: the planted purchases after S are not in them.
    assert frame.loc[1, ["purchases", "revenue", "recency_days", "days_since_last_purchase"]].tolist() == [
        1,
        100.0,
        0,
        5,
    ]
    assert frame.loc[2, ["purchases", "revenue"]].tolist() == [1, 5.0]
    assert set(frame["snapshot_date"]) == {S} and set(frame["label_window_end"]) == {dt.date(2020, 11, 9)}
    assert str(frame["first_seen"].dtype) == "datetime64[us, UTC]"
    assert list(frame.columns) == [c for c in training_set_columns() if c != "user_id"]
    assert set(PROFILE_COLUMNS) <= set(frame.columns) | {"user_id"}


class _S3(ArrowFSWrapper):
    """pyarrow's S3 filesystem as an fsspec ``s3://`` filesystem for DuckDB (no httpfs download)."""

    protocol = "s3"


def test_duckdb_reads_the_set(first_run, lake_root, fs):
    con = duckdb.connect()
    con.register_filesystem(_S3(fs))
    glob = f"s3://{lake_root}/{lake.training_set_key(S.isoformat())}/*.parquet"
    rows = con.execute(
        f"SELECT user_id, purchased_within_7d, revenue_within_30d, typeof(snapshot_date), typeof(label_window_end), "
        f"typeof(first_seen), typeof(revenue_within_30d) FROM read_parquet('{glob}') ORDER BY user_id"
    ).fetchall()
    assert [r[:3] for r in rows] == [(1, True, 80.0), (2, False, 10.0), (3, False, 0.0), (5, True, 0.0)]
    assert set(r[3:] for r in rows) == {("DATE", "DATE", "TIMESTAMP WITH TIME ZONE", "DOUBLE")}


def test_a_snapshot_whose_labels_are_not_complete_is_refused(first_run, lake_root, fs, tmp_path):
    snapshot = "2020-10-12"  # its 30-day window ends on 2020-11-11; the archive ends on 2020-11-10
    conf = job_conf(s3a_conf_from_env(), master=MASTER, driver_memory="1g", ui_enabled=False)
    command = spark_submit_command(
        JOB,
        ["--lake-uri", f"s3a://{lake_root}", "--snapshot-date", snapshot],
        conf,
        master=MASTER,
        spark_submit=str(Path(os.environ["VENV"]) / "bin" / "spark-submit"),
    )
    log = tmp_path / "refused.log"
    with log.open("w") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=600, cwd=PROJECT_ROOT)
    text = log.read_text()
    assert result.returncode == EXIT_NOT_READY, text[-4000:]
    assert "labels not complete yet for snapshot 2020-10-12" in text and "last event date is 2020-11-10" in text
    assert list_files(fs, f"{lake_root}/{lake.training_set_key(snapshot)}") == []
    assert list_files(fs, f"{lake_root}/{summary_key(snapshot)}") == []
