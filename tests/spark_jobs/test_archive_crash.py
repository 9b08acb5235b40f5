"""A job killed in the middle of a new batch's archive write (the S3A magic committer), then
retried: the crash leaves no file of the batch in the archive, only the committer's hidden
records and uploads nobody can see; the retry archives every event exactly once, removes the
records, and none of the killed write's files ever becomes visible. (MinIO lists uploads by
exact key only, so the killed uploads stay pending until MinIO expires them after 24 h:
docs/archive-format.md.)

The kill is real (SIGKILL of the spark-submit process group) and lands when the first file's
upload is pending: the job writes one file per event date and the batch spans 120 dates, so
the commit is seconds away at that moment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import boto3
import pyarrow.dataset as ds
import pytest
from elasticsearch import Elasticsearch
from spark_io_support import (
    create_topic,
    delete_topic,
    list_files,
    minio_filesystem,
    produce_json_events,
    run_spark_submit,
    spark_submit_argv,
    watermarks,
)

from ecommerce_profiles.core.lake import ARCHIVE_PREFIX, archive_file_partition
from ecommerce_profiles.core.paths import SPARK_JOB_FILE
from ecommerce_profiles.core.schemas import es_mapping
from spark_jobs.spark_conf import MAGIC_FOLDER, offsets_json

FIRST_DAY = date(2020, 1, 1)
DAYS = 120
BATCH = "drop-crash-test"


def events() -> list[dict]:
    out = []
    for day in range(DAYS):
        moment = datetime.combine(FIRST_DAY + timedelta(days=day), datetime.min.time(), tzinfo=UTC)
        for n in range(8):
            out.append(
                {
                    "event_time": (moment + timedelta(hours=n, minutes=day % 60)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "event_type": "purchase" if n == 7 else "view",
                    "product_id": 1000 + n,
                    "category_id": 2144415922528452715,
                    "category_code": "electronics.audio.headphone",
                    "brand": "sony" if n % 2 else "",
                    "price": 10.0 + n,
                    "user_id": 1515915625440000000 + day % 30,
                    "user_session": f"s-{day}-{n // 4}",
                }
            )
    return out


def s3_client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["MINIO_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id=os.environ["MINIO_ROOT_USER"],
        aws_secret_access_key=os.environ["MINIO_ROOT_PASSWORD"],
    )


def pending_uploads(bucket: str, prefix: str) -> list[str]:
    return [u["Key"] for u in s3_client().list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])]


def keys(bucket: str, prefix: str) -> list[str]:
    pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


@pytest.fixture()
def job_inputs(stack, tmp_path):
    topic = f"test_crash_{uuid.uuid4().hex[:12]}"
    create_topic(stack["kafka"], topic, 2)
    starting = watermarks(stack["kafka"], topic, 2)
    produce_json_events(stack["kafka"], topic, events())
    ending = watermarks(stack["kafka"], topic, 2)
    prefix = f"tests/archive_crash_{uuid.uuid4().hex[:12]}"
    es = Elasticsearch(stack["elasticsearch"])
    index = f"test_archive_crash_{uuid.uuid4().hex[:12]}"
    es.indices.create(index=index, **es_mapping())
    args = [
        "--bootstrap-servers",
        stack["kafka"],
        "--topic",
        topic,
        "--starting-offsets",
        offsets_json(topic, starting),
        "--ending-offsets",
        offsets_json(topic, ending),
        "--snapshot-date",
        (FIRST_DAY + timedelta(days=DAYS - 1)).isoformat(),
        "--batch-id",
        BATCH,
        "--lake-uri",
        f"s3a://{stack['bucket']}/{prefix}",
        "--es-nodes",
        stack["elasticsearch"],
        "--es-index",
        index,
        "--summary-uri",
        f"s3a://{stack['bucket']}/{prefix}/summary.json",
        "--expected-records",
        str(len(events())),
    ]
    yield {"args": args, "bucket": stack["bucket"], "prefix": prefix, "archive": f"{prefix}/{ARCHIVE_PREFIX}/"}
    es.indices.delete(index=index, ignore_unavailable=True)
    delete_topic(stack["kafka"], topic)
    minio_filesystem().delete_dir_contents(f"{stack['bucket']}/{prefix}", missing_dir_ok=True)


def kill_when_a_file_is_pending(command: list[str], bucket: str, magic_prefix: str, log_path) -> float:
    """Start the job, SIGKILL it as soon as the magic committer has recorded a written file."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    started = time.monotonic()
    try:
        while process.poll() is None and time.monotonic() - started < 600:
            if any(key.endswith(".parquet") for key in keys(bucket, magic_prefix)):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)
                return time.monotonic() - started
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
    pytest.fail(
        f"the job ended (exit {process.returncode}) before any archive file was pending:\n"
        + log_path.read_text()[-4000:]
    )


def test_a_job_killed_mid_archive_write_leaves_no_partial_batch_and_the_retry_is_exact(job_inputs, tmp_path):
    bucket, archive = job_inputs["bucket"], job_inputs["archive"]
    command = spark_submit_argv(SPARK_JOB_FILE, job_inputs["args"], driver_memory="2g")
    kill_when_a_file_is_pending(command, bucket, f"{archive}{MAGIC_FOLDER}/", tmp_path / "killed.log")

    # The crash: the committer's records, uploads that nobody can read, and no archive file.
    # A record (a 0-byte marker under __magic/.../__base/) names the file's final key; MinIO lists
    # the uploads of one exact key only.
    markers = [k for k in keys(bucket, f"{archive}{MAGIC_FOLDER}/") if k.endswith(".parquet") and "/__base/" in k]
    assert markers
    crashed = [archive + marker.split("/__base/", 1)[1] for marker in markers]
    assert all(archive_file_partition(key[len(archive) :]) for key in crashed), crashed[:3]
    assert any(pending_uploads(bucket, key) for key in crashed), "no upload was pending when the job was killed"
    data_files = [k for k in keys(bucket, archive) if archive_file_partition(k[len(archive) :])]
    assert data_files == [], f"a killed first write left part of the batch: {data_files[:5]}"

    # The retry of the same batch: a first write again, every event once, nothing left over.
    run_spark_submit(SPARK_JOB_FILE, job_inputs["args"], tmp_path / "retry.log", driver_memory="2g")
    with minio_filesystem().open_input_stream(f"{bucket}/{job_inputs['prefix']}/summary.json") as stream:
        summary = json.loads(stream.read())
    assert summary["archive_write"] == "first: append, magic committer"
    expected = {json.dumps(e, sort_keys=True) for e in events()}
    assert summary["events_archived"] == len(expected) == len(events())
    assert summary["dates_archived"] == [(FIRST_DAY + timedelta(days=d)).isoformat() for d in range(DAYS)]
    table = ds.dataset(
        f"{bucket}/{archive}", filesystem=minio_filesystem(), format="parquet", partitioning="hive"
    ).to_table()
    assert table.num_rows == len(expected)
    assert set(table.column("batch").to_pylist()) == {BATCH}
    assert not [k for k in keys(bucket, archive) if f"/{MAGIC_FOLDER}/" in f"/{k[len(archive) :]}"], (
        "the committer's records of the killed write are still there"
    )
    files = list_files(minio_filesystem(), f"{bucket}/{archive}")
    assert len(files) == DAYS  # one file per date, nothing else
    # The killed write's files never appear: their uploads were never completed.
    visible = {f.path[len(bucket) + 1 :] for f in files}
    assert not visible & set(crashed)
