"""Send the validated events (the staging file of validation.py) to Kafka, fast and accountably.

``ProduceEventsOperator`` builds its producer through the apache-kafka provider's
``KafkaProducerHook`` (connection ``kafka_default`` = ``AIRFLOW_CONN_KAFKA_DEFAULT``) and adds
what the stock ``ProduceToTopicOperator`` does not have:

* the exact offset range written to each partition, as Spark Kafka batch options
  (``startingOffsets``/``endingOffsets`` JSON covering every partition of the topic), so the
  Spark job reads exactly this run's events;
* delivered == staged check: every message must be acknowledged (idempotent producer,
  acks=all), otherwise the task fails instead of silently losing events;
* speed: non-blocking produce, one cheap delivery callback, poll(0) every 1,000 messages,
  BufferError back-off, large lz4 batches. The stock operator's default delivery callback logs
  every message, which caps it at a few thousand events/s; with a silent callback it is about
  as fast as this one but still reports nothing about what was written.

Messages are keyed by user_id, so one user's events stay in order on one partition; the
``murmur2_random`` partitioner puts a key on the same partition as the Java client would.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

log = logging.getLogger(__name__)

# librdkafka settings on top of the connection's (connection extras win only for the
# bootstrap/security part; these define delivery guarantees and throughput).
PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,  # no duplicates or reordering on retries
    "acks": "all",
    # Measured on the staged events: lz4 and zstd produce equally fast, zstd's log is ~1.9x
    # smaller (31 vs 57 MB per 884k events, 225 MB uncompressed) but costs ~15% more producer
    # CPU; lz4 leaves more CPU to the broker and Spark on a small machine.
    "compression.type": "lz4",
    "linger.ms": 50,
    "batch.size": 1_000_000,  # bytes per partition batch
    "batch.num.messages": 100_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "partitioner": "murmur2_random",  # same key -> same partition as the Java client
    "message.timeout.ms": 300_000,
}
DEFAULT_PROGRESS_EVERY = 200_000
_POLL_EVERY = 1_000  # serve delivery callbacks every N messages
_FLUSH_TIMEOUT_S = 300.0


# What list_offsets answers while a new topic's partition leaders are being elected.
_ELECTION_ERRORS = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


class ProduceError(RuntimeError):
    """Not every staged event was acknowledged by Kafka."""


class DeliveryTracker:
    """Delivery-report bookkeeping: failures and the offset range acknowledged per partition.

    Lists indexed by partition id keep the per-message callback cheap (it runs once for every
    event, in the producing thread).
    """

    def __init__(self, partitions: Sequence[int]) -> None:
        size = max(partitions, default=-1) + 1
        self._counts = [0] * size
        self._first = [-1] * size
        self._last = [-1] * size
        self.failed = 0
        self.errors: list[str] = []

    def callback(self) -> Callable[[Any, Any], None]:
        counts, first, last = self._counts, self._first, self._last

        def on_delivery(err, msg) -> None:
            if err is None:
                partition, offset = msg.partition(), msg.offset()
                try:
                    count = counts[partition]
                except IndexError:  # partitions were added while producing
                    grow = partition + 1 - len(counts)
                    counts.extend([0] * grow)
                    first.extend([-1] * grow)
                    last.extend([-1] * grow)
                    count = 0
                # Reports arrive in offset order per partition (idempotent producer), so the
                # first report is the lowest offset; check_contiguous() verifies it afterwards.
                if not count:
                    first[partition] = offset
                counts[partition] = count + 1
                last[partition] = offset
            else:
                self.failed += 1
                if len(self.errors) < 10:
                    self.errors.append(str(err))

        return on_delivery

    @property
    def delivered(self) -> int:
        return sum(self._counts)

    @property
    def per_partition(self) -> dict[int, int]:
        return {p: n for p, n in enumerate(self._counts) if n}

    @property
    def first_offset(self) -> dict[int, int]:
        return {p: self._first[p] for p, n in enumerate(self._counts) if n}

    @property
    def last_offset(self) -> dict[int, int]:
        return {p: self._last[p] for p, n in enumerate(self._counts) if n}

    def check_contiguous(self, topic: str) -> None:
        """Our messages fill [first, last] exactly: nobody else wrote inside the range."""
        for partition, count in self.per_partition.items():
            span = self._last[partition] - self._first[partition] + 1
            if span != count:
                raise ProduceError(
                    f"{topic}[{partition}]: {count} messages delivered but offsets "
                    f"{self._first[partition]}..{self._last[partition]} span {span}: another "
                    "producer wrote to the topic during this run, so the offset range is not this run's alone"
                )


def topic_partitions(admin: AdminClient, topic: str, timeout: float = 30.0) -> list[int]:
    """Partition ids of ``topic`` (empty list when it does not exist).

    Lists all topics rather than asking for one: a metadata request for a single missing topic
    can auto-create it with the broker's default partition count.
    """
    metadata = admin.list_topics(timeout=timeout)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return []
    return sorted(found.partitions)


def ensure_topic(
    admin: AdminClient,
    topic: str,
    num_partitions: int,
    replication_factor: int = 1,
    create: Callable[[str, int, int], None] | None = None,
    timeout: float = 30.0,
) -> list[int]:
    """Create ``topic`` when missing; return its partition ids once the metadata shows them.

    ``create(topic, partitions, replication)`` lets the operator use the provider's
    KafkaAdminClientHook.create_topic; the default uses ``admin`` directly.
    """
    partitions = topic_partitions(admin, topic, timeout)
    if partitions:
        return partitions
    if create is None:
        future = admin.create_topics([NewTopic(topic, num_partitions, replication_factor)])[topic]
        try:
            future.result(timeout)
        except KafkaException as err:
            if err.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    else:
        create(topic, num_partitions, replication_factor)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        partitions = topic_partitions(admin, topic, timeout)
        if partitions:
            return partitions
        time.sleep(0.2)
    raise ProduceError(f"topic {topic} was created but its partitions did not appear within {timeout}s")


def high_watermarks(admin: AdminClient, topic: str, partitions: Sequence[int], timeout: float = 30.0) -> dict[int, int]:
    """Current end offset (next offset to be written) of each partition.

    Retries while a new topic's partition leaders are still being elected.
    """
    deadline = time.monotonic() + timeout
    while True:
        futures = admin.list_offsets(
            {TopicPartition(topic, p): OffsetSpec.latest() for p in partitions}, request_timeout=timeout
        )
        try:
            return {tp.partition: future.result().offset for tp, future in futures.items()}
        except KafkaException as err:
            error = err.args[0]
            if time.monotonic() > deadline or not (error.retriable() or error.code() in _ELECTION_ERRORS):
                raise
            time.sleep(0.2)


def spark_offsets(
    topic: str, partitions: Sequence[int], tracker: DeliveryTracker, watermarks: dict[int, int]
) -> tuple[str, str]:
    """startingOffsets/endingOffsets JSON for Spark's Kafka batch source, all partitions listed.

    Spark requires both to name the same, complete set of partitions. A partition without
    messages from this run gets start = end = its current end offset (an empty range).
    Ending offsets are exclusive (last delivered + 1).
    """
    start, end = {}, {}
    first, last = tracker.first_offset, tracker.last_offset
    for p in partitions:
        if p in first:
            start[str(p)], end[str(p)] = first[p], last[p] + 1
        else:
            start[str(p)] = end[str(p)] = watermarks[p]
    return json.dumps({topic: start}, separators=(",", ":")), json.dumps({topic: end}, separators=(",", ":"))


def produce_messages(
    producer: Producer,
    staging_path: str | os.PathLike,
    topic: str,
    tracker: DeliveryTracker,
    *,
    progress_every: int = DEFAULT_PROGRESS_EVERY,
    logger: logging.Logger | Any = log,
    flush_timeout: float = _FLUSH_TIMEOUT_S,
) -> int:
    """Produce every ``key\\tvalue`` line of the staging file; return how many were produced.

    ``producer`` must have been built with ``tracker.callback()`` as its ``on_delivery``.
    Returns after flush(), when every message is acknowledged or failed (or the flush timed out,
    which the caller sees as delivered + failed < produced).
    """
    produce, poll = producer.produce, producer.poll
    produced = 0
    next_progress = progress_every
    started = time.perf_counter()
    with open(staging_path, "rb") as staging:
        # Validation ends every message with \n; a file that does not is truncated.
        size = staging.seek(0, os.SEEK_END)
        if size:
            staging.seek(size - 1)
            if staging.read(1) != b"\n":
                raise ProduceError(f"{staging_path} does not end with a newline: incomplete staging file")
        staging.seek(0)
        for line in staging:
            tab = line.index(b"\t")
            key, value = line[:tab], line[tab + 1 : -1]
            while True:
                try:
                    produce(topic, value, key)
                    break
                except BufferError:
                    # Local queue full: serve delivery reports until there is room again.
                    poll(0.05)
            produced += 1
            if produced % _POLL_EVERY == 0:
                poll(0)
                if produced >= next_progress:
                    next_progress += progress_every
                    elapsed = time.perf_counter() - started
                    logger.info(
                        "produced %d, delivered %d, %.0f events/s",
                        produced,
                        tracker.delivered,
                        produced / elapsed if elapsed else 0.0,
                    )
    deadline = time.monotonic() + flush_timeout
    remaining = producer.flush(flush_timeout)
    while remaining and time.monotonic() < deadline:
        remaining = producer.flush(max(0.1, deadline - time.monotonic()))
    if remaining:
        logger.error("%d messages still unacknowledged after %.0fs", remaining, flush_timeout)
    return produced


def produce_run(
    producer_factory: Callable[[dict[str, Any]], Producer],
    admin: AdminClient,
    staging_path: str | os.PathLike,
    topic: str,
    *,
    num_partitions: int,
    replication_factor: int = 1,
    producer_config: dict[str, Any] | None = None,
    expected_count: int | None = None,
    progress_every: int = DEFAULT_PROGRESS_EVERY,
    create_topic: Callable[[str, int, int], None] | None = None,
    logger: logging.Logger | Any = log,
) -> dict[str, Any]:
    """Ensure the topic, produce the staging file, check delivery, return the XCom summary.

    ``producer_factory(settings)`` builds the producer from PRODUCER_DEFAULTS + overrides +
    the delivery callback (the operator passes the provider hook, the benchmark a plain
    Producer). Raises ProduceError unless every staged line (and ``expected_count``, when given)
    was delivered.
    """
    partitions = ensure_topic(admin, topic, num_partitions, replication_factor, create=create_topic)
    tracker = DeliveryTracker(partitions)
    settings = {**PRODUCER_DEFAULTS, **(producer_config or {}), "on_delivery": tracker.callback()}
    producer = producer_factory(settings)
    logger.info(
        "Producing %s to topic %s (%d partitions), compression %s",
        staging_path,
        topic,
        len(partitions),
        settings.get("compression.type"),
    )
    started = time.perf_counter()
    produced = produce_messages(producer, staging_path, topic, tracker, progress_every=progress_every, logger=logger)
    elapsed = time.perf_counter() - started

    problems = []
    if tracker.delivered != produced:
        problems.append(
            f"{tracker.delivered} of {produced} staged events delivered, {tracker.failed} failed"
            + (f" (e.g. {tracker.errors[:3]})" if tracker.errors else "")
        )
    if expected_count is not None and int(expected_count) != tracker.delivered:
        problems.append(f"{tracker.delivered} delivered but validation accepted {int(expected_count)}")
    if problems:
        raise ProduceError(f"topic {topic}: " + "; ".join(problems))
    tracker.check_contiguous(topic)

    delivered_to = tracker.per_partition
    unused = [p for p in partitions if p not in delivered_to]
    watermarks = high_watermarks(admin, topic, unused) if unused else {}
    starting, ending = spark_offsets(topic, partitions, tracker, watermarks)
    summary = {
        "topic": topic,
        "staging_path": str(staging_path),
        "partitions": len(partitions),
        "produced": produced,
        "delivered": tracker.delivered,
        "failed": tracker.failed,
        "messages_by_partition": {str(p): n for p, n in sorted(delivered_to.items())},
        "starting_offsets": starting,
        "ending_offsets": ending,
        "compression": settings.get("compression.type"),
        "elapsed_seconds": round(elapsed, 3),
        "events_per_second": round(produced / elapsed, 1) if elapsed else None,
    }
    logger.info(
        "Delivered %d/%d events to %s in %.1fs (%.0f events/s); offsets %s -> %s",
        tracker.delivered,
        produced,
        topic,
        elapsed,
        summary["events_per_second"] or 0,
        starting,
        ending,
    )
    return summary


def produce_staging_file(
    staging_path: str | os.PathLike,
    topic: str,
    *,
    kafka_config: dict[str, Any],
    num_partitions: int | None = None,
    producer_config: dict[str, Any] | None = None,
    expected_count: int | None = None,
    progress_every: int = DEFAULT_PROGRESS_EVERY,
) -> dict[str, Any]:
    """``produce_run`` with plain confluent-kafka clients from a librdkafka config (no Airflow)."""
    return produce_run(
        lambda settings: Producer({**kafka_config, **settings}),
        AdminClient(dict(kafka_config)),
        staging_path,
        topic,
        num_partitions=num_partitions or int(os.environ.get("KAFKA_TOPIC_PARTITIONS", "3")),
        producer_config=producer_config,
        expected_count=expected_count,
        progress_every=progress_every,
    )
