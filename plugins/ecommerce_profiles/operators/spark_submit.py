"""SparkSubmitOperators for the project's jobs: conf from the connections, secrets in a 0600 file."""

from __future__ import annotations

import json
import os
from typing import Any

from airflow.exceptions import AirflowException
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowFailException

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
from ecommerce_profiles.core import lake as lake_layout
from ecommerce_profiles.core.profile_index import IndexStateError, reset_build_index
from ecommerce_profiles.operators.profile_index import elasticsearch_client
from ecommerce_profiles.spark_submit_conf import (
    es_credentials_conf,
    job_conf,
    s3a_conf,
    split_secrets,
    write_properties_file,
)


def spark_master(conn_id: str) -> str:
    """The master URL of a provider ``spark`` connection, as SparkSubmitHook builds it."""
    conn = BaseHook.get_connection(conn_id)
    return f"{conn.host}:{conn.port}" if conn.port else str(conn.host)


class LakeSparkSubmitOperator(SparkSubmitOperator):
    """The stock SparkSubmitOperator plus the project's Spark conf, built when the task runs.

    The s3a endpoint and keys come from the ``aws`` connection that points at MinIO (and, with
    ``es_conn_id``, the Elasticsearch credentials from that connection), the connector jars
    from $SPARK_JARS_DIR, how jars reach executors from the master in ``conn_id``. Secrets
    (S3 keys, ES user/password) go to spark-submit through a ``--properties-file`` readable
    only by this user and deleted afterwards: never on the command line (``ps``), in the
    rendered fields nor in the task log. Anything passed in ``conf`` wins over the defaults.
    """

    def __init__(
        self,
        *,
        conn_id: str = SPARK_CONN_ID,
        lake_conn_id: str = LAKE_CONN_ID,
        es_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        self.spark_conn_id, self.lake_conn_id, self.es_conn_id = conn_id, lake_conn_id, es_conn_id

    def job_application_args(self, context) -> list[str]:
        """Arguments added at run time after the rendered ``application_args``."""
        return []

    def execute(self, context) -> None:
        lake = lake_settings(self.lake_conn_id)
        conf = job_conf(
            s3a_conf(lake.endpoint_url, lake.access_key, lake.secret_key, region=lake.region),
            master=spark_master(self.spark_conn_id),
        )
        if self.es_conn_id:
            es = elasticsearch_settings(self.es_conn_id)
            conf.update(es_credentials_conf(es.username, es.password))
        if os.environ.get("SPARK_DRIVER_HOST"):  # cluster mode: where executors reach the driver
            conf["spark.driver.host"] = os.environ["SPARK_DRIVER_HOST"]
        self.application_args = [*(self.application_args or []), *self.job_application_args(context)]
        public, secret = split_secrets({**conf, **(self.conf or {})})
        self.conf = public
        secrets_file = write_properties_file(secret)
        self.properties_file = str(secrets_file)
        try:
            return super().execute(context)
        finally:
            secrets_file.unlink(missing_ok=True)


class ProfileJobSubmitOperator(LakeSparkSubmitOperator):
    """The profile job: appends the service endpoints and the pipeline's names at run time
    (``--bootstrap-servers``, ``--topic``, ``--lake-uri``, ``--es-nodes``), so the DAG passes
    only what belongs to the run. When the job fails, the task's error names the stage and the
    service it was using (from the failure the job records at ``--summary-uri``), not only
    spark-submit's exit code.

    The task owns its Elasticsearch index (``--es-index``): every attempt starts by creating it
    afresh (ecommerce_profiles.core.profile_index.reset_build_index), so a retry never writes into
    an index that is gone or half-written, and the index's creation time is the build's start,
    which publish_profiles uses to let the newest build of a snapshot date win."""

    def execute(self, context) -> None:
        args = list(self.application_args or [])
        index = args[args.index("--es-index") + 1]
        try:
            done = reset_build_index(elasticsearch_client(self.profile_es_conn_id), pipeline_names().alias, index)
        except IndexStateError as error:
            raise AirflowFailException(str(error)) from error
        self.log.info("Index %s %s empty for this attempt of the job", index, done)
        try:
            return super().execute(context)
        except AirflowException as error:
            raise AirflowException(f"{self._recorded_failure() or 'the Spark job failed'} ({error})") from error

    def _recorded_failure(self) -> str | None:
        args = list(self.application_args or [])
        try:
            key = args[args.index("--summary-uri") + 1]
            summary = json.loads(
                S3Hook(aws_conn_id=self.lake_conn_id).read_key(key=key, bucket_name=pipeline_names().bucket)
            )
        except Exception:  # no record (the lake may be what failed): the exit code is all there is
            return None
        if summary.get("status") != "failed":
            return None
        return f"Spark job failed in stage {summary['failed_stage']} ({summary['service']}): {summary['error']}"

    def __init__(
        self, *, es_conn_id: str = ELASTICSEARCH_CONN_ID, kafka_conn_id: str = KAFKA_CONN_ID, **kwargs: Any
    ) -> None:
        super().__init__(es_conn_id=es_conn_id, **kwargs)
        self.profile_es_conn_id, self.kafka_conn_id = es_conn_id, kafka_conn_id

    def job_application_args(self, context) -> list[str]:
        names = pipeline_names()
        return [
            "--bootstrap-servers",
            kafka_config(self.kafka_conn_id)["bootstrap.servers"],
            "--topic",
            names.topic,
            "--lake-uri",
            lake_layout.s3_uri(names.bucket, scheme="s3a"),
            "--es-nodes",
            elasticsearch_settings(self.profile_es_conn_id).url,
        ]


class TrainingSetSubmitOperator(LakeSparkSubmitOperator):
    """The training-set job for one snapshot date; after it, the job's summary goes to the log
    and to the extra of the declared outlets' asset events."""

    def execute(self, context) -> None:
        from ecommerce_profiles.assets import training_set_asset_extra

        super().execute(context)
        args = list(self.application_args or [])
        key = args[args.index("--summary-uri") + 1]
        summary = json.loads(
            S3Hook(aws_conn_id=self.lake_conn_id).read_key(key=key, bucket_name=pipeline_names().bucket)
        )
        self.log.info(
            "training set %s: %d rows, positives %s, label revenue %s",
            summary["output_uri"],
            summary["rows"],
            summary["positives"],
            summary["label_revenue"],
        )
        extra = training_set_asset_extra(summary)
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = extra
