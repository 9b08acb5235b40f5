"""DAG integrity: every DAG imports cleanly and cheaply, and the profile DAG keeps the promises
operators rely on (retries and timeouts, a form that is valid as it opens, one chain)."""

from __future__ import annotations

from datetime import timedelta

import pytest

DAG_ID = "ecommerce_customer_profiles"
CHAIN = [
    "plan_run",
    "wait_for_input",
    "validate_events",
    "produce_events",
    "create_profile_index",
    "build_profiles",
    "publish_profiles",
    "import_kibana_objects",
    "summarise_run",
    "clean_up_run",
]


@pytest.fixture(scope="module")
def dagbag(project_root):
    from airflow.models import DagBag

    return DagBag(dag_folder=str(project_root / "dags"))


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert DAG_ID in dagbag.dags


def test_every_task_has_an_execution_timeout_and_tags_and_docs(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md, f"{dag_id} has no doc_md"
        for t in dag.tasks:
            assert t.execution_timeout is not None and t.execution_timeout <= timedelta(hours=2), (dag_id, t.task_id)


def test_tasks_retry_except_the_plan_whose_errors_are_final(dagbag):
    dag = dagbag.dags[DAG_ID]
    retries = {t.task_id: t.retries for t in dag.tasks}
    assert retries.pop("plan_run") == 0
    assert min(retries.values()) >= 2, retries


def test_pipeline_is_one_chain_in_diagram_order(dagbag):
    dag = dagbag.dags[DAG_ID]
    assert dag.catchup is False
    assert sorted(dag.task_ids) == sorted(CHAIN)
    for position, task_id in enumerate(CHAIN):
        downstream = dag.get_task(task_id).downstream_task_ids
        if position + 1 < len(CHAIN):
            assert CHAIN[position + 1] in downstream, task_id
        # shortcuts (a task reading the plan's XCom) only ever point forward: no cycles, no reordering
        assert all(CHAIN.index(d) > position for d in downstream), (task_id, downstream)
    assert dag.get_task("clean_up_run").is_teardown  # runs whatever happened, does not decide the run's state


def test_runs_can_overlap_but_shared_steps_run_one_at_a_time(dagbag):
    dag = dagbag.dags[DAG_ID]
    assert dag.max_active_runs > 1  # a one-shot run does not queue behind a sensor waiting for a drop
    for task_id in ("produce_events", "build_profiles", "publish_profiles"):
        assert dag.get_task(task_id).max_active_tis_per_dag == 1, task_id


def test_the_trigger_form_is_valid_with_its_defaults(dagbag):
    """Every param validates with its default value (what the UI's form submits untouched)."""
    params = dagbag.dags[DAG_ID].params
    assert set(params.keys()) == {"input_path", "snapshot_date", "max_reject_fraction", "profile_build"}
    params.validate()  # raises ParamValidationError when a default does not satisfy its schema
    assert params["input_path"] is None and params["snapshot_date"] is None
    assert params["profile_build"] == "auto"


def test_profile_build_param_reaches_the_job_and_takes_only_its_modes(dagbag):
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags[DAG_ID]
    args = dag.get_task("build_profiles").application_args
    assert args[args.index("--profile-build") + 1] == "{{ params.profile_build }}"
    for mode in ("auto", "full"):
        params = ParamsDict(dict(dag.params.items()))
        params["profile_build"] = mode
        params.validate()
    params = ParamsDict(dict(dag.params.items()))
    with pytest.raises(ParamValidationError):
        params["profile_build"] = "incremental"
        params.validate()


def test_dates_long_before_the_dataset_still_create_tasks(dagbag):
    """A logical date before start_date would give a run without tasks, reported successful."""
    assert dagbag.dags[DAG_ID].start_date.year <= 1970


def test_sensor_waits_without_holding_a_worker(dagbag):
    sensor = dagbag.dags[DAG_ID].get_task("wait_for_input")
    assert sensor.mode == "reschedule"
    assert 0 < sensor.timeout <= 6 * 3600
