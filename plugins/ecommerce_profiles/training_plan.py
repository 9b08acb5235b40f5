"""Which snapshot dates a training-set run builds, and the Spark job's arguments (no Airflow
objects beyond the exception types, no Spark: the DAG's tasks call these).

A profile snapshot of date T completes the label window of S = T - H (H = the longest
horizon), so an asset event for T asks for S = T - H; a manual run names S or takes the latest
complete one. ``ready_snapshot_dates`` keeps the S whose window the archive covers.
"""

from __future__ import annotations

import datetime as dt
import logging
from datetime import timedelta

from airflow.sdk.exceptions import AirflowFailException

from ecommerce_profiles.assets import PROFILE_SNAPSHOT_ASSET
from ecommerce_profiles.core import lake
from ecommerce_profiles.core.training_window import LabelHorizons, TrainingSetNotReady, check_ready

LOG = logging.getLogger(__name__)


def plan_snapshot_dates(snapshot_param: str | None, triggered: list[str], max_horizon_days: int) -> dict:
    """The snapshot dates a run asks for, before looking at the lake.

    ``snapshot_param`` (manual) wins; else each triggering snapshot date T asks for T − H; with
    neither, ``snapshot_dates`` is empty and the check takes the latest complete one.
    """
    if snapshot_param:
        try:
            snapshot = dt.date.fromisoformat(snapshot_param)
        except ValueError as error:
            raise AirflowFailException(f"snapshot_date {snapshot_param!r} is not YYYY-MM-DD") from error
        return {"source": "param", "snapshot_dates": [snapshot.isoformat()], "triggered_by": []}
    if triggered:
        dates = sorted({(dt.date.fromisoformat(t) - timedelta(days=max_horizon_days)).isoformat() for t in triggered})
        return {"source": "asset", "snapshot_dates": dates, "triggered_by": sorted(set(triggered))}
    return {"source": "latest", "snapshot_dates": [], "triggered_by": []}


def triggered_snapshot_dates(triggering_asset_events) -> list[str]:
    """The ``snapshot_date`` extras of the profile-snapshot asset events that triggered the run."""
    events = triggering_asset_events.get(PROFILE_SNAPSHOT_ASSET, []) if triggering_asset_events else []
    dates = set()
    for event in events:
        value = (event.extra or {}).get("snapshot_date")
        try:
            dates.add(dt.date.fromisoformat(str(value)).isoformat())
        except ValueError:
            LOG.warning(
                "asset event from %s.%s has no usable snapshot_date in its extra: %s",
                event.source_dag_id,
                event.source_task_id,
                event.extra,
            )
    return sorted(dates)


def ready_snapshot_dates(
    plan: dict, archive_dates: list[dt.date], purchase_days: int, revenue_days: int
) -> tuple[list[str], list[str]]:
    """(snapshot dates whose training set can be built now, why each other one cannot)."""
    horizons = LabelHorizons(purchase_days, revenue_days)
    candidates = [dt.date.fromisoformat(d) for d in plan["snapshot_dates"]]
    if plan["source"] == "latest":
        if not archive_dates:
            return [], ["the event archive is empty: nothing to build"]
        candidates = [archive_dates[-1] - timedelta(days=horizons.max_days)]
    ready, refused = [], []
    for snapshot in candidates:
        try:
            check_ready(archive_dates, snapshot, horizons)
            ready.append(snapshot.isoformat())
        except TrainingSetNotReady as reason:
            refused.append(str(reason))
    return ready, refused


def job_arguments(bucket: str, snapshot_date: str, purchase_days: int, revenue_days: int) -> list[str]:
    """The Spark job's arguments for one S: names and dates only, never a credential."""
    return [
        "--lake-uri",
        lake.s3_uri(bucket, scheme="s3a"),
        "--snapshot-date",
        snapshot_date,
        "--purchase-horizon-days",
        str(purchase_days),
        "--revenue-horizon-days",
        str(revenue_days),
        "--summary-uri",
        lake.training_summary_key(snapshot_date),  # a key in the lake
    ]
