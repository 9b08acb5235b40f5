"""Runs that overlap, under the real scheduler: three runs of one snapshot date started at once.

A private Airflow (`airflow standalone` through scripts/airflow_local.sh: its own home, ports,
data directory, topic, bucket and alias; tests/browser/airflow_ui_support.py) on the real local
stack. One generated file is split in two halves, ``overlap/first.csv`` and
``overlap/second.csv``, that both end on the same date; three runs are triggered through the
REST API while the DAG is paused and start together when it is unpaused: the first file, the
second, and the first again (a rerun of a batch while its first run is still going).

The rule under test (README, "Runs overlap safely"): builds run one at a time, each
(re)creating its own index when it starts; the newest build of a snapshot date wins the alias,
whichever order the publishes come in; a publish that a later build of its date already
superseded deletes its index and is skipped, so it announces nothing.

Asserted: every run succeeds; the profiles behind the alias equal the DuckDB reference over both
files, field by field; the archive holds each distinct event once, in the two files' batches;
exactly one index remains (published, aliased); no staging is left; the asset events of the
snapshot never get smaller for the date and the last one names the served index.

Retries wait 5 s here instead of a minute (an Airflow cluster policy in the private home's
``config/airflow_local_settings.py``), so a transient failure costs seconds, not minutes.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from bench import services
from bench.generator import write_events_csv
from ecommerce_profiles.core import lake
from ecommerce_profiles.core.profile_index import profile_indices
from tests.browser.airflow_ui_support import PrivateAirflow, private_airflow, running_airflow
from tests.support.pipeline import (
    DAG_ID,
    alias_docs,
    distinct_valid_rows,
    elasticsearch,
    lake_rows,
    private_names_env,
    reference_mismatches,
    remove_pipeline_resources,
)

pytestmark = pytest.mark.usefixtures("stack")  # the real local stack: an integration test

SNAPSHOT = "2020-11-17"
RUN_TIMEOUT = 20 * 60
RETRY_POLICY = '''\
"""Test-only cluster policy: retries after 5 s instead of the DAGs' minute."""
from datetime import timedelta


def task_policy(task):
    task.retry_delay = timedelta(seconds=5)
