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

import datetime as dt
import json
import logging
import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from ecommerce_profiles import lake
from ecommerce_profiles.assets import PROFILE_SNAPSHOT_ASSET, TRAINING_SET_ASSET, training_set_asset_extra
from ecommerce_profiles.connections import LAKE_CONN_ID, SPARK_CONN_ID
from ecommerce_profiles.paths import PACKAGE_DIR

LOG = logging.getLogger(__name__)
JOB_FILE = PACKAGE_DIR / "spark_jobs" / "training_set.py"


# ---------------------------------------------------------------- which snapshot dates (pure) --
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
            LOG.warning("asset event from %s.%s has no usable snapshot_date in its extra: %s",
                        event.source_dag_id, event.source_task_id, event.extra)
    return sorted(dates)


def ready_snapshot_dates(plan: dict, archive_dates: list[dt.date], purchase_days: int, revenue_days: int) -> tuple[list[str], list[str]]:
    """(snapshot dates whose training set can be built now, why each other one cannot)."""
    from ecommerce_profiles.spark_jobs.label_transforms import LabelHorizons
    from ecommerce_profiles.spark_jobs.training_set import TrainingSetNotReady, check_ready

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
    from ecommerce_profiles.spark_jobs.training_set import summary_key

    return [
        "--lake-uri", lake.s3_uri(bucket, scheme="s3a"),
        "--snapshot-date", snapshot_date,
        "--purchase-horizon-days", str(purchase_days),
        "--revenue-horizon-days", str(revenue_days),
        "--summary-uri", summary_key(snapshot_date),  # a key in the lake
    ]


def _argument(args: list[str], name: str) -> str:
    return str(args[list(args).index(name) + 1])


# ------------------------------------------------ the stock SparkSubmitOperator's run-time conf --
def with_job_conf(context) -> None:
    """pre_execute: the job's Spark conf from the connections, built when the task runs.

    As for the profile job: s3a endpoint and keys from the MinIO connection, the connector jars
    from $SPARK_JARS_DIR, the master from ``spark_default``. The keys go to spark-submit in a
    ``--properties-file`` readable only by this user (deleted by ``drop_secrets``), never on
    the command line, in the task log or in the rendered arguments.
    """
    from airflow.sdk import BaseHook

    from ecommerce_profiles.connections import lake_settings
    from ecommerce_profiles.spark_jobs.spark_conf import job_conf, s3a_conf, split_secrets, write_properties_file

    operator = context["task"]
    settings = lake_settings(LAKE_CONN_ID)
    spark = BaseHook.get_connection(SPARK_CONN_ID)
    master = f"{spark.host}:{spark.port}" if spark.port else str(spark.host)
    conf = job_conf(s3a_conf(settings.endpoint_url, settings.access_key, settings.secret_key, region=settings.region),
                    master=master)
    if os.environ.get("SPARK_DRIVER_HOST"):  # cluster mode: where executors reach the driver
        conf["spark.driver.host"] = os.environ["SPARK_DRIVER_HOST"]
    public, secret = split_secrets({**conf, **(operator.conf or {})})
    operator.conf = public
    operator.properties_file = str(write_properties_file(secret))


def drop_secrets(context) -> None:
    """Delete the properties file ``with_job_conf`` wrote (success, failure or retry)."""
    name = getattr(context["task"], "properties_file", None)
    if name and Path(name).name.startswith("spark-secrets-"):
        Path(name).unlink(missing_ok=True)


def record_training_set(context, result=None) -> None:
    """post_execute: drop the secrets, log the job's summary and put it on the asset event."""
    drop_secrets(context)
    from ecommerce_profiles.connections import lake_settings, pipeline_names

    args = context["task"].application_args
    key = _argument(args, "--summary-uri")
    body = lake_settings(LAKE_CONN_ID).boto3_client().get_object(Bucket=pipeline_names().bucket, Key=key)["Body"]
    summary = json.loads(body.read())
    LOG.info("training set %s: %d rows, positives %s, label revenue %s", summary["output_uri"], summary["rows"],
             summary["positives"], summary["label_revenue"])
    context["outlet_events"][TRAINING_SET_ASSET].extra = training_set_asset_extra(summary)


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
    default_args={
        "owner": "data-engineering",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "execution_timeout": timedelta(hours=2),
    },
    params={
        # Defaults make the trigger form valid as it opens (see the profile DAG).
        "snapshot_date": Param(None, type=["null", "string"], pattern=r"^\d{4}-\d{2}-\d{2}$",
                               description="S, YYYY-MM-DD (manual runs); empty = from the triggering "
                                           "profile snapshot (T - longest horizon) or the latest complete S"),
        "purchase_horizon_days": Param(7, type="integer", minimum=1, maximum=366,
                                       description="purchased_within_<n>d: a purchase dated S+1 ... S+n"),
        "revenue_horizon_days": Param(30, type="integer", minimum=1, maximum=366,
                                      description="revenue_within_<n>d: purchase revenue dated S+1 ... S+n"),
    },
) as dag:

    @task(execution_timeout=timedelta(minutes=5))
    def choose_snapshot_dates(params=None, triggering_asset_events=None) -> dict:
        """S from the param, or T − H for each triggering snapshot T, or 'latest'."""
        longest = max(int(params["purchase_horizon_days"]), int(params["revenue_horizon_days"]))
        plan = plan_snapshot_dates(params.get("snapshot_date"), triggered_snapshot_dates(triggering_asset_events), longest)
        LOG.info("source %s: triggered by %s, snapshot dates %s (longest horizon %d days)",
                 plan["source"], plan["triggered_by"] or "-", plan["snapshot_dates"] or "latest complete", longest)
        return plan

    @task(execution_timeout=timedelta(minutes=10))
    def check_labels_complete(plan: dict, params=None) -> list[list[str]]:
        """Only the S whose label window the archive covers go on; skip (scheduled) or fail (manual) otherwise."""
        from ecommerce_profiles.connections import lake_settings, pipeline_names
        from ecommerce_profiles.spark_jobs.training_set import event_dates_from_paths

        bucket = pipeline_names().bucket
        pages = lake_settings(LAKE_CONN_ID).boto3_client().get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{lake.archive_key()}/{lake.EVENT_DATE_PARTITION}=")
        dates = event_dates_from_paths(item["Key"] for page in pages for item in page.get("Contents", []))
        LOG.info("archive s3://%s/%s: %s", bucket, lake.archive_key(),
                 f"{len(dates)} event dates, {dates[0]} .. {dates[-1]}" if dates else "empty")
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

    build_training_set = SparkSubmitOperator.partial(
        task_id="build_training_set",
        application=str(JOB_FILE),
        conn_id=SPARK_CONN_ID,
        name="training_set",
        pre_execute=with_job_conf,
        post_execute=record_training_set,
        on_failure_callback=drop_secrets,
        on_retry_callback=drop_secrets,
        outlets=[TRAINING_SET_ASSET],
        max_active_tis_per_dag=1,  # one Spark job at a time (2 local cores)
        map_index_template="{{ task.application_args[task.application_args.index('--snapshot-date') + 1] }}",
    ).expand(application_args=checked)
