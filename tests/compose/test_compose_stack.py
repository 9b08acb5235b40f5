"""The Compose stack, started for real: every service in a container, the DAGs run by Airflow in them.

One stack for the whole module (conftest.py: ``make start STACK=compose`` under its own project
name and free ports, ``docker compose down -v`` at the end). The tests run in this order and
build on each other, as a user's first day would:

1. the stack is up: every service running and healthy, every one-shot service exited 0;
2. a CSV dropped into ./data and ``ecommerce_customer_profiles`` triggered through the api-server's
   REST API (POST /auth/token with .env's admin, then /api/v2): the run succeeds under the
   containerised scheduler (LocalExecutor, PostgreSQL) with Spark on the standalone cluster;
3. faults: the same file again with ``docker compose kill kafka`` before its produce step and
   ``docker compose kill minio`` while its Spark job writes the archive, each started again: the
   retry completes and the end state equals the clean run's (documents behind the alias, the
   archive's and the snapshot's rows, the counts of run_summary.json);
4. a daily folder ``incoming/<run date>/`` with ``_SUCCESS`` written last: the scheduled run (the
   DAG was unpaused in 2) picks it up;
5. the profiles behind the alias equal the DuckDB reference (bench/duckdb_reference.py) recomputed
   from the two CSVs, every field of every user;
6. the MinIO archive holds each distinct event once;
7. the Spark master's application list: the jobs ran on the standalone cluster, with executors on
   spark-worker (the worker's own list names the applications), not in local mode;
8. the profile snapshot's asset event triggered ``ecommerce_training_set``, which succeeded and
   wrote its training set;
9. Playwright + Debian's Chromium on the containerised UI: sign in, the trigger form is valid as it
   opens, a run started there succeeds;
10. every published port is bound to 127.0.0.1 (the containers' bindings and the listening sockets);
11. ``docker compose down -v`` leaves no container, network or volume
    of the project.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import time
import urllib.request
from collections import Counter

import pytest

from bench.generator import write_events_csv
from tests.browser.airflow_ui_support import chromium_page, open_dag, open_trigger_form, save_screenshot, sign_in
from tests.compose.compose_support import DATA_DIR, PROFILES_DAG, TRAINING_DAG, run_seconds
from tests.support.faults import end_state, lake_rows, summary_counts
from tests.support.pipeline import distinct_valid_rows
from tests.support.profile_compare import document_row, mismatches, reference_rows

pytestmark = pytest.mark.compose

ONE_SHOT = "compose-test/oneshot-events.csv"  # relative to the data directory, as a user names it
ONE_SHOT_EVENTS = 3000
# 47 days: the training set of S = last date - 30 days has history before S and a whole label window.
ONE_SHOT_DATES = ("2020-10-01", "2020-11-16")
DAILY_EVENTS = 1000
DAILY_DATES = ("2020-11-10", "2020-11-20")  # late events of dates the one-shot file holds too
UI_FILE = "compose-test/ui-events.csv"
OUTAGE_SECONDS = 20  # MinIO stays down this long in the middle of the Spark job's archive write
# Services that run once and exit (the rest must be running and healthy).
SERVICES_SEEN_EXITED = {"preflight", "airflow-init", "kafka-init", "minio-init", "es-init"}


def _say(message: str) -> None:
    print(f"[compose {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _write_csv(data_dir, relative: str, events: int, seed: int, dates: tuple[str, str], data_files):
    path = data_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent not in data_files and path.parent != data_dir:
        data_files.append(path.parent)
    write_events_csv(path, events, seed=seed, start=dates[0], end=dates[1])
    path.chmod(0o644)
    return path


def _run_report(airflow, dag_id: str, run: dict) -> str:
    return airflow.failure_report(dag_id, run["dag_run_id"])


# ------------------------------------------------------------------------------- 1. up --
def test_every_service_is_running_and_healthy_and_every_one_shot_exited_0(compose_stack, airflow, measurements):
    entries = compose_stack.services()
    assert entries, "no container of the project"
    problems = []
    for entry in entries:
        service, container_state = entry["Service"], entry["State"]
        if container_state == "exited":
            if entry.get("ExitCode") != 0:
                problems.append(f"{service} exited {entry.get('ExitCode')}")
        elif container_state != "running" or entry.get("Health") not in ("healthy", ""):
            problems.append(f"{service}: {container_state} {entry.get('Health')}")
    assert not problems, f"{problems}\n{json.dumps(entries, indent=1)[:4000]}"
    measurements["services"] = sorted(e["Service"] for e in entries)
    _say(f"services: {measurements['services']}")


# ------------------------------------------------------------ 2. one-shot via REST --
def test_a_csv_dropped_into_data_and_triggered_through_the_rest_api_succeeds(
    airflow, lake, data_files, state, measurements
):
    path = _write_csv(DATA_DIR, ONE_SHOT, ONE_SHOT_EVENTS, 25, ONE_SHOT_DATES, data_files)
    state["one_shot_csv"] = path
    # Paused at creation (AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION): a run of a paused DAG never
    # starts. Unpausing also gives the profiles DAG its scheduled run of today (it waits for its drop).
    for dag_id in (TRAINING_DAG, PROFILES_DAG):
        airflow.unpause(dag_id)
    started = time.monotonic()
    run = airflow.trigger(PROFILES_DAG, {"input_path": ONE_SHOT})
    assert run["conf"] == {"input_path": ONE_SHOT} and run["run_type"] == "manual"
    finished = airflow.wait_for_run(PROFILES_DAG, run["dag_run_id"])
    assert finished["state"] == "success", _run_report(airflow, PROFILES_DAG, run)
    measurements["one_shot_run"] = {
        "trigger_to_success_s": round(time.monotonic() - started, 1),
        "run_s": run_seconds(finished),
    }
    tis = airflow.task_instances(PROFILES_DAG, run["dag_run_id"])
    assert tis["build_profiles"]["state"] == "success" and tis["publish_profiles"]["state"] == "success"
    state["clean_run"] = finished
    state["clean_end"] = end_state(lake)
    summary = lake.run_summary(finished["dag_run_id"])
    assert summary["rows_read"] == ONE_SHOT_EVENTS, summary
    state["clean_summary"] = summary
    _say(f"one-shot run {run['dag_run_id']}: success, {measurements['one_shot_run']}")


# -------------------------------------------------------------------------- 3. faults --
def _attempt_failed(airflow, run_id: str, task_id: str):
    ti = airflow.task_instances(PROFILES_DAG, run_id).get(task_id, {})
    if ti.get("state") in ("up_for_retry", "failed"):
        return ti
    if ti.get("state") in ("success", "skipped"):
        raise AssertionError(f"{task_id} {ti['state']} while Kafka was down")
    return None


def _log_line(airflow, run_id: str, task_id: str, pattern: str):
    ti = airflow.task_instances(PROFILES_DAG, run_id).get(task_id, {})
    if ti.get("state") in ("success", "failed", "upstream_failed"):
        raise AssertionError(f"{task_id} ended ({ti['state']}) before its log showed {pattern!r}")
    if ti.get("state") != "running" or not ti.get("try_number"):
        return None
    log = airflow.task_log(PROFILES_DAG, run_id, task_id, ti["try_number"])
    return re.search(pattern, log) and ti


def test_kafka_and_minio_killed_mid_run_the_retry_completes_and_the_end_state_equals_the_clean_run(
    compose_stack, airflow, lake, state, measurements
):
    assert "clean_end" in state, "needs the clean one-shot run"
    notes: dict = {}
    started = time.monotonic()
    compose_stack.kill("kafka")
    try:
        run = airflow.trigger(PROFILES_DAG, {"input_path": ONE_SHOT})
        run_id = run["dag_run_id"]
        # Kafka down from before the run: produce_events' first attempt fails (its metadata
        # request gives up), then Kafka starts again before the retry (retry_delay 1 min).
        failed = airflow.wait_for(
            "produce_events' first attempt to fail", lambda: _attempt_failed(airflow, run_id, "produce_events"), 600
        )
        notes["kafka_down_until_attempt_failed_s"] = round(time.monotonic() - started, 1)
        notes["produce_first_attempt_log"] = airflow.task_log(
            PROFILES_DAG, run_id, "produce_events", failed["try_number"]
        )[-3000:]
        notes["kafka_start_s"] = round(compose_stack.start("kafka"), 1)
        # MinIO killed while the Spark job writes the archive; started again OUTAGE_SECONDS later.
        airflow.wait_for(
            "build_profiles' archive stage",
            lambda: _log_line(airflow, run_id, "build_profiles", r"stage archive: started"),
            900,
            interval=1,
        )
        compose_stack.kill("minio")
        time.sleep(OUTAGE_SECONDS)
        notes["minio_start_s"] = round(compose_stack.start("minio"), 1)
    finally:
        for service in ("kafka", "minio"):  # the rest of the suite needs a whole stack
            if compose_stack.state(service).get("State") != "running":
                compose_stack.start(service)
    finished = airflow.wait_for_run(PROFILES_DAG, run_id)
    notes["run_s"] = run_seconds(finished)
    notes["trigger_to_end_s"] = round(time.monotonic() - started, 1)
    tis = airflow.task_instances(PROFILES_DAG, run_id)
    notes["tries"] = {task: ti["try_number"] for task, ti in tis.items()}
    measurements["faulted_run"] = {k: v for k, v in notes.items() if not k.endswith("_log")}
    (compose_stack.log_dir / "faulted-run.json").write_text(json.dumps(notes, indent=2, default=str))
    _say(f"faulted run {run_id}: {finished['state']}, tries {notes['tries']}")
    assert finished["state"] == "success", _run_report(airflow, PROFILES_DAG, finished)
    assert tis["produce_events"]["try_number"] >= 2, "produce_events should have failed once while Kafka was down"
    assert re.search(r"(?i)kafka|broker|transport|timed out", notes["produce_first_attempt_log"]), notes[
        "produce_first_attempt_log"
    ]

    clean, faulted = state["clean_end"], end_state(lake)
    assert faulted.docs == clean.docs, "documents behind the alias differ from the clean run's"
    assert faulted.archive == clean.archive, "the archive's rows differ from the clean run's"
    assert faulted.snapshot == clean.snapshot, "the snapshot's rows differ from the clean run's"
    assert len(faulted.indices) == len(clean.indices) == 1, (clean.indices, faulted.indices)
    assert summary_counts(lake.run_summary(run_id)) == summary_counts(state["clean_summary"])


# --------------------------------------------------------------- 4. the daily drop --
def test_a_daily_drop_with_success_is_picked_up_by_the_scheduled_run(airflow, state, data_files, measurements):
    scheduled = airflow.wait_for(
        "the scheduled run the unpause created", lambda: airflow.runs(PROFILES_DAG, run_type="scheduled"), 120
    )
    run = scheduled[-1]
    assert run["state"] in ("queued", "running"), run
    run_date = (run.get("logical_date") or run["run_after"])[:10]
    folder = DATA_DIR / "incoming" / run_date
    assert not folder.exists(), f"{folder} exists already: somebody else's drop"
    data_files.append(folder)
    drop = _write_csv(DATA_DIR, f"incoming/{run_date}/events.csv", DAILY_EVENTS, 26, DAILY_DATES, [])
    (folder / "_SUCCESS").touch()  # last: the drop is complete
    state["daily_csv"], state["run_date"] = drop, run_date
    started = time.monotonic()
    finished = airflow.wait_for_run(PROFILES_DAG, run["dag_run_id"], timeout=1200)
    assert finished["state"] == "success", _run_report(airflow, PROFILES_DAG, finished)
    measurements["daily_run"] = {
        "drop_to_success_s": round(time.monotonic() - started, 1),
        "run_s": run_seconds(finished),
        "run_date": run_date,
    }
    _say(f"scheduled run {run['dag_run_id']} for {run_date}: success, {measurements['daily_run']}")


# ------------------------------------------------------------ 5., 6. outputs checked --
def test_the_profiles_behind_the_alias_equal_the_duckdb_reference(lake, state):
    csvs = [state["one_shot_csv"], state["daily_csv"]]
    docs = end_state(lake).docs
    reference = reference_rows(csvs, state["run_date"])
    assert len(docs) == len(reference) > 100
    ours = [document_row(doc) for doc in docs.values()]
    assert {str(row["user_id"]) for row in ours} == set(docs), "documents' _id is their user_id"
    wrong = mismatches(ours, reference)
    assert not wrong, f"{len(wrong)} differences (user, field, alias, reference), first: {wrong[:20]}"
    assert {row["snapshot_date"] for row in ours} == {dt.date.fromisoformat(state["run_date"])}


def test_the_archive_holds_each_distinct_event_once(lake, state):
    expected = distinct_valid_rows([state["one_shot_csv"], state["daily_csv"]])
    rows = [json.loads(row) for row, count in lake_rows(lake, "raw/events/").items() for _ in range(count)]
    events = Counter(json.dumps({k: v for k, v in r.items() if k not in ("batch", "event_date")}) for r in rows)
    twice = [event for event, count in events.items() if count > 1]
    assert not twice, f"{len(twice)} events archived more than once, e.g. {twice[:3]}"
    assert len(rows) == len(expected)
    assert {r["batch"] for r in rows} >= {f"drop-{state['run_date']}"}


# ------------------------------------------------------------------------- 7. Spark --
def _json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def test_spark_ran_on_the_standalone_cluster_with_executors_on_spark_worker(compose_stack, measurements):
    master = _json(compose_stack.url("SPARK_MASTER_UI_PORT") + "/json/")
    worker = _json(compose_stack.url("SPARK_WORKER_UI_PORT") + "/json/")
    assert master["url"].startswith("spark://") and master["status"] == "ALIVE"
    apps = master["completedapps"] + master["activeapps"]
    profile_apps = [a for a in apps if a["name"].startswith("customer_profiles")]
    # one-shot, faulted rerun (its Spark job ran once: Kafka was down before it) and the daily run
    assert len(profile_apps) >= 3, [a["name"] for a in apps]
    assert all(a["cores"] > 0 for a in profile_apps), profile_apps
    # The worker of this cluster ran the applications' executors.
    [registered] = [w for w in master["workers"] if w["id"] == worker["id"]]
    assert registered["state"] == "ALIVE"
    worker_container = compose_stack.inspect(*compose_stack.compose("ps", "-q", "spark-worker").stdout.split())[0]
    addresses = {n["IPAddress"] for n in worker_container["NetworkSettings"]["Networks"].values()}
    assert registered["host"] in addresses | {worker_container["Config"]["Hostname"]}, (registered, addresses)
    executor_apps = {e["appid"] for e in worker["finishedexecutors"] + worker["executors"]}
    assert {a["id"] for a in profile_apps} <= executor_apps, (executor_apps, [a["id"] for a in profile_apps])
    measurements["spark_apps"] = [
        {"name": a["name"], "id": a["id"], "cores": a["cores"], "duration_s": round(a.get("duration", 0) / 1000, 1)}
        for a in apps
    ]


# --------------------------------------------------------------- 8. the asset event --
def test_the_snapshot_asset_event_triggered_the_training_set_dag_and_it_succeeded(airflow, lake, measurements):
    def finished_runs():
        runs = airflow.runs(TRAINING_DAG, run_type="asset_triggered")
        return runs if runs and all(r["state"] in ("success", "failed") for r in runs) else None

    runs = airflow.wait_for("the asset-triggered training-set runs to finish", finished_runs, 900, interval=5)
    failed = [r for r in runs if r["state"] != "success"]
    assert not failed, "\n".join(_run_report(airflow, TRAINING_DAG, r) for r in failed)
    built = []
    for run in runs:
        for task, ti in airflow.task_instances(TRAINING_DAG, run["dag_run_id"]).items():
            if task.startswith("build_training_set") and ti["state"] == "success":
                built.append(run["dag_run_id"])
    assert built, "no asset-triggered run built a training set"
    # T = the one-shot's last event date; S = T - 30 days (the longest label horizon).
    expected_s = (dt.date.fromisoformat(ONE_SHOT_DATES[1]) - dt.timedelta(days=30)).isoformat()
    assert any(f"training_sets/snapshot_date={expected_s}/" in key for key in lake.keys("training_sets/"))
    measurements["training_runs"] = [
        {"run_id": r["dag_run_id"], "state": r["state"], "run_s": run_seconds(r)} for r in runs
    ]


# ------------------------------------------------------------------------ 9. the UI --
def test_the_ui_signs_in_the_trigger_form_is_valid_as_it_opens_and_a_run_started_there_succeeds(
    airflow, data_files, tmp_path, measurements
):
    _write_csv(DATA_DIR, UI_FILE, 500, 27, ONE_SHOT_DATES, data_files)
    before = {r["dag_run_id"] for r in airflow.runs(PROFILES_DAG, run_type="manual")}
    with chromium_page(tmp_path / "chromium-profile") as page:
        page.set_default_timeout(60_000)
        sign_in(page, airflow)
        open_dag(page, PROFILES_DAG)
        dialog = open_trigger_form(page, PROFILES_DAG)
        # Every optional param empty and the form valid: Trigger is enabled at once.
        assert dialog.locator("#element_input_path").input_value() == ""
        assert dialog.get_by_role("button", name="Trigger", exact=True).is_enabled()
        dialog.locator("#element_input_path").fill(UI_FILE)
        started = time.monotonic()
        dialog.get_by_role("button", name="Trigger", exact=True).click()
        dialog.wait_for(state="hidden")
        new = airflow.wait_for(
            "the run triggered in the UI",
            lambda: [r for r in airflow.runs(PROFILES_DAG, run_type="manual") if r["dag_run_id"] not in before],
            60,
        )
        assert len(new) == 1 and new[0]["conf"]["input_path"] == UI_FILE, new
        finished = airflow.wait_for_run(PROFILES_DAG, new[0]["dag_run_id"])
        assert finished["state"] == "success", _run_report(airflow, PROFILES_DAG, finished)
        page.goto(f"{airflow.url}/dags/{PROFILES_DAG}")
        save_screenshot(page, "compose-airflow-dag")
    measurements["ui_run"] = {
        "click_to_success_s": round(time.monotonic() - started, 1),
        "run_s": run_seconds(finished),
    }


# ------------------------------------------------------------------------ 10. ports --
def _listening(port: int) -> set[str]:
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return {line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()}


def test_every_published_port_is_bound_to_loopback_only(compose_stack):
    bindings = []
    for info in compose_stack.inspect(*compose_stack.containers(all_states=False)):
        for container_port, hosts in (info["NetworkSettings"]["Ports"] or {}).items():
            for host in hosts or []:
                bindings.append((info["Name"].lstrip("/"), container_port, host["HostIp"], int(host["HostPort"])))
    assert bindings, "nothing published"
    assert {b[3] for b in bindings} <= set(compose_stack.ports.values()), bindings
    wrong = [b for b in bindings if b[2] != "127.0.0.1"]
    assert not wrong, f"published beyond loopback: {wrong}"
    sockets = {port: _listening(port) for *_, port in bindings}
    assert all(addresses == {"127.0.0.1"} for addresses in sockets.values()), sockets


# ------------------------------------------------------------------------- 11. down --
def test_down_v_leaves_no_container_network_or_volume_of_the_project(compose_stack, measurements):
    assert compose_stack.leftovers()["volumes"], "the running stack should have volumes to remove"
    compose_stack.save_logs()
    measurements["down_s"] = round(compose_stack.down(), 1)
    left = compose_stack.leftovers()
    assert left == {"containers": [], "networks": [], "volumes": []}, left
