"""Bodies of the DAG's Python tasks (plan_run, summarise_run, clean_up_run): Airflow glue only."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow.exceptions import AirflowException, AirflowFailException
from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from ecommerce_profiles.connections import ELASTICSEARCH_CONN_ID, LAKE_CONN_ID, pipeline_names
from ecommerce_profiles.core import lake
from ecommerce_profiles.core.paths import data_dir
from ecommerce_profiles.core.profile_index import discard_unpublished_index, profile_indices
from ecommerce_profiles.core.run_plan import PlanError, plan_run
from ecommerce_profiles.core.run_summary import CountMismatch, log_summary, summarise
from ecommerce_profiles.operators.profile_index import elasticsearch_client

log = logging.getLogger(__name__)


def plan(params: Mapping[str, Any], dag_run: Any) -> dict[str, Any]:
    """The run's plan; a bad parameter fails at once, without retries (it will not fix itself)."""
    try:
        result = plan_run(
            params,
            run_id=dag_run.run_id,
            logical_date=dag_run.logical_date,
            run_after=getattr(dag_run, "run_after", None),
            data_dir=data_dir(),
        )
    except PlanError as err:
        raise AirflowFailException(str(err)) from err
    log.info(
        "Plan: %s run for %s, input %s, batch %s, snapshot %s, evidence s3://%s/%s",
        result["mode"],
        result["run_date"],
        result["input_target"],
        result["batch_id"],
        result["snapshot_date"] or "(last event date)",
        pipeline_names().bucket,
        result["evidence_prefix"],
    )
    return result


def summarise_run(
    *,
    plan: Mapping[str, Any],
    validation: Mapping[str, Any],
    produced: Mapping[str, Any],
    published: Mapping[str, Any] | None,
    kibana_dashboard_url: str | None,
    superseded: Mapping[str, Any] | None = None,
    lake_conn_id: str = LAKE_CONN_ID,
    es_conn_id: str = ELASTICSEARCH_CONN_ID,
) -> dict[str, Any]:
    """Re-check every count, record the run (evidence + the date's latest pointer), log the summary.

    ``published`` is publish_profiles' result; when that task was skipped because a later build
    of the same snapshot date was already served, ``superseded`` (its XCom) stands in for it.
    Documents behind the alias are compared with the run's profiles only while the alias still
    points at the run's own index: an overlapping run may have moved it on since.
    """
    names = pipeline_names()
    if published is None:
        if superseded is None:
            raise AirflowException("publish_profiles left neither a result nor a 'superseded' record")
        published = superseded
    es = elasticsearch_client(es_conn_id)
    aliased_now = sorted(name for name, info in profile_indices(es, names.alias).items() if info["aliased"])
    behind_alias = (
        es.count(index=names.alias)["count"] if published["alias_moved"] and published["index"] in aliased_now else None
    )
    try:
        summary = summarise(
            plan=plan,
            bucket=names.bucket,
            alias=names.alias,
            validation=validation,
            produced=produced,
            published=published,
            behind_alias=behind_alias,
            alias_now_on=aliased_now,
            kibana_dashboard_url=kibana_dashboard_url,
        )
    except CountMismatch as err:
        raise AirflowException(str(err)) from err
    s3 = S3Hook(aws_conn_id=lake_conn_id)
    text = json.dumps(summary, indent=2)
    s3.load_string(
        text, key=f"{plan['evidence_prefix']}/{lake.RUN_SUMMARY_FILE}", bucket_name=names.bucket, replace=True
    )
    s3.load_string(text, key=lake.latest_run_key(plan["run_date"]), bucket_name=names.bucket, replace=True)
    log_summary(summary, log)
    return summary


def clean_up_run(
    *, plan: Mapping[str, Any] | None, index: str | None, es_conn_id: str = ELASTICSEARCH_CONN_ID
) -> dict[str, Any]:
    """Whatever happened: delete the run's local staging folder and, if the run did not publish
    its Elasticsearch index, that index (no orphans from failed runs)."""
    removed: dict[str, Any] = {"staging": None, "index": None}
    if plan:
        staging = Path(plan["staging_dir"])
        if staging.exists():
            shutil.rmtree(staging)
            removed["staging"] = str(staging)
    if index and discard_unpublished_index(elasticsearch_client(es_conn_id), pipeline_names().alias, index):
        removed["index"] = index
    log.info("Clean-up: %s", removed)
    return removed