'''


def split_in_two(source: Path, first: Path, second: Path) -> None:
    """Alternate data lines between two files, each with the header: both halves span the same dates."""
    first.parent.mkdir(parents=True, exist_ok=True)
    with source.open() as lines, first.open("w") as one, second.open("w") as two:
        header = next(lines)
        one.write(header)
        two.write(header)
        for number, line in enumerate(lines):
            (one if number % 2 == 0 else two).write(line)


def trigger_at_once(airflow: PrivateAirflow, confs: list[dict]) -> list[str]:
    """Trigger every run while the DAG is paused (they queue), then unpause: they start together.

    Unpausing also makes the scheduler create the latest daily run (catchup=False); its sensor
    waits for a drop that never comes, beside the three (max_active_runs is 4)."""
    airflow.set_paused(DAG_ID, True)
    run_ids = [airflow.trigger(DAG_ID, conf) for conf in confs]
    airflow.set_paused(DAG_ID, False)
    return run_ids


def asset_events(airflow: PrivateAirflow, name: str) -> list[dict]:
    path = f"/api/v2/assets/events?source_dag_id={DAG_ID}&name_pattern={name}&order_by=timestamp&limit=100"
    return [event for event in airflow.get(path)["asset_events"] if event["name"] == name]


def run_overlapping(root: Path, sources: list[Path], runs: list[int]) -> dict:
    """Each source file copied to ``overlap/<its name>`` in a fresh private pipeline's data dir,
    then one run per entry of ``runs`` (an index into ``sources``) triggered at once; returns
    what the assertions look at. The pipeline's bucket, topic and indices are deleted afterwards."""
    env = private_names_env(root, "overlap", os.environ)
    data_dir = Path(env["PIPELINE_DATA_DIR"])
    names = [f"overlap/{source.name}" for source in sources]
    paths = [data_dir / name for name in names]
    for source, path in zip(sources, paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
    instance = private_airflow(root, env, home=Path(env["AIRFLOW_HOME"]))
    (instance.home / "config").mkdir(parents=True, exist_ok=True)
    (instance.home / "config" / "airflow_local_settings.py").write_text(RETRY_POLICY)
    services.create_bucket(env["MINIO_BUCKET"])
    try:
        with running_airflow(instance, DAG_ID) as airflow:
            started = time.monotonic()
            run_ids = trigger_at_once(airflow, [{"input_path": names[i]} for i in runs])
            states = airflow.wait_for_runs(DAG_ID, run_ids, RUN_TIMEOUT)
            seconds = time.monotonic() - started
            failed = [run_id for run_id, state in states.items() if state != "success"]
            reports = "\n\n".join(airflow.failure_report(DAG_ID, run_id) for run_id in failed)
            assert not failed, f"runs not successful: {states}\n{reports}"
            result = {
                "env": env,
                "paths": paths,
                "names": names,
                "run_ids": run_ids,
                "seconds": seconds,
                "tasks": {run_id: airflow.task_states(DAG_ID, run_id) for run_id in run_ids},
                "snapshot_events": asset_events(airflow, "customer_profile_snapshot"),
                "alias_events": asset_events(airflow, "customer_profile_alias"),
                "indices": profile_indices(elasticsearch(), env["ELASTICSEARCH_INDEX"]),
                "docs": alias_docs(env["ELASTICSEARCH_INDEX"]),
                "archive": lake_rows(env["MINIO_BUCKET"], "raw/events/"),
            }
    except BaseException:
        remove_pipeline_resources(env["MINIO_BUCKET"], env["KAFKA_TOPIC"], env["ELASTICSEARCH_INDEX"])
        raise
    remove_pipeline_resources(env["MINIO_BUCKET"], env["KAFKA_TOPIC"], env["ELASTICSEARCH_INDEX"])
    print(f"{len(run_ids)} overlapping runs succeeded in {seconds:.0f} s; publish: ", end="")
    print({run_id: tasks["publish_profiles"] for run_id, tasks in result["tasks"].items()})
    return result


@pytest.fixture(scope="module")
def overlap(tmp_path_factory):
    root = tmp_path_factory.mktemp("overlap")
    write_events_csv(root / "source.csv", 4000, seed=7, start="2020-11-10", end=SNAPSHOT)
    halves = [root / "first.csv", root / "second.csv"]
    split_in_two(root / "source.csv", *halves)
    # the first file, the second, and the first again (a rerun of its batch while it runs)
    return run_overlapping(root / "pipeline", halves, runs=[0, 1, 0])


def test_the_halves_end_on_the_same_date(overlap):
    last_dates = {max(row[0][:10] for row in distinct_valid_rows([path])) for path in overlap["paths"]}
    assert last_dates == {SNAPSHOT}


def test_every_run_succeeded_and_the_newest_build_published_last(overlap):
    publishes = [tasks["publish_profiles"] for tasks in overlap["tasks"].values()]
    # Each run either served the date (success) or found a later build of it served (skipped);
    # the run whose build came last always publishes.
    assert set(publishes) <= {"success", "skipped"} and "success" in publishes, overlap["tasks"]
    for tasks in overlap["tasks"].values():
        assert tasks["summarise_run"] == "success" and tasks["clean_up_run"] == "success", tasks


def test_profiles_behind_the_alias_equal_the_reference_over_both_files(overlap):
    mismatches = reference_mismatches(overlap["docs"], overlap["paths"], SNAPSHOT)
    assert not mismatches, f"{len(mismatches)} differences, first: {mismatches[:10]}"
    assert len(overlap["docs"]) > 500


def test_the_archive_holds_each_distinct_event_once_in_the_files_batches(overlap):
    rows = distinct_valid_rows(overlap["paths"])
    archived = overlap["archive"]
    keys = {
        (
            r["event_time"].strftime("%Y-%m-%d %H:%M:%S UTC"),
            r["event_type"],
            r["product_id"],
            r["user_id"],
            r["user_session"],
            str(r["price"]),
        )
        for r in archived
    }
    assert len(archived) == len(keys) == len(rows), "an event archived twice, or one missing"
    assert {r["batch"] for r in archived} == {lake.file_batch_id(name) for name in overlap["names"]}


def test_one_index_remains_published_and_aliased(overlap):
    indices = overlap["indices"]
    assert len(indices) == 1, f"orphaned indices: {indices}"
    [(name, info)] = indices.items()
    assert info["aliased"] and info["published_at"] and info["snapshot"] == SNAPSHOT.replace("-", "")


def test_asset_events_never_announce_a_smaller_snapshot_than_the_last_one(overlap):
    served = next(iter(overlap["indices"]))
    for events in (overlap["snapshot_events"], overlap["alias_events"]):
        # one event per run that published, none from a skipped (superseded) publish
        published = [run for run, tasks in overlap["tasks"].items() if tasks["publish_profiles"] == "success"]
        assert sorted(e["source_run_id"] for e in events) == sorted(published)
        sizes = [
            (e["extra"]["events"], e["extra"]["profiles"]) for e in events if e["extra"]["snapshot_date"] == SNAPSHOT
        ]
        assert sizes == sorted(sizes), f"a later event announced a smaller snapshot: {sizes}"
        assert events[-1]["extra"]["index"] == served
        assert events[-1]["extra"]["profiles"] == len(overlap["docs"])


def test_no_staging_is_left(overlap):
    staging = Path(overlap["env"]["PIPELINE_DATA_DIR"]) / "staging"
    assert not staging.exists() or not any(staging.iterdir())
