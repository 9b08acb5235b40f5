"""The local Kafka broker (scripts/services/kafka.sh): real produce/consume round trips."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from .stack_cli import assert_status_up, assert_up_refuses_taken_port


@pytest.fixture()
def fresh_topic(stack):
    """A new three-partition topic, deleted again after the test."""
    admin = AdminClient({"bootstrap.servers": stack["kafka"]})
    topic = f"test_stack_{uuid.uuid4().hex}"
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(timeout=30)
    yield topic
    admin.delete_topics([topic])[topic].result(timeout=30)


def _consume(bootstrap: str, topic: str, count: int, timeout_s: float = 60.0) -> list:
    """Read `count` messages of `topic` from the start through a consumer group."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test_stack_{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                # The group may poll before the new topic's metadata has reached it.
                if message.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue
                raise AssertionError(f"consumer error: {message.error()}")
            messages.append(message)
    finally:
        consumer.close()
    return messages


def test_message_round_trips_with_key_value_and_partition(stack, fresh_topic):
    key = f"user-{uuid.uuid4().hex}".encode()
    values = [f'{{"event_type": "view", "n": {n}, "id": "{uuid.uuid4().hex}"}}'.encode() for n in range(2)]
    delivered = []

    producer = Producer({"bootstrap.servers": stack["kafka"], "acks": "all", "enable.idempotence": True})
    for value in values:
        producer.produce(fresh_topic, key=key, value=value, on_delivery=lambda err, msg: delivered.append((err, msg)))
    assert producer.flush(30) == 0, "messages still queued after flush"

    assert [err for err, _ in delivered] == [None, None]
    partitions = {msg.partition() for _, msg in delivered}
    assert len(partitions) == 1, "one key must always map to one partition (per-user ordering)"

    received = _consume(stack["kafka"], fresh_topic, count=2)
    assert [m.key() for m in received] == [key, key]
    assert [m.value() for m in received] == values
    assert {m.partition() for m in received} == partitions
    assert [m.offset() for m in received] == [msg.offset() for _, msg in delivered]


def test_pipeline_topic_exists_with_configured_partitions(stack):
    metadata = AdminClient({"bootstrap.servers": stack["kafka"]}).list_topics(timeout=10)
    topic = metadata.topics.get(os.environ["KAFKA_TOPIC"])
    assert topic is not None, f"{os.environ['KAFKA_TOPIC']} was not created by stack.sh up"
    assert len(topic.partitions) == int(os.environ["KAFKA_TOPIC_PARTITIONS"])


def test_status_reports_kafka_up_with_its_url(stack):
    assert_status_up("kafka", stack["kafka"])


def test_up_fails_clearly_when_the_kafka_port_is_taken(tmp_path):
    assert_up_refuses_taken_port(tmp_path, "kafka", "KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "localhost:{port}")
