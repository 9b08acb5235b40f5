"""End to end: spark_jobs/customer_profiles.py via spark-submit against the real stack.

A few hundred hand-made events (with exact duplicates, three partitions, three dates and one
date after the snapshot) go to a fresh topic; the job's outputs are checked in MinIO (archive,
snapshot, summary) and Elasticsearch (a fresh index with the project's mapping). A second run
over the same offsets (the same batch) must leave the archive and the index unchanged; a later
batch with late and re-delivered events adds only what is new; a range holding records that
are not events fails before writing anything.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from elasticsearch import Elasticsearch
from spark_io_support import (
    create_topic,
    delete_topic,
    list_files,
    minio_filesystem,
    produce,
    produce_json_events,
    run_spark_submit,
    watermarks,
)

from ecommerce_profiles.core.paths import SPARK_JOB_FILE as JOB
from ecommerce_profiles.core.schemas import PROFILE_COLUMNS, PROFILE_FIELDS, es_mapping
from spark_jobs.spark_conf import offsets_json

PARTITIONS = 3
DATES = [date(2020, 9, 24), date(2020, 9, 25), date(2020, 9, 26)]
SNAPSHOT_DATE = date(2020, 9, 25)  # events of 2020-09-26 are archived but not profiled
RUN_DATE = date(2020, 9, 26)
FIRST_BATCH = "drop-2020-09-26"


# ------------------------------------------------------------------------------------------
# Test data
# ------------------------------------------------------------------------------------------
def make_events(seed: int = 7) -> list[dict]:
    """~300 events of 24 users over DATES; users 19-digit like the dataset's."""
    rng = random.Random(seed)
    users = [1515915625440000000 + i * 7919 for i in range(24)]
    events = []
    for user_index, user_id in enumerate(users):
        # Users 20..23 are only active after the snapshot date: archived, not profiled.
        user_dates = DATES[2:] if user_index >= 20 else DATES[: 1 + user_index % 3]
        for day in user_dates:
            session = f"s-{user_id}-{day.isoformat()}"
            start = datetime(day.year, day.month, day.day, rng.randrange(0, 22), rng.randrange(60), tzinfo=UTC)
            for n in range(rng.randrange(3, 9)):
                moment = start + timedelta(minutes=3 * n, seconds=rng.randrange(60))
                kind = rng.choices(["view", "cart", "purchase", "remove_from_cart"], [70, 15, 10, 5])[0]
                events.append(
                    {
                        "event_time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "event_type": kind,
                        "product_id": 1000 + rng.randrange(40),
                        "category_id": 2144415922528452715 + rng.randrange(5),
                        "category_code": rng.choice(
                            ["electronics.telephone", "computers.notebook", "", "electronics.audio.headphone"]
                        ),
                        "brand": rng.choice(["samsung", "apple", "", "sony"]),
                        "price": round(rng.uniform(1, 900), 2),
                        "user_id": user_id,
                        "user_session": session if n % 5 else rng.choice([session, ""]),
                    }
                )
    return events


