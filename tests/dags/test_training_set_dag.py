"""The training-set DAG: scheduled on the profile-snapshot asset, picks S, checks the archive,
submits the Spark job with its conf built at run time; and once end to end with `airflow dags test`.

The end-to-end test writes a tiny archive (31 days) with pyarrow into a private bucket, runs the
DAG with ``snapshot_date`` in a private Airflow DB and checks the training set, the asset event
and that the lake's secret key never reached the log. (The job itself is tested in depth in
tests/spark_jobs/test_training_set_job.py; the labels in tests/spark_jobs/test_label_transforms.py.)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from ecommerce_profiles.assets import PROFILE_SNAPSHOT_ASSET, TRAINING_SET_ASSET
from tests.support.lake_seed import archive_file_key, events_parquet

DAG_ID = "ecommerce_training_set"


@pytest.fixture(scope="module")
def module():
    from ecommerce_profiles import training_plan

    return training_plan


@pytest.fixture(scope="module")
def dag(project_root):
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(project_root / "dags" / "ecommerce_training_set.py"))
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


def test_scheduled_on_the_profile_snapshot_asset(dag):
    assert dag.schedule == [PROFILE_SNAPSHOT_ASSET]
    assert [t.task_id for t in dag.topological_sort()] == [
        "choose_snapshot_dates",
        "check_labels_complete",
        "build_training_set",
    ]
    build = dag.get_task("build_training_set")
    assert type(build).__name__ == "MappedOperator" and build.operator_class.__name__ == "TrainingSetSubmitOperator"
    assert build.partial_kwargs["application"].endswith("spark_jobs/training_set.py")
    assert TRAINING_SET_ASSET in build.partial_kwargs["outlets"]
    assert all(t.retries >= 2 for t in dag.tasks) and dag.tags and dag.doc_md


def test_params_are_valid_as_the_trigger_form_opens(dag):
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    assert dag.params.validate() == {"snapshot_date": None, "purchase_horizon_days": 7, "revenue_horizon_days": 30}
    for bad in (
        {"purchase_horizon_days": 0},
        {"revenue_horizon_days": 400},
        {"snapshot_date": "10/10/2020"},
        {"purchase_horizon_days": None},
    ):
        params = ParamsDict({k: v for k, v in dag.params.items()})
        with pytest.raises(ParamValidationError):
            for key, value in bad.items():
                params[key] = value
            params.validate()


def test_the_snapshot_date_comes_from_the_param_or_the_trigger_minus_the_longest_horizon(module):
    assert module.plan_snapshot_dates("2020-10-10", ["2020-12-01"], 30) == {
        "source": "param",
        "snapshot_dates": ["2020-10-10"],
        "triggered_by": [],
    }
    assert module.plan_snapshot_dates(None, ["2020-11-09", "2020-11-10", "2020-11-10"], 30) == {
        "source": "asset",
        "snapshot_dates": ["2020-10-10", "2020-10-11"],
        "triggered_by": ["2020-11-09", "2020-11-10"],
    }
    assert module.plan_snapshot_dates(None, [], 30)["source"] == "latest"
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException):
        module.plan_snapshot_dates("2020-13-01", [], 30)


def test_triggering_asset_events_are_read_through_airflows_accessor(module):
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    def event(asset, extra):
        return SimpleNamespace(
            asset=SimpleNamespace(name=asset.name, uri=asset.uri),
            extra=extra,
            source_aliases=[],
            source_dag_id="ecommerce_customer_profiles",
            source_task_id="publish_profiles",
        )

    accessor = TriggeringAssetEventsAccessor.build(
        [
            event(PROFILE_SNAPSHOT_ASSET, {"snapshot_date": "2020-11-10", "profiles": 5}),
            event(PROFILE_SNAPSHOT_ASSET, {"snapshot_date": "2020-11-09"}),
            event(PROFILE_SNAPSHOT_ASSET, {"profiles": 5}),  # no date: logged, ignored
            event(TRAINING_SET_ASSET, {"snapshot_date": "2019-01-01"}),  # another asset: ignored
        ]
    )
    assert module.triggered_snapshot_dates(accessor) == ["2020-11-09", "2020-11-10"]
    assert module.triggered_snapshot_dates(None) == []


def test_only_snapshots_with_a_complete_label_window_and_history_are_built(module):
    archive = [dt.date(2020, 10, 1) + dt.timedelta(days=n) for n in range(40)]  # 2020-10-01 .. 2020-11-09
    asset = {"source": "asset", "snapshot_dates": ["2020-09-20", "2020-10-09", "2020-10-10", "2020-10-11"]}
    ready, refused = module.ready_snapshot_dates(asset, archive, 7, 30)
    assert ready == ["2020-10-09", "2020-10-10"]
    assert len(refused) == 2 and "no history for snapshot 2020-09-20" in refused[0]
    assert "labels not complete yet for snapshot 2020-10-11" in refused[1] and "ends on 2020-11-10" in refused[1]
    # Empty param: the latest complete snapshot, last archived date - longest horizon.
    assert module.ready_snapshot_dates({"source": "latest", "snapshot_dates": []}, archive, 7, 30)[0] == ["2020-10-10"]
    assert module.ready_snapshot_dates({"source": "latest", "snapshot_dates": []}, archive, 7, 14)[0] == ["2020-10-26"]
    assert module.ready_snapshot_dates({"source": "latest", "snapshot_dates": []}, [], 7, 30) == (
        [],
        ["the event archive is empty: nothing to build"],
    )


def test_the_job_arguments_name_dates_and_places_never_a_credential(module):
    """The secrets reach spark-submit through LakeSparkSubmitOperator's 0600 properties file
    (tests/dags/test_secrets_stay_out_of_logs.py); the arguments hold none."""
    args = module.job_arguments("lake", "2020-10-10", 7, 30)
    assert args[:2] == ["--lake-uri", "s3a://lake"] and "--summary-uri" in args
    assert args[args.index("--snapshot-date") + 1] == "2020-10-10"
    for secret in (os.environ["MINIO_ROOT_PASSWORD"], os.environ.get("MINIO_PIPELINE_PASSWORD", "-")):
        assert secret not in " ".join(args)


# ------------------------------------------------------------------------------ end to end --
FIRST = dt.date(2020, 10, 1)
S = dt.date(2020, 10, 2)  # with the 7/30-day defaults the archive must reach 2020-11-01


def _archive_rows(day: dt.date) -> list[dict]:
    """User 1 views every day and buys 10.00 on S+1 and S+30; user 2 only views, on S."""
    when = dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC)
    rows = [
        dict(
            event_time=when,
            event_type="view",
            product_id=1,
            category_id=9,
            category_code=None,
            brand=None,
            price=10.0,
            user_id=1,
            user_session=f"s{day}",
        )
    ]
    if day in (S + dt.timedelta(days=1), S + dt.timedelta(days=30)):
        rows.append({**rows[0], "event_type": "purchase"})
    if day == S:
        rows.append({**rows[0], "user_id": 2})
    return rows


@pytest.fixture(scope="module")
def pipeline(stack, tmp_path_factory):
    from bench import services
    from tests.support.pipeline import make_pipeline, s3

    env = make_pipeline(tmp_path_factory.mktemp("training_set_dag"), prefix="training").env
    client = s3()
    for n in range(32):  # 2020-10-01 .. 2020-11-01
        day = FIRST + dt.timedelta(days=n)
        client.put_object(
            Bucket=env["MINIO_BUCKET"],
            Key=archive_file_key(day, f"drop-{day}"),
            Body=events_parquet(_archive_rows(day)),
        )
    yield env
    services.delete_bucket(env["MINIO_BUCKET"])


def _dags_test(env: dict, conf: dict) -> tuple[int, str]:
    cmd = ["airflow", "dags", "test", DAG_ID, "2020-11-02", "-c", json.dumps(conf)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    return result.returncode, result.stdout + result.stderr


def _run_states(env: dict, state: str | None = None) -> dict[str, str]:
    """Task states of the DAG's latest run in the private Airflow DB (optionally only ``state``)."""
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as con:
        run_id = con.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)
        ).fetchone()[0]
        rows = con.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", (DAG_ID, run_id)
        ).fetchall()
    return {task: s for task, s in rows if state is None or s == state}


