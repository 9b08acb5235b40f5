"""spark-submit against the real stack: a bounded Kafka offset range lands in MinIO as Parquet.

Proves the wiring every Spark task depends on: the cached connector jars (no download at run
time), the s3a settings for MinIO, and that explicit starting/ending offsets bound the batch
(messages produced after the ending offsets are not read, nor those before the start).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.fs
import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from spark_jobs.spark_conf import (
    EARLIEST,
    job_conf,
    offsets_json,
    s3a_conf_from_env,
    spark_submit_command,
)

JOB = Path(__file__).parent / "jobs" / "kafka_range_to_parquet.py"
PARTITIONS = 2


def _create_topic(admin: AdminClient, topic: str, partitions: int) -> None:
    for future in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values():
        future.result(timeout=30)


def _produce(bootstrap: str, topic: str, messages: list[tuple[int, str, str]]) -> None:
    """Send (partition, key, value) messages and wait until all are acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    errors: list[str] = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(str(err))

    for partition, key, value in messages:
        producer.produce(topic, key=key, value=value, partition=partition, on_delivery=on_delivery)
    assert producer.flush(30) == 0, "messages still in flight after 30 s"
    assert not errors, errors


def _high_watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"watermarks-{uuid.uuid4().hex}"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        consumer.close()


def _minio_filesystem() -> pyarrow.fs.S3FileSystem:
    endpoint = os.environ["MINIO_ENDPOINT"]
    scheme, host = endpoint.split("://", 1)
    return pyarrow.fs.S3FileSystem(
        access_key=os.environ["MINIO_ROOT_USER"],
        secret_key=os.environ["MINIO_ROOT_PASSWORD"],
        endpoint_override=host,
        scheme=scheme,
        region="us-east-1",
    )


@pytest.fixture
def topic(stack):
    admin = AdminClient({"bootstrap.servers": stack["kafka"]})
    name = f"test_spark_submit_{uuid.uuid4().hex[:12]}"
    _create_topic(admin, name, PARTITIONS)
    yield name
    admin.delete_topics([name])


@pytest.fixture
def output_prefix(stack):
    """A unique s3 prefix under tests/ in the lake bucket, removed afterwards."""
    prefix = f"{stack['bucket']}/tests/spark_submit_{uuid.uuid4().hex[:12]}"
    yield prefix
    _minio_filesystem().delete_dir_contents(prefix, missing_dir_ok=True)


def test_bounded_kafka_range_is_written_to_minio(stack, topic, output_prefix, tmp_path):
    # 2 partitions x 10 messages before the range is fixed.
    before = [(i % PARTITIONS, f"user-{i % 7}", f'{{"n": {i}}}') for i in range(20)]
    _produce(stack["kafka"], topic, before)
    ending = _high_watermarks(stack["kafka"], topic, PARTITIONS)
    assert ending == {0: 10, 1: 10}
    # Start partition 0 at offset 3 and partition 1 at the beginning; end at the marks above.
    starting = {0: 3, 1: EARLIEST}
    # Produced after the range was fixed: must not be read.
    after = [(i % PARTITIONS, "late", f'{{"n": {i}}}') for i in range(100, 106)]
    _produce(stack["kafka"], topic, after)

    expected = set()
    per_partition_offset = {p: 0 for p in range(PARTITIONS)}
    for partition, key, value in before:
        offset = per_partition_offset[partition]
        per_partition_offset[partition] += 1
        first = 0 if starting[partition] == EARLIEST else starting[partition]
        if first <= offset < ending[partition]:
            expected.add((key, value, partition, offset))
    assert len(expected) == 17

    conf = job_conf(s3a_conf_from_env(), driver_memory="1g", ui_enabled=False)
    command = spark_submit_command(
        JOB,
        [stack["kafka"], topic, offsets_json(topic, starting), offsets_json(topic, ending), f"s3a://{output_prefix}"],
        conf,
        spark_submit=str(Path(os.environ["VENV"]) / "bin" / "spark-submit"),
    )
    log = tmp_path / "spark-submit.log"
    with log.open("w") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=600)
    assert result.returncode == 0, log.read_text()[-5000:]
    # Nothing was fetched at run time: no Ivy resolution happened.
    assert ":: resolving dependencies ::" not in log.read_text()

    table = ds.dataset(output_prefix, filesystem=_minio_filesystem(), format="parquet").to_table()
    rows = list(zip(*(table.column(c).to_pylist() for c in ("key", "value", "partition", "offset"))))
    assert len(rows) == len(expected)
    assert set(rows) == expected
    assert not any(key == "late" for key, *_ in rows)
