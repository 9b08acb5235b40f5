"""Airflow 3 Assets of the pipeline: what downstream DAGs schedule on, instead of on time.

    PROFILE_SNAPSHOT_ASSET   s3://<bucket>/profiles                 the profile snapshots in the lake
    PROFILE_ALIAS_ASSET      elasticsearch://elasticsearch_default/<alias>
                                                                    the alias the profiles are served behind
    TRAINING_SET_ASSET       s3://<bucket>/training_sets            point-in-time training sets

The profile DAG's publish task declares the first two as outlets and attaches
``snapshot_asset_extra(summary)`` to their events, so a consumer knows *which* snapshot
arrived (``snapshot_date``) and how big it is without reading the lake. The training-set DAG
(dags/ecommerce_training_set.py) is scheduled on PROFILE_SNAPSHOT_ASSET and emits
TRAINING_SET_ASSET events (one per snapshot date written).

An asset stands for the whole dataset (every ``snapshot_date=`` partition); the event's extra
names the partition that changed. Nothing is done at import beyond building the Asset objects.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from airflow.sdk import Asset

from ecommerce_profiles.core import lake

# Names of this deployment's resources, read from the environment when the module is imported
# (the DAG processor's environment, which .env / Compose set; the defaults are the project's).
# This is the one exception to "names are read at run time": an Asset's URI is part of the
# DAG's definition, so it has to be known when the DAG is parsed. Both DAGs import these
# constants, so producer and consumer always agree on the URI.
_BUCKET = os.environ.get("MINIO_BUCKET", "datalake")
_ALIAS = os.environ.get("ELASTICSEARCH_INDEX", "customer_profiles")
# The URI names the Elasticsearch *connection* rather than a host:port, so the asset stays the
# same asset when the cluster's address changes (the address lives in the connection).
_ES_CONNECTION = "elasticsearch_default"

ASSET_GROUP = "customer_profiles"

PROFILE_SNAPSHOT_ASSET = Asset(
    name="customer_profile_snapshot",
    uri=lake.s3_uri(_BUCKET, lake.PROFILES_PREFIX),
    group=ASSET_GROUP,
    extra={"layout": f"{lake.PROFILES_PREFIX}/{lake.SNAPSHOT_PARTITION}=<YYYY-MM-DD>/ (Parquet)"},
)

PROFILE_ALIAS_ASSET = Asset(
    name="customer_profile_alias",
    uri=f"elasticsearch://{_ES_CONNECTION}/{_ALIAS}",
    group=ASSET_GROUP,
    extra={"kind": "elasticsearch alias", "document_id": "user_id"},
)

TRAINING_SET_ASSET = Asset(
    name="customer_training_set",
    uri=lake.s3_uri(_BUCKET, lake.TRAINING_SETS_PREFIX),
    group=ASSET_GROUP,
    extra={"layout": f"{lake.TRAINING_SETS_PREFIX}/{lake.SNAPSHOT_PARTITION}=<YYYY-MM-DD>/ (Parquet)"},
)


def _s3(uri: str | None) -> str | None:
    """Spark's ``s3a://`` as the ``s3://`` every other client (pandas, DuckDB, boto3) uses."""
    if uri and uri.startswith("s3a://"):
        return "s3://" + uri[len("s3a://") :]
    return uri


def snapshot_asset_extra(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The extra of a PROFILE_SNAPSHOT_ASSET / PROFILE_ALIAS_ASSET event, from the profile job's
    summary (spark_summary.json).

    Keys: ``snapshot_date`` (YYYY-MM-DD, the partition that was written), ``profiles`` (rows in
    the snapshot = documents behind the alias), ``distinct_users``, ``events`` (archived events
    the snapshot was built from), ``index`` (the dated Elasticsearch index the alias points to),
    ``snapshot_uri`` (``s3://``), plus ``run_date`` and ``batch_id`` when the summary has them.
    Raises ValueError without a snapshot date: consumers pick their work by it.
    """
    snapshot_date = summary.get("snapshot_date")
    if not snapshot_date:
        raise ValueError(f"profile job summary has no snapshot_date: {sorted(summary)}")
    extra: dict[str, Any] = {
        "snapshot_date": str(snapshot_date),
        "profiles": int(summary["profiles"]),
        "distinct_users": int(summary.get("distinct_users", summary["profiles"])),
        "events": int(summary["archive_events_total"]),
        "index": summary.get("es_index"),
        "snapshot_uri": _s3(summary.get("snapshot_uri")),
    }
    for key in ("run_date", "batch_id"):
        if summary.get(key) is not None:
            extra[key] = summary[key]
    return extra


def training_set_asset_extra(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The extra of a TRAINING_SET_ASSET event, from the training-set job's summary.

    Keys: ``snapshot_date`` (the partition written), ``label_window_end``, ``rows``,
    ``label_columns``, ``positives`` (per purchased_within_* label), ``label_revenue`` (per
    revenue_within_* label), ``uri`` (``s3://`` of the partition).
    """
    snapshot_date = summary.get("snapshot_date")
    if not snapshot_date:
        raise ValueError(f"training-set job summary has no snapshot_date: {sorted(summary)}")
    return {
        "snapshot_date": str(snapshot_date),
        "label_window_end": summary.get("label_window_end"),
        "rows": int(summary["rows"]),
        "label_columns": list(summary.get("label_columns", [])),
        "positives": dict(summary.get("positives", {})),
        "label_revenue": dict(summary.get("label_revenue", {})),
        "uri": _s3(summary.get("output_uri")),
    }
