"""Helpers shared by the spark-submit tests: real Kafka and MinIO clients, the spark-submit runner.

(tests/spark_jobs has no __init__.py on purpose: as a package named ``spark_jobs`` it would
shadow the real spark_jobs package; pytest puts this directory on sys.path instead.)
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pyarrow.fs
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from ecommerce_profiles.spark_submit_conf import job_conf, s3a_conf_from_env, spark_submit_command

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MASTER = "local[2]"


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values():
        future.result(timeout=30)


def delete_topic(bootstrap: str, topic: str) -> None:
    # Keep the client referenced until the result is in: a collected client aborts the request.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics([topic]).values():
        future.result(timeout=30)


def produce(bootstrap: str, topic: str, messages: list[tuple[int | None, str, str]]) -> None:
    """Send (partition or None for key hashing, key, value) messages; wait for every ack."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20})
    errors: list[str] = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(str(err))

    for partition, key, value in messages:
        extra = {} if partition is None else {"partition": partition}
        producer.produce(topic, key=key, value=value, on_delivery=on_delivery, **extra)
    assert producer.flush(30) == 0, "messages still in flight after 30 s"
    assert not errors, errors


def produce_json_events(bootstrap: str, topic: str, events: list[dict]) -> None:
    """Events as the pipeline sends them: JSON values keyed by user_id."""
    produce(bootstrap, topic, [(None, str(event["user_id"]), json.dumps(event)) for event in events])


def watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """High watermark per partition; retried while a new topic's leaders are still being elected."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"watermarks-{uuid.uuid4().hex}"})
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                return {
                    p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in range(partitions)
                }
            except KafkaException:
                # NOT_LEADER_FOR_PARTITION / LEADER_NOT_AVAILABLE right after create_topics
                # (librdkafka does not flag them retriable here).
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        consumer.close()


def minio_filesystem() -> pyarrow.fs.S3FileSystem:
    scheme, host = os.environ["MINIO_ENDPOINT"].split("://", 1)
    return pyarrow.fs.S3FileSystem(
        access_key=os.environ["MINIO_ROOT_USER"],
        secret_key=os.environ["MINIO_ROOT_PASSWORD"],
        endpoint_override=host,
        scheme=scheme,
        region="us-east-1",
    )


def list_files(fs: pyarrow.fs.FileSystem, prefix: str) -> list[pyarrow.fs.FileInfo]:
    selector = pyarrow.fs.FileSelector(prefix, recursive=True, allow_not_found=True)
    return [info for info in fs.get_file_info(selector) if info.type == pyarrow.fs.FileType.File]


def spark_submit_argv(application: Path, args: list[str], driver_memory: str = "1g") -> list[str]:
    """The spark-submit command of ``application`` on local[2] with the cached jars and MinIO conf."""
    conf = job_conf(s3a_conf_from_env(), master=MASTER, driver_memory=driver_memory, ui_enabled=False)
    return spark_submit_command(
        application, args, conf, master=MASTER, spark_submit=str(Path(os.environ["VENV"]) / "bin" / "spark-submit")
    )


def run_spark_submit(
    application: Path, args: list[str], log: Path, driver_memory: str = "1g", expect_success: bool = True
) -> str:
    """spark-submit ``application`` on local[2] with the cached jars and MinIO conf; return its log.

    Fails with the end of the log when the job's exit status is not the expected one.
    """
    command = spark_submit_argv(application, args, driver_memory)
    with log.open("w") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=900, cwd=PROJECT_ROOT)
    text = log.read_text()
    assert (result.returncode == 0) == expect_success, f"spark-submit exit {result.returncode} ({log}):\n{text[-8000:]}"
    # Nothing was resolved at run time (Ivy prints this when --packages is used).
    assert ":: resolving dependencies ::" not in text
    return text
