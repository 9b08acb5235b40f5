"""
### Point-in-time training sets

`choose_snapshot_dates` → `check_labels_complete` → `build_training_set` (Spark, one mapped
task per snapshot date): writes `training_sets/snapshot_date=<S>/` in the lake bucket, every
customer-profile feature **as of S** plus labels computed **only from events after S**
(`purchased_within_<n>d`, `revenue_within_<n>d`). docs/profiles.md, "Training sets (point in
time)", defines the labels and shows how to load a set with pandas.

**Schedule: on data.** The DAG runs whenever the profile DAG publishes a snapshot (the
`customer_profile_snapshot` asset). A snapshot of date T is not what gets a training set that
day: its labels need the events of T+1 … T+H, which arrive over the next H days (H = the
longest horizon, 30 days by default). So an asset event for T builds the set for
**S = T − H**, the latest snapshot whose label window has just been completed by T's drop.
Several asset events in one run (a backfill) give one Spark task per S.

**Manual runs**: set `snapshot_date` to build the set for that S (the run fails, saying when
it will be possible, if the archive does not reach S + H yet); leave it empty to build the
latest complete one (S = last archived event date − H). The horizons are params too.

`check_labels_complete` lists the archive (`raw/events/event_date=*/`) and lets through only
the S whose whole label window is archived and which have history; when none is, a scheduled
run is **skipped** (e.g. the archive is younger than H days) and a manual run **fails**, each
with a message naming S, the window end and the archive's last date. It never waits: the
trigger arrives when the data is there, and a window completes only after days.

Each `build_training_set` task emits a `customer_training_set` asset event whose extra names
the snapshot date, rows and positives.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

import pendulum
from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from ecommerce_profiles.assets import PROFILE_SNAPSHOT_ASSET, TRAINING_SET_ASSET
from ecommerce_profiles.connections import LAKE_CONN_ID
from ecommerce_profiles.core import lake
from ecommerce_profiles.core.paths import TRAINING_SET_JOB_FILE
from ecommerce_profiles.dag_defaults import DEFAULT_ARGS
from ecommerce_profiles.notifications import run_failure_notifier
from ecommerce_profiles.operators.spark_submit import TrainingSetSubmitOperator
from ecommerce_profiles.training_plan import (
    job_arguments,
    plan_snapshot_dates,
    ready_snapshot_dates,
    triggered_snapshot_dates,
)

LOG = logging.getLogger(__name__)
JOB_FILE = TRAINING_SET_JOB_FILE


with DAG(
    dag_id="ecommerce_training_set",
    description="Point-in-time training sets: profile features as of S + labels from events after S",
    doc_md=__doc__,
    schedule=[PROFILE_SNAPSHOT_ASSET],
    start_date=pendulum.datetime(2020, 1, 1, tz="UTC"),
    catchup=False,
    # One Spark job at a time on a laptop-sized machine; later asset events queue their run.
    max_active_runs=1,
    tags=["ecommerce", "customer-profiles", "training-set", "spark", "assets"],
    default_args=DEFAULT_ARGS,
    on_failure_callback=[run_failure_notifier()],  # docs/operations.md (tasks: DEFAULT_ARGS)
    params={
        # Defaults make the trigger form valid as it opens (see the profile DAG).
        "snapshot_date": Param(
            None,
            type=["null", "string"],
            pattern=r"^\d{4}-\d{2}-\d{2}$",
            description="S, YYYY-MM-DD (manual runs); empty = from the triggering "
            "profile snapshot (T - longest horizon) or the latest complete S",
        ),
        "purchase_horizon_days": Param(
            7, type="integer", minimum=1, maximum=366, description="purchased_within_<n>d: a purchase dated S+1 ... S+n"
        ),
        "revenue_horizon_days": Param(
            30,
            type="integer",
            minimum=1,
            maximum=366,
            description="revenue_within_<n>d: purchase revenue dated S+1 ... S+n",
        ),
    },
) as dag:

    @task(execution_timeout=timedelta(minutes=5))
    def choose_snapshot_dates(params=None, triggering_asset_events=None) -> dict:
        """S from the param, or T − H for each triggering snapshot T, or 'latest'."""
        longest = max(int(params["purchase_horizon_days"]), int(params["revenue_horizon_days"]))
        plan = plan_snapshot_dates(
            params.get("snapshot_date"), triggered_snapshot_dates(triggering_asset_events), longest
        )
        LOG.info(
            "source %s: triggered by %s, snapshot dates %s (longest horizon %d days)",
            plan["source"],
            plan["triggered_by"] or "-",
            plan["snapshot_dates"] or "latest complete",
            longest,
        )
        return plan

    @task(execution_timeout=timedelta(minutes=10))
    def check_labels_complete(plan: dict, params=None) -> list[list[str]]:
        """Only the S whose label window the archive covers go on; skip (scheduled) or fail (manual) otherwise."""
        from ecommerce_profiles.connections import lake_settings, pipeline_names

        bucket, root = pipeline_names().bucket, f"{lake.archive_key()}/"
        pages = (
            lake_settings(LAKE_CONN_ID)
            .boto3_client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=bucket, Prefix=f"{root}{lake.EVENT_DATE_PARTITION}=")
        )
        keys = (item["Key"].removeprefix(root) for page in pages for item in page.get("Contents", []))
        dates = [date.fromisoformat(d) for d in lake.archive_event_dates(keys)]
        LOG.info(
            "archive s3://%s/%s: %s",
            bucket,
            lake.archive_key(),
            f"{len(dates)} event dates, {dates[0]} .. {dates[-1]}" if dates else "empty",
        )
        purchase, revenue = int(params["purchase_horizon_days"]), int(params["revenue_horizon_days"])
        ready, refused = ready_snapshot_dates(plan, dates, purchase, revenue)
        for reason in refused:
            LOG.warning("not built: %s", reason)
        if not ready:
            message = "no training set can be built: " + "; ".join(refused)
            if plan["source"] == "param":
                raise AirflowFailException(message)
            raise AirflowSkipException(message)
        LOG.info("building training sets for %s", ready)
        return [job_arguments(bucket, snapshot, purchase, revenue) for snapshot in ready]

    checked = check_labels_complete(choose_snapshot_dates())

    build_training_set = TrainingSetSubmitOperator.partial(
        task_id="build_training_set",
        application=str(JOB_FILE),
        name="training_set",
        outlets=[TRAINING_SET_ASSET],
        max_active_tis_per_dag=1,  # one Spark job at a time (2 local cores)
        map_index_template="{{ task.application_args[task.application_args.index('--snapshot-date') + 1] }}",
    ).expand(application_args=checked)
