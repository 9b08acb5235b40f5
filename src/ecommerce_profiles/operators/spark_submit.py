"""SparkSubmitOperator for the profile job: conf from the connections, secrets in a 0600 file."""

from __future__ import annotations

import os
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import BaseHook

from ecommerce_profiles import lake as lake_layout
from ecommerce_profiles.connections import (
    ELASTICSEARCH_CONN_ID,
    KAFKA_CONN_ID,
    LAKE_CONN_ID,
    SPARK_CONN_ID,
    elasticsearch_settings,
    kafka_config,
    lake_settings,
    pipeline_names,
)
from ecommerce_profiles.spark_jobs.spark_conf import es_credentials_conf, job_conf, s3a_conf, split_secrets, write_properties_file


def spark_master(conn_id: str) -> str:
    """The master URL of a provider ``spark`` connection, as SparkSubmitHook builds it."""
    conn = BaseHook.get_connection(conn_id)
    return f"{conn.host}:{conn.port}" if conn.port else str(conn.host)


class ProfileJobSubmitOperator(SparkSubmitOperator):
    """The stock SparkSubmitOperator plus the job's Spark conf, built when the task runs.

    The s3a endpoint and keys come from the ``aws`` connection that points at MinIO, the
    Elasticsearch credentials from the ``elasticsearch`` connection, the connector jars from
    $SPARK_JARS_DIR. Secrets (S3 keys, ES user/password) go to spark-submit through a
    ``--properties-file`` readable only by this user and deleted afterwards: never on the
    command line (``ps``) nor in the task log. Anything passed in ``conf`` wins over defaults.

    The service endpoints and the pipeline's names are appended to ``application_args`` at run
    time (``--bootstrap-servers``, ``--topic``, ``--lake-uri``, ``--es-nodes``): the DAG passes
    only what belongs to the run.
    """

    def __init__(self, *, conn_id: str = SPARK_CONN_ID, lake_conn_id: str = LAKE_CONN_ID,
                 es_conn_id: str = ELASTICSEARCH_CONN_ID, kafka_conn_id: str = KAFKA_CONN_ID, **kwargs: Any) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        self.spark_conn_id, self.lake_conn_id, self.es_conn_id = conn_id, lake_conn_id, es_conn_id
        self.kafka_conn_id = kafka_conn_id

    def execute(self, context) -> None:
        lake = lake_settings(self.lake_conn_id)
        es = elasticsearch_settings(self.es_conn_id)
        master = spark_master(self.spark_conn_id)
        conf = job_conf(s3a_conf(lake.endpoint_url, lake.access_key, lake.secret_key, region=lake.region), master=master)
        conf.update(es_credentials_conf(es.username, es.password))
        if os.environ.get("SPARK_DRIVER_HOST"):  # cluster mode: where executors reach the driver
            conf["spark.driver.host"] = os.environ["SPARK_DRIVER_HOST"]
        names = pipeline_names()
        self.application_args = [
            *(self.application_args or []),
            "--bootstrap-servers", kafka_config(self.kafka_conn_id)["bootstrap.servers"],
            "--topic", names.topic,
            "--lake-uri", lake_layout.s3_uri(names.bucket, scheme="s3a"),
            "--es-nodes", es.url,
        ]
        public, secret = split_secrets({**conf, **(self.conf or {})})
        self.conf = public
        secrets_file = write_properties_file(secret)
        self.properties_file = str(secrets_file)
        try:
            return super().execute(context)
        finally:
            secrets_file.unlink(missing_ok=True)
