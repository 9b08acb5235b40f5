"""ProduceEventsOperator against the local Kafka: every staged event delivered, exact offsets."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from ecommerce_profiles.core.validation import read_staged_messages, validate_files

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample_events.csv"


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    out = tmp_path_factory.mktemp("staged")
    result = validate_files([SAMPLE], out / "messages.tsv", out / "quarantine.csv")
    return {
        "path": result.staging_path,
        "accepted": result.rows_accepted,
        "messages": list(read_staged_messages(result.staging_path)),
    }


_CREATED: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _delete_test_topics():
    yield
    if _CREATED:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]})
        existing = set(admin.list_topics(timeout=30).topics)
        doomed = [t for t in _CREATED if t in existing]  # a failing test may not have created its topic
        for future in admin.delete_topics(doomed).values() if doomed else []:
            future.result(30)


def _topic() -> str:
    topic = f"test_produce_{uuid.uuid4().hex[:10]}"
    _CREATED.append(topic)
    return topic


def _produce(staging_path: str, topic: str, **kwargs):
    """The operator on a staging file the module's tests share (kept unless a test says otherwise)."""
    from ecommerce_profiles.operators.produce import ProduceEventsOperator

    kwargs.setdefault("delete_staging", False)
    operator = ProduceEventsOperator(task_id="produce", staging_path=staging_path, topic=topic, **kwargs)
    return operator.execute(context={})


def test_the_staging_file_is_deleted_once_every_event_is_delivered(stack, staged, tmp_path):
    import shutil

    copy = tmp_path / "run-staging" / "messages.tsv"
    copy.parent.mkdir()
    shutil.copy(staged["path"], copy)
    out = _produce(str(copy), _topic(), expected_count=str(staged["accepted"]), delete_staging=True)
    assert out["delivered"] == staged["accepted"]
    assert not copy.exists() and not copy.parent.exists()


