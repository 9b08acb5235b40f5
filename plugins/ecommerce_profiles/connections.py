"""The stack contract: Airflow connections (or, outside Airflow, the .env variables) -> settings.

One place turns ``kafka_default``, ``minio_default`` (an ``aws`` connection with
``endpoint_url``) and ``elasticsearch_default`` into plain settings objects with their
credentials; the operators, the Spark job's conf, the benchmark and the tests all build their
clients from these, so the URL and the auth of a service are spelled once.

Names of the pipeline's own resources (topic, bucket, alias) are read when a task runs, never at
DAG-parse time: ``pipeline_names()``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

KAFKA_CONN_ID = "kafka_default"
LAKE_CONN_ID = "minio_default"
ELASTICSEARCH_CONN_ID = "elasticsearch_default"
SPARK_CONN_ID = "spark_default"


@dataclass(frozen=True)
class PipelineNames:
    topic: str
    bucket: str
    alias: str
    topic_partitions: int = 3
    profile_replicas: int = 0


def _count_setting(environ: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    text = environ.get(name, "").strip() or str(default)
    if not text.isdigit() or int(text) < minimum:
        raise ValueError(f"{name}={text!r} in the environment (.env / Compose) is not a whole number >= {minimum}")
    return int(text)


def pipeline_names(environ: Mapping[str, str] = os.environ) -> PipelineNames:
    """The topic, lake bucket and Elasticsearch alias of this deployment (.env / Compose), with
    the topic's partitions and the replicas each published profile index gets."""
    return PipelineNames(
        topic=environ.get("KAFKA_TOPIC", "ecommerce_events"),
        bucket=environ.get("MINIO_BUCKET", "datalake"),
        alias=environ.get("ELASTICSEARCH_INDEX", "customer_profiles"),
        topic_partitions=_count_setting(environ, "KAFKA_TOPIC_PARTITIONS", 3, minimum=1),
        profile_replicas=_count_setting(environ, "ELASTICSEARCH_PROFILE_REPLICAS", 0, minimum=0),
    )


@dataclass(frozen=True)
class LakeSettings:
    """An S3-compatible store (MinIO): endpoint, keys and region."""

    endpoint_url: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    region: str = "us-east-1"

    def boto3_kwargs(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": self.region,
        }

    def boto3_client(self):
        import boto3

        return boto3.client("s3", **self.boto3_kwargs())

    def pyarrow_filesystem(self):
        import pyarrow.fs

        url = urlsplit(self.endpoint_url)
        return pyarrow.fs.S3FileSystem(
            access_key=self.access_key,
            secret_key=self.secret_key,
            endpoint_override=url.netloc,
            scheme=url.scheme or "https",
            region=self.region,
        )


@dataclass(frozen=True)
class ElasticsearchSettings:
    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"hosts": [self.url], "request_timeout": 60}
        if self.username:
            kwargs["basic_auth"] = (self.username, self.password or "")
        return kwargs

    def client(self):
        from elasticsearch import Elasticsearch

        return Elasticsearch(**self.client_kwargs())


def _airflow_connection(conn_id: str):
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


# ------------------------------------------------------------------ from Airflow connections --
def kafka_config(conn_id: str = KAFKA_CONN_ID) -> dict[str, Any]:
    """librdkafka settings of a provider ``kafka`` connection (its extra, as the provider reads it)."""
    config = dict(_airflow_connection(conn_id).extra_dejson)
    if not config.get("bootstrap.servers"):
        raise ValueError(f"Kafka connection {conn_id!r} has no bootstrap.servers in its extra")
    return config


def lake_settings(conn_id: str = LAKE_CONN_ID) -> LakeSettings:
    conn = _airflow_connection(conn_id)
    endpoint = conn.extra_dejson.get("endpoint_url")
    if not endpoint:
        raise ValueError(f"connection {conn_id!r} has no extra.endpoint_url (the MinIO URL)")
    if not conn.login or not conn.password:
        raise ValueError(f"connection {conn_id!r} has no access key/secret (login/password)")
    return LakeSettings(endpoint, conn.login, conn.password, conn.extra_dejson.get("region_name", "us-east-1"))


def elasticsearch_settings(conn_id: str = ELASTICSEARCH_CONN_ID) -> ElasticsearchSettings:
    conn = _airflow_connection(conn_id)
    scheme = conn.schema or conn.extra_dejson.get("scheme") or "http"
    return ElasticsearchSettings(
        f"{scheme}://{conn.host}:{conn.port or 9200}", conn.login or None, conn.password or None
    )


# ----------------------------------------------- outside Airflow: bench, scripts, tests (.env) --
def kafka_config_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    return {"bootstrap.servers": environ["KAFKA_BOOTSTRAP_SERVERS"]}


def lake_settings_from_env(environ: Mapping[str, str] = os.environ) -> LakeSettings:
    """The pipeline's own MinIO user when .env defines one, else the root account (local admin)."""
    access = environ.get("MINIO_PIPELINE_USER") or environ["MINIO_ROOT_USER"]
    secret = environ.get("MINIO_PIPELINE_PASSWORD") or environ["MINIO_ROOT_PASSWORD"]
    return LakeSettings(environ["MINIO_ENDPOINT"], access, secret)


def lake_admin_settings_from_env(environ: Mapping[str, str] = os.environ) -> LakeSettings:
    """The MinIO root account: only for tests and stack set-up (buckets of their own)."""
    return LakeSettings(environ["MINIO_ENDPOINT"], environ["MINIO_ROOT_USER"], environ["MINIO_ROOT_PASSWORD"])


def elasticsearch_settings_from_env(environ: Mapping[str, str] = os.environ) -> ElasticsearchSettings:
    """The pipeline's authenticated endpoint, as ``elasticsearch_default`` sees it: ELASTICSEARCH_AUTH_URL
    with ELASTICSEARCH_USER/ELASTICSEARCH_PASSWORD (locally the esproxy nginx, which demands them; in
    Compose Elasticsearch itself with security on). ELASTICSEARCH_URL when no AUTH_URL is defined."""
    return ElasticsearchSettings(
        environ.get("ELASTICSEARCH_AUTH_URL") or environ["ELASTICSEARCH_URL"],
        environ.get("ELASTICSEARCH_USER") or None,
        environ.get("ELASTICSEARCH_PASSWORD") or None,
    )


def elasticsearch_admin_settings_from_env(environ: Mapping[str, str] = os.environ) -> ElasticsearchSettings:
    """The admin/test endpoint ELASTICSEARCH_URL: locally the server itself, on loopback, without
    authentication (tests and stack set-up only; the pipeline goes through ``elasticsearch_settings_from_env``)."""
    return ElasticsearchSettings(environ["ELASTICSEARCH_URL"])
