"""Elasticsearch side of the profiles: a dated index per run, published behind an alias.

Each run writes into a fresh index ``<alias>-<snapshot yyyymmdd>-<run stamp>`` created with the
explicit mapping generated from src/ecommerce_profiles/schemas.py. Only after the Spark write succeeded and the
counts check out is the alias moved, atomically, so readers (Kibana, ML jobs) never see a half
written snapshot. A rerun of a date replaces that date's index; a backfill of an older date is
kept as its own index but does not steal the alias from a newer snapshot.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Sequence

from airflow.exceptions import AirflowException
from airflow.models import BaseOperator
from airflow.providers.elasticsearch.hooks.elasticsearch import ElasticsearchPythonHook

from ecommerce_profiles.schemas import ES_SERVING_SETTINGS, es_mapping

try:  # Airflow 3 Task SDK
    from airflow.sdk import BaseHook
except ImportError:  # pragma: no cover - Airflow 2
    from airflow.hooks.base import BaseHook


def elasticsearch_url(conn_id: str) -> tuple[str, dict[str, Any]]:
    """Turn an Airflow `elasticsearch` connection into (url, client kwargs)."""
    conn = BaseHook.get_connection(conn_id)
    scheme = conn.schema or conn.extra_dejson.get("scheme") or "http"
    url = f"{scheme}://{conn.host}:{conn.port or 9200}"
    kwargs: dict[str, Any] = {}
    if conn.login:
        kwargs["basic_auth"] = (conn.login, conn.password or "")
    return url, kwargs


def elasticsearch_client(conn_id: str):
    url, kwargs = elasticsearch_url(conn_id)
    # The provider's hook wraps the official client; it takes hosts rather than a conn id.
    return ElasticsearchPythonHook(hosts=[url], es_conn_args={"request_timeout": 60, **kwargs}).get_conn


def dated_index_name(alias: str, snapshot_date: str, run_stamp: str) -> str:
    stamp = re.sub(r"[^0-9a-z]", "", run_stamp.lower())[:20]
    return f"{alias}-{snapshot_date.replace('-', '')}-{stamp}"


def _snapshot_of(index: str, alias: str) -> str | None:
    match = re.fullmatch(re.escape(alias) + r"-(\d{8})-[0-9a-z]+", index)
    return match.group(1) if match else None


class CreateProfileIndexOperator(BaseOperator):
    """Create this run's dated profile index with the explicit mapping; return its name."""

    template_fields: Sequence[str] = ("alias", "snapshot_date")

    def __init__(self, *, alias: str, snapshot_date: str,
                 es_conn_id: str = "elasticsearch_default", **kwargs) -> None:
        super().__init__(**kwargs)
        self.alias, self.snapshot_date = alias, snapshot_date
        self.es_conn_id = es_conn_id

    def execute(self, context) -> str:
        es = elasticsearch_client(self.es_conn_id)
        # A fresh name per attempt: the index behind the alias is never written to in place.
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S%f")
        index = dated_index_name(self.alias, self.snapshot_date, stamp)
        es.indices.create(index=index, **es_mapping())
        self.log.info("Created index %s with the profile mapping (alias %s not moved yet)", index, self.alias)
        return index


def publish_profile_index(es, *, alias: str, index: str, expected_docs: int) -> dict[str, Any]:
    """Check the new index holds ``expected_docs`` documents, then move the alias atomically.

    Returns what was done. Older indices of the same snapshot date are deleted (a rerun leaves
    one copy); indices of other dates are kept. The alias only moves forward in time.
    """
    # The index was bulk-loaded with ES_LOAD_SETTINGS (no refresh, async translog).
    es.indices.put_settings(index=index, settings={"index": ES_SERVING_SETTINGS})
    es.indices.refresh(index=index)
    docs = es.count(index=index)["count"]
    if docs != expected_docs:
        raise AirflowException(
            f"Index {index} holds {docs} profile documents but the Spark job reported "
            f"{expected_docs} profiles; the alias {alias} was NOT moved."
        )
    snapshot = _snapshot_of(index, alias)
    if snapshot is None:
        raise AirflowException(f"Index name {index} does not follow <alias>-<yyyymmdd>-<stamp>")

    existing = es.indices.get(index=f"{alias}-*", ignore_unavailable=True, allow_no_indices=True)
    aliased = [name for name, body in existing.items() if alias in body.get("aliases", {})]
    aliased_snapshot = max((_snapshot_of(n, alias) or "" for n in aliased), default="")

    actions: list[dict[str, Any]] = []
    move_alias = snapshot >= aliased_snapshot
    if move_alias:
        actions += [{"remove": {"index": name, "alias": alias}} for name in aliased if name != index]
        actions.append({"add": {"index": index, "alias": alias}})
        es.indices.update_aliases(actions=actions)

    same_date = [n for n in existing if n != index and _snapshot_of(n, alias) == snapshot]
    for name in same_date:
        es.indices.delete(index=name)
    return {
        "index": index, "docs": docs, "alias_moved": move_alias,
        "alias_snapshot": snapshot if move_alias else aliased_snapshot,
        "deleted_indices": sorted(same_date),
    }


def read_lake_json(lake_conn_id: str, bucket: str, key: str) -> dict[str, Any]:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return json.loads(S3Hook(aws_conn_id=lake_conn_id).read_key(key=key, bucket_name=bucket))


class PublishProfileIndexOperator(BaseOperator):
    """Check the Spark job's counts against the index, then swap the alias to this run's index.

    Checks: profiles in the snapshot == distinct users (from the job's summary) == documents in
    the new index. Returns the publish result merged with the job's summary for the summary task.
    """

    template_fields: Sequence[str] = ("alias", "index", "summary_key")

    def __init__(self, *, alias: str, index: str, summary_key: str, bucket: str,
                 lake_conn_id: str = "minio_default", es_conn_id: str = "elasticsearch_default",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.alias, self.index, self.summary_key = alias, index, summary_key
        self.bucket, self.lake_conn_id, self.es_conn_id = bucket, lake_conn_id, es_conn_id

    def execute(self, context) -> dict[str, Any]:
        summary = read_lake_json(self.lake_conn_id, self.bucket, self.summary_key)
        if summary["profiles"] != summary["distinct_users"]:
            raise AirflowException(
                f"Snapshot has {summary['profiles']} profiles for {summary['distinct_users']} distinct "
                f"users (s3://{self.bucket}/{self.summary_key}); the alias {self.alias} was NOT moved."
            )
        es = elasticsearch_client(self.es_conn_id)
        result = publish_profile_index(es, alias=self.alias, index=self.index,
                                       expected_docs=int(summary["profiles"]))
        if result["alias_moved"]:
            self.log.info("Alias %s -> %s (%d profiles)", self.alias, self.index, result["docs"])
        else:
            self.log.info("Kept alias %s on the newer snapshot %s; %s holds this backfill's %d profiles",
                          self.alias, result["alias_snapshot"], self.index, result["docs"])
        if result["deleted_indices"]:
            self.log.info("Deleted superseded indices of the same date: %s", result["deleted_indices"])
        return {**result, "spark": summary}
