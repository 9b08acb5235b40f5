"""The benchmark's Spark floor (bench/spark_floor.py): submitted like the profile job, it counts
exactly the records of the offset range it is given, and the stage refuses a wrong count.
No timing is asserted."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture()
def topic_with_records(stack):
    from confluent_kafka import Producer

    from bench import services
    from ecommerce_profiles.connections import kafka_config_from_env
    from spark_jobs.spark_conf import offsets_json

    topic = f"bench_floor_{uuid.uuid4().hex[:8]}"
    partitions = services.create_topic(topic)
    producer = Producer(kafka_config_from_env())
    for i in range(250):
        producer.produce(topic, value=f"record {i}".encode(), partition=i % len(partitions))
    assert producer.flush(30) == 0
    # the range stops short of the last 10 records of partition 0
    ending = {p: sum(1 for i in range(250) if i % len(partitions) == p) for p in partitions}
    ending[0] -= 10
    yield {
        "topic": topic,
        "starting_offsets": offsets_json(topic, dict.fromkeys(partitions, 0)),
        "ending_offsets": offsets_json(topic, ending),
        "expected": 240,
    }
    services.delete_topics([topic])


def test_floor_counts_the_offset_range_and_refuses_a_wrong_count(topic_with_records, tmp_path):
    from bench import stages

    offsets = topic_with_records
    out = stages.stage_spark_floor(
        topic=offsets["topic"], offsets=offsets, expected=offsets["expected"], log_dir=tmp_path
    )
    assert out["spark_floor_s"] > 0 and out["spark_floor_startup_s"] > 0
    assert out["spark_floor_kafka_count_s"] > 0
    assert set(out["spark_floor_thread_cpu_s"]) >= {"spark_tasks", "jit_c2"}
    with pytest.raises(RuntimeError, match="counted 240 Kafka records, 241 were produced"):
        stages.stage_spark_floor(topic=offsets["topic"], offsets=offsets, expected=241, log_dir=tmp_path)
