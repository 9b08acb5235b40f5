"""spark-submit against the real stack: a bounded Kafka offset range lands in MinIO as Parquet.

Proves the wiring every Spark task depends on: the cached connector jars (no download at run
time), the s3a settings for MinIO, and that explicit starting/ending offsets bound the batch
(messages produced after the ending offsets are not read, nor those before the start).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from spark_io_support import create_topic, delete_topic, minio_filesystem, produce, run_spark_submit, watermarks

from spark_jobs.spark_conf import EARLIEST, offsets_json

JOB = Path(__file__).parent / "jobs" / "kafka_range_to_parquet.py"
PARTITIONS = 2


@pytest.fixture
def topic(stack):
    name = f"test_spark_submit_{uuid.uuid4().hex[:12]}"
    create_topic(stack["kafka"], name, PARTITIONS)
    yield name
    delete_topic(stack["kafka"], name)


@pytest.fixture
def output_prefix(stack):
    """A unique prefix under tests/ in the lake bucket, removed afterwards."""
    prefix = f"{stack['bucket']}/tests/spark_submit_{uuid.uuid4().hex[:12]}"
    yield prefix
    minio_filesystem().delete_dir_contents(prefix, missing_dir_ok=True)


def test_bounded_kafka_range_is_written_to_minio(stack, topic, output_prefix, tmp_path):
    # 2 partitions x 10 messages before the range is fixed.
    before = [(i % PARTITIONS, f"user-{i % 7}", f'{{"n": {i}}}') for i in range(20)]
    produce(stack["kafka"], topic, before)
    ending = watermarks(stack["kafka"], topic, PARTITIONS)
    assert ending == {0: 10, 1: 10}
    # Partition 0 starts at offset 3, partition 1 at the beginning; both end at the marks above.
    starting = {0: 3, 1: EARLIEST}
    # Produced after the range was fixed: must not be read.
    produce(stack["kafka"], topic, [(i % PARTITIONS, "late", f'{{"n": {i}}}') for i in range(100, 106)])

    expected = set()
    next_offset = {p: 0 for p in range(PARTITIONS)}
    for partition, key, value in before:
        offset = next_offset[partition]
        next_offset[partition] += 1
        first = 0 if starting[partition] == EARLIEST else starting[partition]
        if first <= offset < ending[partition]:
            expected.add((key, value, partition, offset))
    assert len(expected) == 17

    run_spark_submit(
        JOB,
        [stack["kafka"], topic, offsets_json(topic, starting), offsets_json(topic, ending), f"s3a://{output_prefix}"],
        tmp_path / "spark-submit.log",
    )

    table = ds.dataset(output_prefix, filesystem=minio_filesystem(), format="parquet").to_table()
    rows = list(zip(*(table.column(c).to_pylist() for c in ("key", "value", "partition", "offset"))))
    assert len(rows) == len(expected)
    assert set(rows) == expected