def _consume(topic: str, starting: str, ending: str, timeout: float = 60.0) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) of every message in [start, end) of each partition."""
    start, end = json.loads(starting)[topic], json.loads(ending)[topic]
    consumer = Consumer(
        {
            "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, int(p), start[p]) for p in start if end[p] > start[p]])
        remaining = sum(end[p] - start[p] for p in start)
        out, deadline = [], time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=1.0):
                assert message.error() is None, message.error()
                if message.offset() < end[str(message.partition())]:
                    out.append((message.partition(), message.key(), message.value()))
                    remaining -= 1
        assert remaining == 0, f"{remaining} messages of the reported ranges were not found"
        return out
    finally:
        consumer.close()


def test_every_staged_event_is_delivered_and_the_offset_ranges_hold_exactly_them(stack, staged):
    topic = _topic()
    out = _produce(staged["path"], topic, expected_count=str(staged["accepted"]))
    json.dumps(out)  # XCom-serialisable
    assert out["topic"] == topic
    assert out["produced"] == out["delivered"] == staged["accepted"] == 301
    assert out["failed"] == 0
    partitions = {str(p) for p in range(int(os.environ["KAFKA_TOPIC_PARTITIONS"]))}
    start, end = json.loads(out["starting_offsets"])[topic], json.loads(out["ending_offsets"])[topic]
    assert set(start) == set(end) == partitions  # Spark needs every partition in both
    assert sum(end[p] - start[p] for p in partitions) == staged["accepted"]
    assert {p: end[p] - start[p] for p in partitions if end[p] > start[p]} == out["messages_by_partition"]

    consumed = _consume(topic, out["starting_offsets"], out["ending_offsets"])
    assert Counter((k, v) for _, k, v in consumed) == Counter(staged["messages"])
    partition_of_user: dict[bytes, set[int]] = {}
    for partition, key, value in consumed:
        assert key == str(json.loads(value)["user_id"]).encode()
        partition_of_user.setdefault(key, set()).add(partition)
    assert all(len(p) == 1 for p in partition_of_user.values())  # keyed: one user, one partition


def test_a_second_run_continues_where_the_first_ended(stack, staged, tmp_path):
    topic = _topic()
    first = _produce(staged["path"], topic)
    one_event = tmp_path / "one.tsv"
    one_event.write_bytes(Path(staged["path"]).read_bytes().splitlines(keepends=True)[0])
    second = _produce(str(one_event), topic)

    first_end = json.loads(first["ending_offsets"])[topic]
    start, end = json.loads(second["starting_offsets"])[topic], json.loads(second["ending_offsets"])[topic]
    assert start == first_end  # partitions without new events: start = end = the current end
    assert sum(end[p] - start[p] for p in start) == 1
    [(partition, key, value)] = _consume(topic, second["starting_offsets"], second["ending_offsets"])
    assert (key, value) == staged["messages"][0]
    assert end[str(partition)] == start[str(partition)] + 1


def test_an_empty_staging_file_gives_empty_ranges_on_every_partition(stack, tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_bytes(b"")
    topic = _topic()
    out = _produce(str(empty), topic)  # brand-new topic: leaders may still be being elected
    assert out["produced"] == out["delivered"] == 0
    partitions = {str(p): 0 for p in range(int(os.environ["KAFKA_TOPIC_PARTITIONS"]))}
    assert json.loads(out["starting_offsets"]) == json.loads(out["ending_offsets"]) == {topic: partitions}


def test_delivered_must_match_the_accepted_count(stack, staged):
    from airflow.exceptions import AirflowException

    with pytest.raises(AirflowException, match="validation accepted 302"):
        _produce(staged["path"], _topic(), expected_count=302)


def test_existing_topic_keeps_its_partitions(stack, staged):
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = _topic()
    admin = AdminClient({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    out = _produce(staged["path"], topic, num_partitions=5)
    assert out["partitions"] == 2
    assert set(json.loads(out["starting_offsets"])[topic]) == {"0", "1"}


def test_missing_staging_file_fails_clearly(stack, tmp_path):
    from airflow.exceptions import AirflowException

    with pytest.raises(AirflowException, match="does not exist"):
        _produce(str(tmp_path / "nope.tsv"), _topic())


class _Report:
    """A delivery report as the callback receives it (partition and offset only)."""

    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


def test_delivery_tracker_ranges_failures_new_partitions_and_gaps():
    from ecommerce_profiles.core.producer import DeliveryTracker, ProduceError, spark_offsets

    tracker = DeliveryTracker([0, 1])
    on_delivery = tracker.callback()
    for partition, offset in [(0, 5), (0, 6), (2, 0), (0, 7), (2, 1)]:  # partition 2 appeared meanwhile
        on_delivery(None, _Report(partition, offset))
    on_delivery("MSG_TIMED_OUT", None)
    assert tracker.delivered == 5 and tracker.failed == 1 and tracker.errors == ["MSG_TIMED_OUT"]
    assert tracker.first_offset == {0: 5, 2: 0} and tracker.last_offset == {0: 7, 2: 1}
    tracker.check_contiguous("t")
    starting, ending = spark_offsets("t", [0, 1, 2], tracker, {1: 42})
    assert json.loads(starting) == {"t": {"0": 5, "1": 42, "2": 0}}
    assert json.loads(ending) == {"t": {"0": 8, "1": 42, "2": 2}}

    on_delivery(None, _Report(0, 9))  # offset 8 belongs to someone else
    with pytest.raises(ProduceError, match="another producer"):
        tracker.check_contiguous("t")


def test_a_truncated_staging_file_is_refused(stack, staged, tmp_path):
    from airflow.exceptions import AirflowException

    truncated = tmp_path / "truncated.tsv"
    truncated.write_bytes(Path(staged["path"]).read_bytes()[:-10])
    with pytest.raises(AirflowException, match="incomplete staging file"):
        _produce(str(truncated), _topic())
