"""ProduceEventsOperator: the staging file to Kafka with exact offsets (core: ecommerce_profiles.core.producer)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.exceptions import AirflowException
from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook
from airflow.sdk import BaseOperator
from confluent_kafka import KafkaException

from ecommerce_profiles.connections import KAFKA_CONN_ID, kafka_config, pipeline_names
from ecommerce_profiles.core.producer import DEFAULT_PROGRESS_EVERY, ProduceError, produce_run
from ecommerce_profiles.hooks.kafka import EventProducerHook


class ProduceEventsOperator(BaseOperator):
    """Produce a validation staging file (``key\\tJSON`` lines) to the topic, keyed by user_id.

    Fails unless every staged event was acknowledged and exactly ``expected_count`` were
    delivered. On success the staging file is deleted (``delete_staging``): the events are in
    Kafka, and a retry of a later task reads them from there. Returns (XCom) the offsets per
    partition as Spark JSON (ending exclusive), counts and throughput.
    """

    template_fields: Sequence[str] = ("staging_path", "topic", "expected_count")

    def __init__(
        self,
        *,
        staging_path: str,
        topic: str | None = None,
        kafka_config_id: str = KAFKA_CONN_ID,
        num_partitions: int | None = None,
        replication_factor: int = 1,
        producer_config: dict[str, Any] | None = None,
        expected_count: int | str | None = None,
        progress_every: int = DEFAULT_PROGRESS_EVERY,
        delete_staging: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.staging_path, self.topic, self.kafka_config_id = staging_path, topic, kafka_config_id
        self.num_partitions, self.replication_factor = num_partitions, replication_factor
        self.producer_config, self.expected_count = producer_config, expected_count
        self.progress_every, self.delete_staging = progress_every, delete_staging

    def execute(self, context: Any) -> dict[str, Any]:
        staging = Path(self.staging_path)
        if not staging.is_file():
            raise AirflowException(f"staging file {staging} does not exist (re-run validate_events)")
        names = pipeline_names()
        topic = self.topic or names.topic
        admin_hook = KafkaAdminClientHook(kafka_config_id=self.kafka_config_id)
        producer_hook = EventProducerHook(kafka_config_id=self.kafka_config_id)
        expected = None if self.expected_count in (None, "", "None") else int(self.expected_count)
        try:
            summary = produce_run(
                producer_hook.get_producer_with,
                admin_hook.get_conn,
                staging,
                topic,
                num_partitions=self.num_partitions or names.topic_partitions,
                replication_factor=self.replication_factor,
                producer_config=self.producer_config,
                expected_count=expected,
                progress_every=self.progress_every,
                create_topic=lambda t, n, r: admin_hook.create_topic([(t, n, r)]),
                logger=self.log,
            )
        except ProduceError as err:
            raise AirflowException(str(err)) from err
        except KafkaException as err:  # the broker did not answer (metadata, topic creation, offsets)
            raise AirflowException(
                f"Kafka at {kafka_config(self.kafka_config_id)['bootstrap.servers']}: {err}"
            ) from err
        if self.delete_staging:
            staging.unlink()
            try:
                staging.parent.rmdir()
            except OSError:  # the local quarantine copy may still be there; cleaned at run end
                pass
            self.log.info("Deleted the staging file %s (all %d events are in Kafka)", staging, summary["delivered"])
        return summary