def expected_facts(events: list[dict]) -> dict:
    unique = {json.dumps(e, sort_keys=True) for e in events}
    unique_events = [json.loads(e) for e in unique]

    def event_date(e):
        return e["event_time"][:10]

    profiled = [e for e in unique_events if event_date(e) <= SNAPSHOT_DATE.isoformat()]
    return {
        "unique_events": len(unique_events),
        "events_per_date": dict(Counter(event_date(e) for e in unique_events)),
        "profiled_events": len(profiled),
        "profiled_users": {e["user_id"] for e in profiled},
        "profiled": profiled,
    }


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def as_utc(value: datetime) -> datetime:
    """Parquet timestamps read back tz-aware (UTC-adjusted) or naive (then UTC by contract)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def events() -> list[dict]:
    events = make_events()
    # Exact duplicates (a producer retry, a re-sent file): must count once.
    return events + events[:25]


@pytest.fixture(scope="module")
def topic_range(stack, events):
    topic = f"test_profiles_{uuid.uuid4().hex[:12]}"
    create_topic(stack["kafka"], topic, PARTITIONS)
    starting = watermarks(stack["kafka"], topic, PARTITIONS)
    produce_json_events(stack["kafka"], topic, events)
    ending = watermarks(stack["kafka"], topic, PARTITIONS)
    yield topic, starting, ending
    delete_topic(stack["kafka"], topic)


@pytest.fixture(scope="module")
def es_index(stack):
    client = Elasticsearch(stack["elasticsearch"])
    index = f"test_customer_profiles_{uuid.uuid4().hex[:12]}"
    client.indices.create(index=index, **es_mapping())
    yield client, index
    client.indices.delete(index=index, ignore_unavailable=True)


@pytest.fixture(scope="module")
def lake(stack):
    """A private lake root (bucket/tests/<unique>) so the test never touches the real layout."""
    root = f"{stack['bucket']}/tests/profiles_job_{uuid.uuid4().hex[:12]}"
    yield root
    minio_filesystem().delete_dir_contents(root, missing_dir_ok=True)


@pytest.fixture(scope="module")
def submit(stack, topic_range, es_index, lake, tmp_path_factory):
    """Runs the job over the test's offset range; returns the run's summary JSON."""
    topic, starting, ending = topic_range
    _, index = es_index
    logs = tmp_path_factory.mktemp("spark-logs")
    runs: list[dict] = []

    def run_job(
        offset_range: tuple[str, dict, dict] | None = None,
        snapshot_date: date = SNAPSHOT_DATE,
        run_date: date = RUN_DATE,
        es_index_name: str | None = None,
        batch_id: str = FIRST_BATCH,
        expect_success: bool = True,
        profile_build: str = "auto",
    ) -> dict | str:
        """The job over ``offset_range`` (default: the module's topic range) into the module's lake."""
        run_topic, run_starting, run_ending = offset_range or (topic, starting, ending)
        summary_key = f"{lake}/runs/run_date={run_date.isoformat()}/spark_summary_{len(runs)}.json"
        args = [
            "--bootstrap-servers",
            stack["kafka"],
            "--topic",
            run_topic,
            "--starting-offsets",
            offsets_json(run_topic, run_starting),
            "--ending-offsets",
            offsets_json(run_topic, run_ending),
            "--snapshot-date",
            snapshot_date.isoformat(),
            "--run-date",
            run_date.isoformat(),
            "--lake-uri",
            f"s3a://{lake}",
            "--es-nodes",
            stack["elasticsearch"],
            "--es-index",
            es_index_name or index,
            "--summary-uri",
            f"s3a://{summary_key}",
            "--batch-id",
            batch_id,
            "--expected-records",
            str(sum(run_ending.values()) - sum(run_starting.values())),
            "--profile-build",
            profile_build,
        ]
        log = run_spark_submit(
            JOB, args, logs / f"run{len(runs)}.log", driver_memory="2g", expect_success=expect_success
        )
        if not expect_success:
            return log
        with minio_filesystem().open_input_stream(summary_key) as stream:
            runs.append(json.loads(stream.read()))
        return runs[-1]

    return run_job


@pytest.fixture(scope="module")
def first_run(submit):
    return submit()


# ------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------
def test_summary_counts_are_consistent(first_run, events, topic_range):
    facts = expected_facts(events)
    _, starting, ending = topic_range
    assert first_run["kafka_records"] == len(events) == sum(ending.values()) - sum(starting.values())
    assert first_run["events_parsed"] == len(events)
    assert first_run["records_unparsed"] == 0
    assert first_run["duplicates_dropped"] == len(events) - facts["unique_events"] > 0
    assert first_run["events_in_run"] == first_run["events_archived"] == facts["unique_events"]
    assert first_run["already_archived_by_other_batches"] == 0
    assert first_run["batch_id"] == FIRST_BATCH
    assert first_run["events_per_date"] == facts["events_per_date"]
    assert first_run["dates_archived"] == [d.isoformat() for d in DATES]
    assert first_run["archive_events_total"] == facts["profiled_events"]
    assert first_run["profiles"] == first_run["distinct_users"] == len(facts["profiled_users"])
    assert first_run["snapshot_date"] == SNAPSHOT_DATE.isoformat()
    assert first_run["spark_startup_seconds"] > 0
    # job_conf's collector reached the driver JVM through spark-submit (not G1, the JVM's default).
    assert first_run["jvm_garbage_collectors"] == ["PS MarkSweep", "PS Scavenge"]
    assert set(first_run["stage_seconds"]) >= {
        "read_kafka",
        "archive",
        "build_and_write_snapshot",
        "write_elasticsearch",
    }
    assert first_run["profile_build"]["mode"] == "full"  # the lake holds no earlier snapshot
    assert first_run["archive_write"] == "first: append, magic committer"
    assert first_run["archive_dates_total"] == 2  # the snapshot's dates (the third is later)


def test_archive_has_one_partition_per_event_date_and_batch(first_run, lake, events):
    fs = minio_filesystem()
    files = list_files(fs, f"{lake}/raw/events")
    partitions = {"/".join(info.path.split("/raw/events/")[1].split("/")[:2]) for info in files}
    assert partitions == {f"event_date={d.isoformat()}/batch={FIRST_BATCH}" for d in DATES}
    assert not [f.path for f in files if "/." in f.path or "/_" in f.path], "staging or marker objects left behind"
    archive = ds.dataset(f"{lake}/raw/events", filesystem=fs, format="parquet", partitioning="hive").to_table()
    assert archive.num_rows == expected_facts(events)["unique_events"]


def test_snapshot_has_exactly_the_profile_fields(first_run, lake, events):
    fs = minio_filesystem()
    snapshot = f"{lake}/profiles/snapshot_date={SNAPSHOT_DATE.isoformat()}"
    table = ds.dataset(snapshot, filesystem=fs, format="parquet").to_table()
    assert table.column_names == list(PROFILE_COLUMNS)
    facts = expected_facts(events)
    assert sorted(table.column("user_id").to_pylist()) == sorted(facts["profiled_users"])
    assert set(table.column("snapshot_date").to_pylist()) == {SNAPSHOT_DATE}
    # One user's plain counts, recomputed here from the events themselves.
    user_id = min(facts["profiled_users"])
    mine = [e for e in facts["profiled"] if e["user_id"] == user_id]
    row = table.filter(pc.equal(table.column("user_id"), user_id)).to_pylist()[0]
    assert row["events"] == len(mine)
    assert row["purchases"] == sum(e["event_type"] == "purchase" for e in mine)
    assert as_utc(row["first_seen"]) == parse_utc(min(e["event_time"] for e in mine))


def test_elasticsearch_has_one_document_per_user_equal_to_parquet(first_run, es_index, lake):
    client, index = es_index
    client.indices.refresh(index=index)
    assert client.count(index=index)["count"] == first_run["distinct_users"]

    table = pq.ParquetDataset(
        f"{lake}/profiles/snapshot_date={SNAPSHOT_DATE.isoformat()}", filesystem=minio_filesystem()
    ).read()
    rows = table.to_pylist()
    busiest = max(rows, key=lambda r: (r["events"], r["user_id"]))
    # A profile with null fields (e.g. no purchase -> no avg_order_value): nulls must be kept.
    with_nulls = next(r for r in rows if any(v is None for v in r.values()))
    for row in (busiest, with_nulls):
        document = client.get(index=index, id=str(row["user_id"]))["_source"]
        assert set(document) == set(PROFILE_COLUMNS)
        for field in PROFILE_FIELDS:
            parquet_value, es_value = row[field.name], document[field.name]
            if field.name == "user_id":
                assert es_value == str(parquet_value)  # keyword: all 19 digits kept
            elif parquet_value is None:
                assert es_value is None, field.name
            elif field.type == "date":
                assert es_value == parquet_value.isoformat()
            elif field.type == "timestamp":
                assert parse_utc(es_value) == as_utc(parquet_value), field.name
            elif field.type == "double":
                assert es_value == pytest.approx(parquet_value, rel=1e-12), field.name
            else:
                assert es_value == parquet_value, field.name


def test_rerun_of_the_same_offsets_changes_nothing(first_run, submit, es_index, lake):
    fs = minio_filesystem()

    def archive_state():
        table = ds.dataset(f"{lake}/raw/events", filesystem=fs, format="parquet", partitioning="hive").to_table()
        rows = Counter(json.dumps(r, sort_keys=True, default=str) for r in table.to_pylist())
        return table.num_rows, rows

    rows_before, content_before = archive_state()
    client, index = es_index
    second_run = submit()

    rows_after, content_after = archive_state()
    assert rows_after == rows_before
    assert content_after == content_before
    assert max(content_after.values()) == 1, "an event is archived twice"
    client.indices.refresh(index=index)
    assert client.count(index=index)["count"] == first_run["distinct_users"]
    for key in (
        "kafka_records",
        "events_archived",
        "archive_events_total",
        "profiles",
        "distinct_users",
        "dates_archived",
    ):
        assert second_run[key] == first_run[key], key
    assert second_run["archive_write"] == "rerun: dynamic overwrite, classic committer"


def test_a_later_batch_adds_late_events_and_skips_redelivered_ones(first_run, submit, stack, lake, events):
    """A later drop holds one new day, late events of the first day and events the first batch
    already delivered: the late ones land in their own date beside the earlier ones, the
    re-delivered ones are not stored again, and the profiles cover the whole archive."""
    next_day = DATES[-1] + timedelta(days=1)
    new_events = [
        {**event, "event_time": event["event_time"].replace(DATES[0].isoformat(), next_day.isoformat())}
        for event in make_events(seed=11)
        if event["event_time"].startswith(DATES[0].isoformat())
    ]
    late = [
        {**event, "product_id": event["product_id"] + 100_000}
        for event in make_events(seed=12)
        if event["event_time"].startswith(DATES[0].isoformat())
    ][:15]
    redelivered = events[:10]
    batch = f"drop-{next_day.isoformat()}"
    topic = f"test_profiles_next_{uuid.uuid4().hex[:12]}"
    create_topic(stack["kafka"], topic, PARTITIONS)
    client = Elasticsearch(stack["elasticsearch"])
    index = f"test_customer_profiles_next_{uuid.uuid4().hex[:12]}"
    client.indices.create(index=index, **es_mapping())
    try:
        starting = watermarks(stack["kafka"], topic, PARTITIONS)
        produce_json_events(stack["kafka"], topic, new_events + late + redelivered)
        ending = watermarks(stack["kafka"], topic, PARTITIONS)
        run = submit(
            (topic, starting, ending), snapshot_date=next_day, run_date=next_day, es_index_name=index, batch_id=batch
        )

        everything = events + new_events + late
        unique = {json.dumps(e, sort_keys=True) for e in everything}
        redelivered_unique = {json.dumps(e, sort_keys=True) for e in redelivered}
        assert run["kafka_records"] == len(new_events) + len(late) + len(redelivered)
        assert run["already_archived_by_other_batches"] == len(redelivered_unique)
        assert run["events_archived"] == len(new_events) + len(late)
        assert run["dates_archived"] == [DATES[0].isoformat(), next_day.isoformat()]
        assert run["archive_events_total"] == len(unique)
        # The first run's snapshot (2020-09-25) carried forward: users with events after it
        # (the first batch's 09-26, this run's new day) or late ones of 09-24 are rebuilt.
        assert run["profile_build"]["mode"] == "incremental", run["profile_build"]
        assert run["profile_build"]["previous_snapshot"] == SNAPSHOT_DATE.isoformat()
        changed = {e["user_id"] for e in new_events + late} | {
            e["user_id"] for e in events if e["event_time"][:10] > SNAPSHOT_DATE.isoformat()
        }
        assert run["profile_build"]["changed_users"] == len(changed)
        users = {e["user_id"] for e in everything}
        assert run["profiles"] == run["distinct_users"] == len(users)
        archive = ds.dataset(
            f"{lake}/raw/events", filesystem=minio_filesystem(), format="parquet", partitioning="hive"
        ).to_table()
        assert archive.num_rows == len(unique)
        first_day = archive.filter(pc.equal(archive.column("event_date"), DATES[0].isoformat()))
        assert set(first_day.column("batch").to_pylist()) == {FIRST_BATCH, batch}
        snapshot = ds.dataset(
            f"{lake}/profiles/snapshot_date={next_day.isoformat()}", filesystem=minio_filesystem(), format="parquet"
        ).to_table()
        events_per_user = Counter(json.loads(e)["user_id"] for e in unique)
        assert (
            dict(zip(snapshot.column("user_id").to_pylist(), snapshot.column("events").to_pylist())) == events_per_user
        )
        client.indices.refresh(index=index)
        assert client.count(index=index)["count"] == len(users)

        # The same batch again with a full rebuild asked for: the same profiles, every column.
        snapshot_key = f"{lake}/profiles/snapshot_date={next_day.isoformat()}"
        incremental = snapshot.sort_by("user_id").to_pylist()
        full = submit(
            (topic, starting, ending),
            snapshot_date=next_day,
            run_date=next_day,
            es_index_name=index,
            batch_id=batch,
            profile_build="full",
        )
        assert full["profile_build"]["mode"] == "full" and "asked for" in full["profile_build"]["reason"]
        rebuilt = ds.dataset(snapshot_key, filesystem=minio_filesystem(), format="parquet").to_table()
        assert rebuilt.sort_by("user_id").to_pylist() == incremental

        # The first batch re-run afterwards (a backfill) still owns its events, no more, no less.
        again = submit()
        assert again["events_archived"] == first_run["events_archived"]
        # The next day's snapshot cannot start from 09-27's any more: a batch it holds was rewritten.
        manifest = json.loads(
            minio_filesystem()
            .open_input_stream(f"{lake}/profiles/_manifests/snapshot_date={next_day.isoformat()}.json")
            .read()
        )
        assert manifest["profiles"] == len(users) and manifest["built"] == "full"  # the forced rebuild wrote it last
        assert {k.split("/")[1] for k in manifest["archive_files"]} == {f"batch={FIRST_BATCH}", f"batch={batch}"}
        assert ds.dataset(
            f"{lake}/raw/events", filesystem=minio_filesystem(), format="parquet", partitioning="hive"
        ).to_table().num_rows == len(unique)
    finally:
        client.indices.delete(index=index, ignore_unavailable=True)
        delete_topic(stack["kafka"], topic)


def test_records_that_are_not_events_fail_the_run_before_anything_is_written(first_run, submit, stack, lake):
    topic = f"test_profiles_bad_{uuid.uuid4().hex[:12]}"
    create_topic(stack["kafka"], topic, PARTITIONS)
    fs = minio_filesystem()
    before = sorted(info.path for info in list_files(fs, f"{lake}/raw/events"))
    try:
        starting = watermarks(stack["kafka"], topic, PARTITIONS)
        produce(stack["kafka"], topic, [(0, "x", "not json"), (1, "y", json.dumps({"event_type": "view"}))])
        ending = watermarks(stack["kafka"], topic, PARTITIONS)
        log = submit((topic, starting, ending), batch_id="drop-2099-01-01", expect_success=False)
        assert "2 of 2 Kafka records are not valid events" in log
        assert sorted(info.path for info in list_files(fs, f"{lake}/raw/events")) == before
        # the failure is recorded where the summary goes, for the task to name it
        recorded = [info.path for info in list_files(fs, f"{lake}/runs/run_date={RUN_DATE.isoformat()}")]
        with fs.open_input_stream(sorted(recorded)[-1]) as stream:
            failure = json.loads(stream.read())
        assert failure["status"] == "failed" and failure["failed_stage"] == "checks"
    finally:
        delete_topic(stack["kafka"], topic)
