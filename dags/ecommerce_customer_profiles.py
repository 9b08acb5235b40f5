"""
### E-commerce customer profiles

`plan_run` → `wait_for_input` → `validate_events` → `produce_events` (Kafka) →
`create_profile_index` → `build_profiles` (Spark: Kafka → lake archive → profiles → MinIO +
Elasticsearch) → `publish_profiles` (check counts, move alias) → `import_kibana_objects` →
`summarise_run`, and `clean_up_run` whatever happened.

**Input** (params, all optional): leave `input_path` empty for the daily drop
`incoming/<run date>/` of the data directory (complete when it holds `_SUCCESS`), or name a
file inside the data directory such as `electronics.csv`. The snapshot date is the run's date
for daily drops and the last event date of a one-shot file; `snapshot_date` overrides both
(never in the future). `max_reject_fraction` fails the run when more invalid rows than that
are quarantined.

**Outputs**: profiles behind the Elasticsearch alias; in the lake bucket:
`raw/events/event_date=*/batch=*/` (each distinct event once; a run replaces only its own
batch), `profiles/snapshot_date=*/`, and the evidence of every run under
`runs/run_date=*/run=*/` with `runs/run_date=*/latest.json`. See README.md.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.standard.sensors.filesystem import FileSensor
from airflow.sdk import DAG, Param, task

from ecommerce_profiles.assets import PROFILE_ALIAS_ASSET, PROFILE_SNAPSHOT_ASSET
from ecommerce_profiles.core.paths import INCLUDE_DIR, SPARK_JOB_FILE
from ecommerce_profiles.core.run_plan import snapshot_date
from ecommerce_profiles.dag_defaults import DEFAULT_ARGS
from ecommerce_profiles.notifications import run_deadline, run_failure_notifier, success_summary_notifier
from ecommerce_profiles.operators import run_tasks
from ecommerce_profiles.operators.kibana import KibanaImportOperator
from ecommerce_profiles.operators.produce import ProduceEventsOperator
from ecommerce_profiles.operators.profile_index import (
    SUPERSEDED_XCOM_KEY,
    CreateProfileIndexOperator,
    PublishProfileIndexOperator,
)
from ecommerce_profiles.operators.spark_submit import ProfileJobSubmitOperator
from ecommerce_profiles.operators.validate import ValidateEventsOperator

PLAN = "ti.xcom_pull(task_ids='plan_run')"
SNAPSHOT = "{{ snapshot_date(" + PLAN + ", ti.xcom_pull(task_ids='validate_events')) }}"

with DAG(
    dag_id="ecommerce_customer_profiles",
    description="Clickstream CSV -> Kafka -> Spark -> customer profiles in MinIO and Elasticsearch",
    doc_md=__doc__,
    schedule="@daily",
    # Any date the validator accepts events for can be run or backfilled (a logical date before
    # start_date would create a run without tasks and report it successful).
    start_date=pendulum.datetime(1970, 1, 1, tz="UTC"),
    catchup=False,
    # A one-shot run does not queue behind a daily run whose sensor waits for its drop: runs
    # overlap, and the steps that share Kafka offsets, the archive and the alias run one at a
    # time across runs (max_active_tis_per_dag=1 below). Of overlapping runs for one snapshot
    # date, the newest build wins the alias (README, "Runs overlap safely").
    max_active_runs=4,
    tags=["ecommerce", "customer-profiles", "kafka", "spark", "elasticsearch"],
    default_args=DEFAULT_ARGS,
    # Alerts (docs/operations.md): a failed run mails; a run with a logical date not finished
    # PIPELINE_DEADLINE_HOURS after its day ended mails (DeadlineAlert); each task's last failed
    # try mails (DEFAULT_ARGS); summarise_run mails the counts when ALERT_ON_SUCCESS is on.
    on_failure_callback=[run_failure_notifier()],
    deadline=run_deadline(),
    params={
        # Optional params are nullable with a None default: the UI's trigger form is valid as it
        # opens (an empty required string would keep its Trigger button disabled).
        "input_path": Param(
            None,
            type=["null", "string"],
            description="One-shot CSV inside the data directory, e.g. electronics.csv; "
            "empty = the daily drop incoming/<run date>/",
        ),
        "snapshot_date": Param(
            None,
            type=["null", "string"],
            pattern=r"^\d{4}-\d{2}-\d{2}$",
            description="YYYY-MM-DD, not in the future; empty = run date (daily) or last event date (one-shot)",
        ),
        "max_reject_fraction": Param(
            0.01,
            type="number",
            minimum=0,
            maximum=1,
            description="Fail when invalid rows exceed this fraction of rows read",
        ),
        "profile_build": Param(
            "auto",
            type="string",
            enum=["auto", "full"],
            description="auto: start from the previous snapshot when the archive up to it is "
            "unchanged (docs/daily-operation.md); full: rebuild every profile "
            "from the archive",
        ),
    },
    user_defined_macros={"snapshot_date": snapshot_date},
    render_template_as_native_obj=False,
) as dag:
    # multiple_outputs: each key of the plan is its own XCom, so `plan["wait_path"]` below
    # hands one value to an operator (and makes it downstream of plan_run).
    @task(retries=0, execution_timeout=timedelta(minutes=5), multiple_outputs=True)
    def plan_run(params=None, dag_run=None) -> dict:
        """Decide input, batch, snapshot date and output prefixes from the run itself."""
        return run_tasks.plan(params, dag_run)

    plan = plan_run()

    wait_for_input = FileSensor(
        task_id="wait_for_input",
        filepath=plan["wait_path"],  # the drop's _SUCCESS marker, or the one-shot file itself
        fs_conn_id="fs_default",
        mode="reschedule",
        poke_interval=float(os.environ.get("PIPELINE_INPUT_POKE_SECONDS") or 60),
        # then the run fails and the "Input missing" alert names what it waited for
        timeout=int(timedelta(hours=float(os.environ.get("PIPELINE_INPUT_WAIT_HOURS") or 6)).total_seconds()),
        execution_timeout=timedelta(minutes=5),
    )

    validate_events = ValidateEventsOperator(
        task_id="validate_events",
        input_target=plan["input_target"],
        staging_dir=plan["staging_dir"],
        evidence_prefix=plan["evidence_prefix"],
        max_reject_fraction=plan["max_reject_fraction"],
        max_event_time=plan["max_event_time"],
    )

    produce_events = ProduceEventsOperator(
        task_id="produce_events",
        staging_path="{{ ti.xcom_pull(task_ids='validate_events')['staging_path'] }}",
        expected_count="{{ ti.xcom_pull(task_ids='validate_events')['rows_accepted'] }}",
        max_active_tis_per_dag=1,  # one producer at a time: each run's offset range is its own
    )

    create_profile_index = CreateProfileIndexOperator(task_id="create_profile_index", snapshot_date=SNAPSHOT)

    build_profiles = ProfileJobSubmitOperator(
        task_id="build_profiles",
        application=str(SPARK_JOB_FILE),
        name="customer_profiles",
        application_args=[
            "--starting-offsets",
            "{{ ti.xcom_pull(task_ids='produce_events')['starting_offsets'] }}",
            "--ending-offsets",
            "{{ ti.xcom_pull(task_ids='produce_events')['ending_offsets'] }}",
            "--expected-records",
            "{{ ti.xcom_pull(task_ids='produce_events')['delivered'] }}",
            "--snapshot-date",
            SNAPSHOT,
            "--run-date",
            "{{ " + PLAN + "['run_date'] }}",
            "--batch-id",
            "{{ " + PLAN + "['batch_id'] }}",
            "--profile-build",
            "{{ params.profile_build }}",
            "--es-index",
            "{{ ti.xcom_pull(task_ids='create_profile_index') }}",
            # relative to the lake: the run's own evidence folder
            "--summary-uri",
            "{{ " + PLAN + "['evidence_prefix'] }}/spark_summary.json",
        ],
        # the archive: one batch written at a time, so a later build read every earlier one's
        # batch. Each attempt (re)creates its index empty first (the task owns it).
        max_active_tis_per_dag=1,
    )

    publish_profiles = PublishProfileIndexOperator(
        task_id="publish_profiles",
        index=create_profile_index.output,
        summary_key="{{ " + PLAN + "['evidence_prefix'] }}/spark_summary.json",
        max_active_tis_per_dag=1,  # the alias: check and move in one step across runs
        # Downstream DAGs (the training set) are scheduled on these, with the snapshot date
        # and counts in the asset event's extra. Skipped, so no event, when a later build of the
        # same snapshot date is already published (this run's batch is in it).
        outlets=[PROFILE_SNAPSHOT_ASSET, PROFILE_ALIAS_ASSET],
    )

    import_kibana_objects = KibanaImportOperator(
        task_id="import_kibana_objects",
        ndjson_path=str(INCLUDE_DIR / "kibana" / "customer_profiles.ndjson"),
        kibana_conn_id="kibana_default",
    )

    @task(
        trigger_rule="none_failed",
        execution_timeout=timedelta(minutes=10),
        on_success_callback=[success_summary_notifier()],  # mails only when ALERT_ON_SUCCESS is on
    )
    def summarise_run(ti=None) -> dict:
        """Every count adds up; the run's summary goes to its evidence and to the log."""
        return run_tasks.summarise_run(
            plan=ti.xcom_pull(task_ids="plan_run"),
            validation=ti.xcom_pull(task_ids="validate_events"),
            produced=ti.xcom_pull(task_ids="produce_events"),
            published=ti.xcom_pull(task_ids="publish_profiles"),
            superseded=ti.xcom_pull(task_ids="publish_profiles", key=SUPERSEDED_XCOM_KEY),
            kibana_dashboard_url=ti.xcom_pull(task_ids="import_kibana_objects"),
        )

    @task(execution_timeout=timedelta(minutes=10))
    def clean_up_run(ti=None) -> dict:
        """Staging folder gone; the run's index deleted unless it was published."""
        return run_tasks.clean_up_run(
            plan=ti.xcom_pull(task_ids="plan_run"), index=ti.xcom_pull(task_ids="create_profile_index")
        )

    (
        plan
        >> wait_for_input
        >> validate_events
        >> produce_events
        >> create_profile_index
        >> build_profiles
        >> publish_profiles
        >> import_kibana_objects
        >> summarise_run()
        >> clean_up_run().as_teardown(setups=plan)
    )
