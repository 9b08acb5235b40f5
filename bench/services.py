"""The benchmark's own scratch resources in Kafka, MinIO and Elasticsearch.

Clients come from the stack contract (``ecommerce_profiles.connections``, the ``*_from_env``
builders), topics are created and measured with the producer module's own helpers; this
module only adds creating and deleting what the benchmark names ``bench*``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from bench.system import say
from ecommerce_profiles import connections
from ecommerce_profiles.core import producer


def kafka_admin():
    from confluent_kafka.admin import AdminClient

    return AdminClient(connections.kafka_config_from_env())


def create_topic(topic: str) -> list[int]:
    """A fresh topic with the pipeline's partition count; its partition ids once leaders exist."""
    admin = kafka_admin()
    partitions = producer.ensure_topic(admin, topic, connections.pipeline_names().topic_partitions)
    producer.high_watermarks(admin, topic, partitions)  # waits out the leader election
    return partitions


def topic_message_count(topic: str) -> int:
    """Messages in a topic the benchmark created (fresh, nothing expired: low watermark 0)."""
    admin = kafka_admin()
    partitions = producer.topic_partitions(admin, topic)
    return sum(producer.high_watermarks(admin, topic, partitions).values())


def delete_topics(topics: list[str]) -> None:
    if not topics:
        return
    admin = kafka_admin()  # keep the handle alive until the futures resolve
    for topic, future in admin.delete_topics(topics, operation_timeout=60).items():
        try:
            future.result(timeout=60)
        except Exception as exc:  # noqa: BLE001 - cleanup is best effort, say what stayed
            say(f"  could not delete topic {topic}: {exc}")


def s3():
    """The MinIO root account: the benchmark creates and deletes buckets of its own."""
    return connections.lake_admin_settings_from_env().boto3_client()


def create_bucket(bucket: str) -> None:
    s3().create_bucket(Bucket=bucket)


def bucket_exists(bucket: str) -> bool:
    try:
        s3().head_bucket(Bucket=bucket)
        return True
    except Exception:  # noqa: BLE001
        return False


def delete_bucket(bucket: str) -> None:
    client = s3()
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=bucket)
    except Exception as exc:  # noqa: BLE001 - cleanup is best effort, say what stayed
        say(f"  could not delete bucket {bucket}: {exc}")


def s3_json(bucket: str, key: str) -> dict[str, Any]:
    return json.loads(s3().get_object(Bucket=bucket, Key=key)["Body"].read())


def upload_tree(local_root: Path, bucket: str, prefix: str) -> tuple[int, int]:
    """Every file under ``local_root`` to ``bucket/[prefix/]<relative path>``; (files, bytes)."""
    from concurrent.futures import ThreadPoolExecutor

    client = s3()
    files = sorted(p for p in local_root.rglob("*") if p.is_file())
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda p: client.upload_file(
                    str(p), bucket, "/".join(filter(None, [prefix, p.relative_to(local_root).as_posix()]))
                ),
                files,
            )
        )
    return len(files), sum(p.stat().st_size for p in files)


def es():
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)  # one INFO line per request
    return connections.elasticsearch_settings_from_env().client().options(request_timeout=120)


def delete_indices(pattern: str) -> None:
    try:
        client = es()
        existing = client.indices.get(index=pattern, ignore_unavailable=True, allow_no_indices=True)
        for name in existing:
            client.indices.delete(index=name)
    except Exception as exc:  # noqa: BLE001 - cleanup is best effort, say what stayed
        say(f"  could not delete indices {pattern}: {exc}")
