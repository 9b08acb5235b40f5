"""
### E-commerce pipeline monitoring

Hourly, and right after every publish of the profile alias: is Kafka, MinIO and Elasticsearch
answering; is the alias's snapshot older than `MONITOR_MAX_SNAPSHOT_AGE_DAYS`; did the last
publish lower the number of users behind the alias; is the last run's reject fraction far above
the median of the runs before it. Each incident is mailed once (state in the Variable
`ecommerce_monitoring_state`). What each alert means and what to do: docs/operations.md.

The params choose which Airflow connections the checks use (defaults: the pipeline's) and
may override the snapshot age limit for one run.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param, task

from ecommerce_profiles.assets import PROFILE_ALIAS_ASSET
from ecommerce_profiles.connections import ELASTICSEARCH_CONN_ID, KAFKA_CONN_ID, LAKE_CONN_ID
from ecommerce_profiles.operators import monitoring

with DAG(
    dag_id="ecommerce_monitoring",
    description="Services answering, alias fresh and not shrinking, reject fraction normal; alerts once per incident",
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("@hourly", timezone="UTC"), assets=PROFILE_ALIAS_ASSET),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # the incident state is read and written by one run at a time
    tags=["ecommerce", "monitoring"],
    default_args={"owner": "data-engineering", "retries": 1, "retry_delay": timedelta(minutes=1)},
    params={
        "kafka_conn_id": Param(KAFKA_CONN_ID, type="string"),
        "lake_conn_id": Param(LAKE_CONN_ID, type="string"),
        "es_conn_id": Param(ELASTICSEARCH_CONN_ID, type="string"),
        "max_snapshot_age_days": Param(
            None, type=["null", "integer"], minimum=0, description="empty = MONITOR_MAX_SNAPSHOT_AGE_DAYS"
        ),
    },
) as dag:

    @task(execution_timeout=timedelta(minutes=5))
    def check_pipeline_health(params=None, **context) -> dict:
        """Every check; new incidents mailed once (ecommerce_profiles.core.monitoring)."""
        return monitoring.check_pipeline_health(
            context,
            kafka_conn_id=params["kafka_conn_id"],
            lake_conn_id=params["lake_conn_id"],
            es_conn_id=params["es_conn_id"],
            max_snapshot_age_days=params["max_snapshot_age_days"],
        )

    check_pipeline_health()
