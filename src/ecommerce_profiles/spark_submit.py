"""SparkSubmitOperator for the profile job, with its lake settings taken from an Airflow connection."""

from __future__ import annotations

import os
from typing import Any

from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from ecommerce_profiles.spark_jobs.spark_conf import job_conf, s3a_conf

try:  # Airflow 3 Task SDK
    from airflow.sdk import BaseHook
except ImportError:  # pragma: no cover - Airflow 2
    from airflow.hooks.base import BaseHook


class ProfileJobSubmitOperator(SparkSubmitOperator):
    """The stock SparkSubmitOperator plus the job's Spark conf, built when the task runs.

    The s3a endpoint and keys come from the `aws` connection that points at MinIO (endpoint_url
    in its extra), the connector jars from $SPARK_JARS_DIR: resolving them at run time keeps
    credentials out of the DAG file and lets the DAG parse where the jar cache is not present.
    Anything passed in ``conf`` wins over the defaults.
    """

    def __init__(self, *, lake_conn_id: str = "minio_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lake_conn_id = lake_conn_id

    def execute(self, context) -> None:
        conn = BaseHook.get_connection(self.lake_conn_id)
        endpoint = conn.extra_dejson.get("endpoint_url")
        if not endpoint:
            raise ValueError(f"connection {self.lake_conn_id} has no extra.endpoint_url (the MinIO URL)")
        region = conn.extra_dejson.get("region_name", "us-east-1")
        # The master decides how jars and the driver address are set (local vs a cluster).
        master = SparkSubmitHook(conn_id=self._conn_id)._resolve_connection()["master"]
        s3a = s3a_conf(endpoint, conn.login, conn.password, region=region)
        conf = job_conf(s3a, master=master)
        if os.environ.get("SPARK_DRIVER_HOST"):  # cluster mode: where executors reach the driver
            conf["spark.driver.host"] = os.environ["SPARK_DRIVER_HOST"]
        self.conf = {**conf, **(self.conf or {})}
        return super().execute(context)
