"""
### E-commerce customer profiles

`wait_for_dataset` → `validate_events` → `produce_events` (Kafka) → `create_profile_index` →
`build_profiles` (Spark: Kafka → lake archive → profiles → MinIO + Elasticsearch) →
`publish_profiles` (check counts, swap alias) → `import_kibana_objects` → `summarise_run`

**Input** (params): leave `input_path` empty for the daily drop `data/incoming/<ds>/*.csv`, or set
it to a whole file such as `data/electronics.csv` (absolute, or relative to the project). The
snapshot date is the run's date for daily drops and the last event date of a one-shot file;
`snapshot_date` overrides both. `max_reject_fraction` fails the run when more invalid rows than
that are quarantined.

**Outputs**: profiles behind the Elasticsearch alias `$ELASTICSEARCH_INDEX`; in the lake bucket
`$MINIO_BUCKET`: `raw/events/event_date=*/`, `profiles/snapshot_date=*/`,
`quarantine/run_date=*/`, `runs/run_date=*/`. Reruns and backfills of a date replace that
date's outputs. See README.md.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.standard.sensors.filesystem import FileSensor
from airflow.sdk import DAG, Param, task

from ecommerce_profiles.kibana import KibanaImportOperator
from ecommerce_profiles.producer import ProduceEventsOperator
from ecommerce_profiles.profile_index import CreateProfileIndexOperator, PublishProfileIndexOperator, elasticsearch_client
from ecommerce_profiles.paths import INCLUDE_DIR, SPARK_JOB_FILE
from ecommerce_profiles.run_plan import MACROS
from ecommerce_profiles.run_summary import check_and_summarise
from ecommerce_profiles.spark_submit import ProfileJobSubmitOperator
from ecommerce_profiles.validation import ValidateEventsOperator

TOPIC = os.environ.get("KAFKA_TOPIC", "ecommerce_events")
BUCKET = os.environ.get("MINIO_BUCKET", "datalake")
ALIAS = os.environ.get("ELASTICSEARCH_INDEX", "customer_profiles")
RUN_PREFIX = "runs/run_date={{ ds }}"

with DAG(
    dag_id="ecommerce_customer_profiles",
    description="Clickstream CSV -> Kafka -> Spark -> customer profiles in MinIO and Elasticsearch",
    doc_md=__doc__,
    schedule="@daily",
    # Early enough to backfill the Kaggle dataset's dates; catchup off so enabling it runs today only.
    start_date=pendulum.datetime(2020, 9, 24, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # runs share the topic's offsets bookkeeping and the alias
    tags=["ecommerce", "customer-profiles", "kafka", "spark", "elasticsearch"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "owner": "data-engineering"},
    params={
        # Optional params are nullable with a None default: the UI's trigger form is valid as it
        # opens (an empty required string would keep its Trigger button disabled).
        "input_path": Param(None, type=["null", "string"], description="One-shot CSV file; empty = daily drop data/incoming/<ds>/*.csv"),
        "snapshot_date": Param(None, type=["null", "string"], description="YYYY-MM-DD; empty = run date (daily) or last event date (one-shot)"),
        "max_reject_fraction": Param(0.01, type="number", minimum=0, maximum=1, description="Fail when invalid rows exceed this fraction"),
    },
    user_defined_macros=MACROS,
    render_template_as_native_obj=False,
) as dag:
    wait_for_dataset = FileSensor(
        task_id="wait_for_dataset",
        filepath="{{ input_glob(params, ds) }}",
        fs_conn_id="fs_default",
        mode="reschedule",
        poke_interval=60,
        timeout=int(timedelta(hours=6).total_seconds()),
    )

    validate_events = ValidateEventsOperator(
        task_id="validate_events",
        input_path="{{ input_glob(params, ds) }}",
        run_date="{{ ds }}",
        staging_dir="{{ staging_dir(run_id) }}",
        lake_conn_id="minio_default",
        bucket=BUCKET,
        max_reject_fraction="{{ params.max_reject_fraction }}",
    )

    produce_events = ProduceEventsOperator(
        task_id="produce_events",
        staging_path="{{ ti.xcom_pull(task_ids='validate_events')['staging_path'] }}",
        topic=TOPIC,
        kafka_config_id="kafka_default",
        expected_count="{{ ti.xcom_pull(task_ids='validate_events')['rows_accepted'] }}",
    )

    snapshot = "{{ snapshot_date(params, ds, ti.xcom_pull(task_ids='validate_events')) }}"

    create_profile_index = CreateProfileIndexOperator(
        task_id="create_profile_index",
        alias=ALIAS,
        snapshot_date=snapshot,
        es_conn_id="elasticsearch_default",
    )

    build_profiles = ProfileJobSubmitOperator(
        task_id="build_profiles",
        conn_id="spark_default",
        lake_conn_id="minio_default",
        application=str(SPARK_JOB_FILE),
        name="customer_profiles_{{ ds_nodash }}",
        application_args=[
            "--bootstrap-servers", "{{ conn.kafka_default.extra_dejson['bootstrap.servers'] }}",
            "--topic", TOPIC,
            "--starting-offsets", "{{ ti.xcom_pull(task_ids='produce_events')['starting_offsets'] }}",
            "--ending-offsets", "{{ ti.xcom_pull(task_ids='produce_events')['ending_offsets'] }}",
            "--snapshot-date", snapshot,
            "--run-date", "{{ ds }}",
            "--lake-uri", f"s3a://{BUCKET}",
            "--es-nodes", "{{ conn.elasticsearch_default.schema or 'http' }}://{{ conn.elasticsearch_default.host }}:{{ conn.elasticsearch_default.port }}",
            "--es-index", "{{ ti.xcom_pull(task_ids='create_profile_index') }}",
            "--summary-uri", f"s3a://{BUCKET}/{RUN_PREFIX}/spark_summary.json",
        ],
    )

    publish_profiles = PublishProfileIndexOperator(
        task_id="publish_profiles",
        alias=ALIAS,
        index="{{ ti.xcom_pull(task_ids='create_profile_index') }}",
        summary_key=f"{RUN_PREFIX}/spark_summary.json",
        bucket=BUCKET,
        lake_conn_id="minio_default",
        es_conn_id="elasticsearch_default",
    )

    import_kibana_objects = KibanaImportOperator(
        task_id="import_kibana_objects",
        ndjson_path=str(INCLUDE_DIR / "kibana" / "customer_profiles.ndjson"),
        kibana_conn_id="kibana_default",
    )

    @task(trigger_rule="none_failed")
    def summarise_run(ti=None) -> dict:
        """Documents behind the alias = profiles in the snapshot = distinct users; then the summary."""
        return check_and_summarise(
            es=elasticsearch_client("elasticsearch_default"),
            alias=ALIAS,
            bucket=BUCKET,
            validation=ti.xcom_pull(task_ids="validate_events"),
            produced=ti.xcom_pull(task_ids="produce_events"),
            published=ti.xcom_pull(task_ids="publish_profiles"),
            kibana_dashboard_url=ti.xcom_pull(task_ids="import_kibana_objects"),
        )

    (
        wait_for_dataset
        >> validate_events
        >> produce_events
        >> create_profile_index
        >> build_profiles
        >> publish_profiles
        >> import_kibana_objects
        >> summarise_run()
    )
