"""The Airflow UI as a user meets it, in a real browser (Playwright driving Debian's Chromium).

Against a private Airflow (`airflow standalone` through scripts/airflow_local.sh, its own home,
ports, data directory, topic, bucket and alias: see airflow_ui_support.py) and the real local
stack: sign in, open the DAG, the trigger form is valid as it opens, trigger a one-shot run with
`input_path` set in the form (defaults left as they are, "unpause on trigger" included), the run
succeeds under the real scheduler, and the run summary is visible on summarise_run's log page.
Screenshots of the DAG graph, the finished run and the summary: $STACK_DIR/screenshots/, or
docs/screenshots/ with UPDATE_DOCS_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import time
import urllib.parse
import uuid

import pytest
from playwright.sync_api import expect

from bench import services
from bench.generator import write_events_csv
from tests.support.pipeline import remove_pipeline_resources

from .airflow_ui_support import (
    PrivateAirflow,
    chromium_page,
    open_dag,
    open_trigger_form,
    private_airflow,
    running_airflow,
    save_screenshot,
    sign_in,
)

pytestmark = pytest.mark.usefixtures("stack")  # the real local stack: an integration test

DAG_ID = "ecommerce_customer_profiles"
ONE_SHOT = "oneshot.csv"  # relative to the data directory, as a user types it
RUN_TIMEOUT = 15 * 60
TERMINAL = {"success", "failed"}


@pytest.fixture(scope="module")
def names(stack):
    """Our own topic, bucket and alias: nothing another test or the demo uses."""
    suffix = uuid.uuid4().hex[:10]
    return {
        "KAFKA_TOPIC": f"{os.environ['KAFKA_TOPIC']}_browser_{suffix}",
        # MINIO_BUCKET-<purpose>-<uuid>: the sibling buckets the pipeline's MinIO user may use
        "MINIO_BUCKET": f"{os.environ['MINIO_BUCKET']}-browser-{suffix}",
        # not "<alias>-...": that is the pattern of the real alias's dated indices
        "ELASTICSEARCH_INDEX": f"{os.environ['ELASTICSEARCH_INDEX']}_browser_{suffix}",
    }


@pytest.fixture(scope="module")
def pipeline_resources(names):
    """Our bucket, made first; afterwards it, the run's topic and its dated indices are deleted."""
    services.create_bucket(names["MINIO_BUCKET"])
    yield
    remove_pipeline_resources(names["MINIO_BUCKET"], names["KAFKA_TOPIC"], names["ELASTICSEARCH_INDEX"])


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, names, pipeline_resources):
    root = tmp_path_factory.mktemp("airflow_ui")
    data_dir = root / "data"
    data_dir.mkdir()
    write_events_csv(data_dir / ONE_SHOT, 3000, seed=1)
    instance = private_airflow(root, {**os.environ, **names, "PIPELINE_DATA_DIR": str(data_dir)})
    with running_airflow(instance, DAG_ID):
        yield instance


@pytest.fixture
def page(airflow, tmp_path):
    with chromium_page(tmp_path / "chromium-profile") as page:
        page.set_default_timeout(30_000)
        yield page


def wait_for_run(airflow: PrivateAirflow, run_id: str) -> str:
    quoted = urllib.parse.quote(run_id, safe="")
    deadline = time.monotonic() + RUN_TIMEOUT
    state = None
    while time.monotonic() < deadline:
        state = airflow.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{quoted}")["state"]
        if state in TERMINAL:
            return state
        time.sleep(5)
    pytest.fail(f"run {run_id} still {state} after {RUN_TIMEOUT}s:\n{airflow.failure_report(DAG_ID, run_id)}")


def manual_runs(airflow: PrivateAirflow) -> list[dict]:
    runs = airflow.get(f"/api/v2/dags/{DAG_ID}/dagRuns?run_type=manual&limit=50")["dag_runs"]
    return [run for run in runs if run["run_type"] == "manual"]


def the_triggered_run(airflow: PrivateAirflow, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while not (runs := manual_runs(airflow)) and time.monotonic() < deadline:
        time.sleep(1)
    assert len(runs) == 1, f"one manual run expected, found {runs}"
    return runs[0]


def test_sign_in_and_the_trigger_form_is_valid_as_it_opens(page, airflow):
    sign_in(page, airflow)
    open_dag(page, DAG_ID)
    dialog = open_trigger_form(page, DAG_ID)
    # Every optional param is empty and the form still validates: Trigger is enabled at once.
    assert dialog.locator("#element_input_path").input_value() == ""
    assert dialog.locator("#element_snapshot_date").input_value() == ""
    assert dialog.get_by_role("button", name="Trigger", exact=True).is_enabled()
    assert dialog.get_by_role("checkbox", name=f"Unpause {DAG_ID} on trigger").is_checked()
    dialog.get_by_role("button", name="Close").click()
    assert manual_runs(airflow) == [], "closing the form triggers nothing"


def test_one_shot_run_triggered_in_the_ui_succeeds_and_shows_its_summary(page, airflow):
    sign_in(page, airflow)
    open_dag(page, DAG_ID)

    dialog = open_trigger_form(page, DAG_ID)
    dialog.locator("#element_input_path").fill(ONE_SHOT)
    trigger = dialog.get_by_role("button", name="Trigger", exact=True)
    assert trigger.is_enabled()
    started = time.monotonic()
    trigger.click()  # "Unpause on trigger" stays ticked, as a user leaves it
    dialog.wait_for(state="hidden")

    run = the_triggered_run(airflow)
    assert run["conf"]["input_path"] == ONE_SHOT
    state = wait_for_run(airflow, run["dag_run_id"])
    assert state == "success", f"run {run['dag_run_id']} {state}:\n{airflow.failure_report(DAG_ID, run['dag_run_id'])}"
    print(f"one-shot run succeeded {time.monotonic() - started:.0f}s after the click")

    # The finished run: its page, grid and task table, every task green (the Kibana import is
    # skipped: the local stack has no Kibana).
    page.goto(f"{airflow.url}/dags/{DAG_ID}/runs/{urllib.parse.quote(run['dag_run_id'], safe='')}")
    page.get_by_role("button", name="Show Grid (Press g)").click()
    expect(page.get_by_role("heading", name=run["dag_run_id"])).to_be_visible()
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    tasks = len(airflow.get(f"/api/v2/dags/{DAG_ID}/tasks")["tasks"])
    expect(page.get_by_text(f"{tasks} Task Instances")).to_be_visible()
    save_screenshot(page, "airflow-finished-run")

    # summarise_run's log page, from the run's task list.
    page.get_by_role("table").get_by_role("link", name="summarise_run", exact=True).click()
    page.wait_for_url("**/runs/**/tasks/summarise_run")
    expect(page.get_by_text("Customer profiles as of").first).to_be_visible(timeout=60_000)
    page.get_by_role("button", name="Log Settings").click()
    page.get_by_role("menuitem", name="Wrap").click()  # the whole summary on screen
    save_screenshot(page, "airflow-run-summary-log")

    # The DAG graph with the run's task states, across the whole width.
    page.go_back()
    page.set_viewport_size({"width": 1600, "height": 640})
    page.get_by_role("button", name="Show Graph (Press g)").click()
    page.get_by_role("button", name="Collapse Details Panel").click()
    page.get_by_role("button", name="Fit View").click()
    expect(page.locator(".react-flow__node")).to_have_count(tasks)
    save_screenshot(page, "airflow-dag-graph")
