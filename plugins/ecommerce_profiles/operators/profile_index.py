"""Operators of the Elasticsearch index lifecycle (core: ecommerce_profiles.core.profile_index)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from airflow.exceptions import AirflowException
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.elasticsearch.hooks.elasticsearch import ElasticsearchPythonHook
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from ecommerce_profiles.assets import snapshot_asset_extra
from ecommerce_profiles.connections import ELASTICSEARCH_CONN_ID, LAKE_CONN_ID, elasticsearch_settings, pipeline_names
from ecommerce_profiles.core import lake
from ecommerce_profiles.core.profile_index import (
    DEFAULT_RETENTION,
    IndexStateError,
    PublishError,
    create_profile_index,
    publish_profile_index,
)

# The XCom key under which a superseded publish leaves its result (it returns none: it skips).
SUPERSEDED_XCOM_KEY = "superseded"


def elasticsearch_client(conn_id: str = ELASTICSEARCH_CONN_ID):
    """The official client through the provider's hook, with the connection's URL and auth."""
    settings = elasticsearch_settings(conn_id)
    kwargs = settings.client_kwargs()
    return ElasticsearchPythonHook(hosts=kwargs.pop("hosts"), es_conn_args=kwargs).get_conn


class CreateProfileIndexOperator(BaseOperator):
    """Create this run's dated profile index with the explicit mapping; return its name."""

    template_fields: Sequence[str] = ("alias", "snapshot_date")

    def __init__(
        self, *, snapshot_date: str, alias: str | None = None, es_conn_id: str = ELASTICSEARCH_CONN_ID, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.alias, self.snapshot_date, self.es_conn_id = alias, snapshot_date, es_conn_id

    def execute(self, context: Any) -> str:
        alias = self.alias or pipeline_names().alias
        index = create_profile_index(elasticsearch_client(self.es_conn_id), alias, str(self.snapshot_date))
        self.log.info("Created index %s with the profile mapping (alias %s not moved yet)", index, alias)
        return index


class PublishProfileIndexOperator(BaseOperator):
    """Check the Spark job's counts against the index, then move the alias to it.

    Checks: profiles in the snapshot == distinct users (the job's summary in the run's
    evidence) == documents in the new index, and the index has its ``replicas`` (default:
    ELASTICSEARCH_PROFILE_REPLICAS; it was loaded without). Keeps ``retention`` published
    indices for rollback. Returns the publish result merged with the job's summary.

    The newest build of a snapshot date wins: when a later build of the same date is already
    published (another run's, which read this run's batch too), this index is deleted and the
    task is **skipped**, so its outlets get no asset event (nothing announces a snapshot that
    is not served); the result goes to the ``superseded`` XCom for summarise_run. Run one at a
    time across runs (``max_active_tis_per_dag=1``). A missing index fails at once, without
    retries.
    """

    template_fields: Sequence[str] = ("alias", "index", "summary_key", "bucket")

    def __init__(
        self,
        *,
        index: str,
        summary_key: str,
        alias: str | None = None,
        bucket: str | None = None,
        retention: int = DEFAULT_RETENTION,
        replicas: int | None = None,
        lake_conn_id: str = LAKE_CONN_ID,
        es_conn_id: str = ELASTICSEARCH_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.alias, self.index, self.summary_key, self.bucket = alias, index, summary_key, bucket
        self.retention, self.replicas, self.lake_conn_id, self.es_conn_id = (
            retention,
            replicas,
            lake_conn_id,
            es_conn_id,
        )

    def execute(self, context: Any) -> dict[str, Any]:
        names = pipeline_names()
        alias, bucket = self.alias or names.alias, self.bucket or names.bucket
        replicas = names.profile_replicas if self.replicas is None else self.replicas
        summary = json.loads(S3Hook(aws_conn_id=self.lake_conn_id).read_key(key=self.summary_key, bucket_name=bucket))
        if summary["profiles"] != summary["distinct_users"]:
            raise AirflowException(
                f"Snapshot has {summary['profiles']} profiles for {summary['distinct_users']} distinct users "
                f"({lake.s3_uri(bucket, self.summary_key)}); the alias {alias} was NOT moved."
            )
        try:
            result = publish_profile_index(
                elasticsearch_client(self.es_conn_id),
                alias=alias,
                index=self.index,
                expected_docs=int(summary["profiles"]),
                retention=self.retention,
                replicas=replicas,
                run_id=context["run_id"],
            )
        except IndexStateError as err:
            raise AirflowFailException(str(err)) from err
        except PublishError as err:
            raise AirflowException(str(err)) from err
        if result["superseded_by"]:
            context["ti"].xcom_push(key=SUPERSEDED_XCOM_KEY, value={**result, "spark": summary})
            raise AirflowSkipException(
                f"Not published: snapshot {summary['snapshot_date']} is already served from {result['superseded_by']} "
                f"(run {result['superseded_by_run']}), built after this run's job and so from this run's batch too; "
                f"this run's index {self.index} ({summary['profiles']} profiles) was deleted. No asset event."
            )
        if result["alias_moved"]:
            self.log.info("Alias %s -> %s (%d profiles, %d replica(s))", alias, self.index, result["docs"], replicas)
        else:
            self.log.info(
                "Kept alias %s on the newer snapshot %s; %s holds this backfill's %d profiles",
                alias,
                result["alias_snapshot"],
                self.index,
                result["docs"],
            )
        if result["deleted_indices"]:
            self.log.info(
                "Deleted superseded indices: %s (keeping %d published)", result["deleted_indices"], self.retention
            )
        # Asset events of the declared outlets say which snapshot arrived and where it is served.
        extra = {**snapshot_asset_extra(summary), "alias_moved": result["alias_moved"]}
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = extra
        return {**result, "spark": summary}