def test_a_manual_run_builds_the_set_and_emits_the_asset_event(pipeline):
    from tests.support.pipeline import lake_json, lake_rows

    code, log = _dags_test(pipeline, {"snapshot_date": S.isoformat()})
    assert code == 0 and _run_states(pipeline) == {
        "build_training_set": "success",
        "check_labels_complete": "success",
        "choose_snapshot_dates": "success",
    }, log[-8000:]
    assert os.environ["MINIO_ROOT_PASSWORD"] not in log  # the keys went through the properties file
    assert "--properties-file" in log

    rows = {r["user_id"]: r for r in lake_rows(pipeline["MINIO_BUCKET"], f"training_sets/snapshot_date={S}/")}
    assert set(rows) == {1, 2}
    assert (rows[1]["purchased_within_7d"], rows[1]["revenue_within_30d"], rows[1]["purchases"]) == (True, 20.0, 0)
    assert (rows[2]["purchased_within_7d"], rows[2]["revenue_within_30d"], rows[2]["views"]) == (False, 0.0, 1)
    summary = lake_json(pipeline["MINIO_BUCKET"], f"training_sets/_summaries/snapshot_date={S}.json")
    assert summary["rows"] == 2 and summary["positives"] == {"purchased_within_7d": 1}

    db = Path(pipeline["AIRFLOW_HOME"]) / "airflow.db"
    with sqlite3.connect(db) as con:
        extras = [
            json.loads(e)
            for (e,) in con.execute(
                "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.name = ?",
                (TRAINING_SET_ASSET.name,),
            )
        ]
        labels = con.execute(
            "SELECT rendered_map_index FROM task_instance WHERE dag_id = ? AND task_id = ?",
            (DAG_ID, "build_training_set"),
        ).fetchall()
    assert labels == [(S.isoformat(),)]  # the mapped task is named after its snapshot date in the UI
    assert extras and extras[-1]["snapshot_date"] == S.isoformat() and extras[-1]["rows"] == 2
    assert extras[-1]["uri"] == f"s3://{pipeline['MINIO_BUCKET']}/training_sets/snapshot_date={S}"


def test_a_manual_run_for_an_incomplete_window_fails_saying_when(pipeline):
    code, log = _dags_test(pipeline, {"snapshot_date": "2020-10-05"})
    assert _run_states(pipeline)["check_labels_complete"] == "failed", log[-8000:]
    assert "build_training_set" not in _run_states(pipeline, "success")  # never submitted
    assert "labels not complete yet for snapshot 2020-10-05" in log and "last event date is 2020-11-01" in log
