"""The apache-kafka provider's producer hook, giving a producer with the pipeline's settings."""

from __future__ import annotations

from typing import Any

from airflow.providers.apache.kafka.hooks.produce import KafkaProducerHook
from confluent_kafka import Producer


class EventProducerHook(KafkaProducerHook):
    """``KafkaProducerHook`` + ``get_producer_with(settings)``: the connection's librdkafka config
    (bootstrap servers, security) with delivery and throughput settings added on top."""

    def get_producer_with(self, settings: dict[str, Any]) -> Producer:
        config = dict(self.get_connection(self.kafka_config_id).extra_dejson)
        return Producer({**config, **settings})
