"""The baseline the DAG's producer is compared with: the seed project's way of producing.

One ``KafkaProducer.send()`` per CSV row with kafka-python, each row a dict of strings serialised
by a JSON ``value_serializer``, no key, one ``flush()`` at the end. Delivery is counted from the
futures: a callback per acknowledged record, an errback per failed one, plus sends that raised
before a future existed (buffer full past ``max_block_ms``). Nothing here is tuned on purpose.
"""

from __future__ import annotations

import csv
import json
import time
import warnings
from collections.abc import Callable

from kafka import KafkaProducer


def produce_baseline(
    csv_path: str,
    bootstrap_servers: str,
    topic: str,
    *,
    max_events: int | None = None,
    progress: Callable[[int, float], None] | None = None,
    progress_every: int = 200_000,
) -> dict:
    """Send the CSV's rows (or its first ``max_events``) one by one; return counts and seconds."""
    with warnings.catch_warnings():
        # kafka-python 3 prefers Serializer classes; a plain function is what the seed used.
        warnings.simplefilter("ignore", DeprecationWarning)
        producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            value_serializer=lambda value: json.dumps(value).encode("utf-8"),
        )
    acknowledged = 0
    failed = 0

    # kafka-python runs these on its single sender thread, so the counters need no lock.
    def on_delivered(_metadata) -> None:
        nonlocal acknowledged
        acknowledged += 1

    def on_failed(_exc) -> None:
        nonlocal failed
        failed += 1

    sent = 0
    started = time.perf_counter()
    try:
        with open(csv_path, newline="") as handle:
            for row in csv.DictReader(handle):
                if max_events is not None and sent >= max_events:
                    break
                try:
                    future = producer.send(topic, value=row)
                except Exception:  # noqa: BLE001 - the baseline counts, it does not retry
                    failed += 1
                else:
                    future.add_callback(on_delivered)
                    future.add_errback(on_failed)
                sent += 1
                if progress and sent % progress_every == 0:
                    progress(sent, time.perf_counter() - started)
        producer.flush()
        seconds = time.perf_counter() - started
    finally:
        producer.close()
    return {
        "sent": sent,
        "acknowledged": acknowledged,
        "failed": failed,
        "seconds": seconds,
        "events_per_s": sent / seconds if seconds else 0.0,
    }
