"""Every alert of docs/operations.md, driven for real under the scheduler of a private Airflow
(tests/browser/airflow_ui_support.py: `make airflow`'s own script in a temp AIRFLOW_HOME), read
back from the shared Mailpit's HTTP API.

The private Airflow sends to an address of its own (ALERT_EMAIL_TO=alerts-<uuid>@...), so the
mails of this module are told apart from anyone else's; it has its own topic, bucket and alias,
short retry delays, a 90 s sensor timeout and a 36 s deadline. Runs, in parallel where they can:

  healthy   a one-shot file of 6 users (events of yesterday): succeeds, no mail at all, and the
            monitoring DAG (unpaused after it) finds nothing either
  scheduled unpausing the DAG makes the scheduler create today's run: its drop never arrives,
            the sensor times out -> "Input missing" + "Run failed"
  late      triggered with yesterday's logical date: still waiting 24 h + 36 s after it, i.e.
            at once -> "Deadline missed", then the sensor times out as above
  failing   a file whose rows are mostly invalid: validate_events fails its 3 tries ->
            "Task failed" (error line without the rows) + "Run failed"
  shrink    the archive loses the healthy run's events, a run of 2 users (20% rejected rows)
            publishes: the monitoring DAG, started by the alias's asset event, mails "Publish
            lowered the users" (6 -> 2, both indices) and the reject spike (4 runs at 1% before);
            the Variable ALERT_ON_SUCCESS, set before it, makes that run mail its counts
  stale     a monitoring run with max_snapshot_age_days=0 -> "serves a snapshot 1 day old"
  service   a monitoring run whose Kafka connection points at a port nobody listens on ->
            "Kafka does not answer"; a second such run mails nothing more (once per incident)
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from bench import services
from tests.browser.airflow_ui_support import PrivateAirflow, private_airflow, running_airflow
from tests.stack.stack_cli import unused_port
from tests.support.pipeline import remove_pipeline_resources, s3

DAG_ID = "ecommerce_customer_profiles"
MONITOR_DAG_ID = "ecommerce_monitoring"
RUN_TIMEOUT = 15 * 60
TERMINAL = {"success", "failed"}
HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
ROW_TOKEN = "zzrowcontent"  # in the invalid rows: must never reach a mail
DEADLINE_HOURS = 0.01  # 36 s after the run's day ended


# ------------------------------------------------------------------------------ Mailpit --
def mailpit_url() -> str:
    return f"http://127.0.0.1:{os.environ['MAILPIT_UI_PORT']}"


def mailpit_get(path: str) -> dict:
    with urllib.request.urlopen(mailpit_url() + path, timeout=10) as response:
        return json.load(response)


def mails_to(address: str) -> list[dict]:
    """Every message to ``address`` (Mailpit's search API), with its text body."""
    query = urllib.parse.quote(f"to:{address}")
    found = mailpit_get(f"/api/v1/search?query={query}&limit=500")["messages"]
    return [{**m, "Text": mailpit_get(f"/api/v1/message/{m['ID']}")["Text"]} for m in found]


def wait_for_mails(address: str, predicate, count: int = 1, timeout: float = 180) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        matching = [m for m in mails_to(address) if predicate(m)]
        if len(matching) >= count or time.monotonic() > deadline:
            return matching
        time.sleep(3)


# ------------------------------------------------------------------------------ Airflow --
def api(airflow: PrivateAirflow, method: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        airflow.url + path,
        method=method,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {airflow.token()}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def trigger(airflow: PrivateAirflow, dag_id: str, conf: dict, logical_date: datetime | None = None) -> str:
    body = {"conf": conf, "logical_date": logical_date.isoformat() if logical_date else None}
    return api(airflow, "POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"]


def wait_for_run(airflow: PrivateAirflow, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT) -> str:
    quoted = urllib.parse.quote(run_id, safe="")
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = airflow.get(f"/api/v2/dags/{dag_id}/dagRuns/{quoted}")["state"]
        if state in TERMINAL:
            return state
        time.sleep(3)
    pytest.fail(f"{dag_id} run {run_id} still {state} after {timeout}s:\n{airflow.failure_report(dag_id, run_id)}")


def dag_runs(airflow: PrivateAirflow, dag_id: str) -> list[dict]:
    return airflow.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]


def wait_until_idle(airflow: PrivateAirflow, dag_id: str, timeout: float = 300) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = dag_runs(airflow, dag_id)
        if all(r["state"] in TERMINAL for r in runs):
            return runs
        time.sleep(3)
    pytest.fail(f"{dag_id} runs not finished after {timeout}s: {dag_runs(airflow, dag_id)}")


def monitor(airflow: PrivateAirflow, **conf) -> dict:
    run_id = trigger(airflow, MONITOR_DAG_ID, conf)
    state = wait_for_run(airflow, MONITOR_DAG_ID, run_id, timeout=300)
    assert state == "success", airflow.failure_report(MONITOR_DAG_ID, run_id)
    return {"run_id": run_id}


# ------------------------------------------------------------------------------ data --
def event_rows(users: range, day: str, per_user: int = 2) -> list[str]:
    rows = []
    for user in users:
        for n in range(per_user):
            rows.append(
                f"{day} 1{n}:00:00 UTC,view,{1000 + n},2053013555631882655,electronics.smartphone,samsung,"
                f"19.99,{1515915625000000000 + user},sess{user:06d}"
            )
    return rows


def invalid_rows(count: int, day: str) -> list[str]:
    return [
        f"{day} 12:00:00 UTC,view,{2000 + n},2053013555631882655,electronics.smartphone,{ROW_TOKEN},"
        f"not-a-price-{ROW_TOKEN},1515915625000099999,badsess{n:03d}"
        for n in range(count)
    ]


def write_csv(path, rows: list[str]) -> None:
    path.write_text("\n".join([HEADER, *rows]) + "\n")


# ------------------------------------------------------------------------------ fixtures --
@pytest.fixture(scope="module")
def names(stack):
    suffix = uuid.uuid4().hex[:10]
    return {
        "KAFKA_TOPIC": f"{os.environ['KAFKA_TOPIC']}_alerts_{suffix}",
        "MINIO_BUCKET": f"{os.environ['MINIO_BUCKET']}-alerts-{suffix}",
        "ELASTICSEARCH_INDEX": f"{os.environ['ELASTICSEARCH_INDEX']}_alerts_{suffix}",
        "ALERT_EMAIL_TO": f"alerts-{suffix}@ecommerce-profiles.test",
    }


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, names):
    services.create_bucket(names["MINIO_BUCKET"])
    root = tmp_path_factory.mktemp("alerts")
    data_dir = root / "data"
    data_dir.mkdir()
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    write_csv(data_dir / "healthy.csv", event_rows(range(6), yesterday))
    write_csv(data_dir / "failing.csv", event_rows(range(1), yesterday) + invalid_rows(8, yesterday))
    write_csv(data_dir / "fewer.csv", event_rows(range(100, 102), yesterday, per_user=4) + invalid_rows(2, yesterday))
    env = {
        **os.environ,
        **names,
        "PIPELINE_DATA_DIR": str(data_dir),
        "PIPELINE_RETRY_DELAY_SECONDS": "2",
        # Not shorter: Airflow 3.3 fails a reschedule-mode sensor when the executor's report of
        # one poke reaches the scheduler after the next poke was queued (apache/airflow#71172);
        # at 5 s, with a Spark job beside it on 2 cores, every try of the sensor died that way.
        "PIPELINE_INPUT_POKE_SECONDS": "20",
        "PIPELINE_INPUT_WAIT_HOURS": str(90 / 3600),
        "PIPELINE_DEADLINE_HOURS": str(DEADLINE_HOURS),
        "MONITOR_MAX_SNAPSHOT_AGE_DAYS": "3",
        # A Kafka "stopped" for the monitor: a port nobody listens on.
        "AIRFLOW_CONN_KAFKA_STOPPED": json.dumps(
            {"conn_type": "kafka", "extra": {"bootstrap.servers": f"127.0.0.1:{unused_port()}"}}
        ),
    }
    try:
        with running_airflow(private_airflow(root, env), DAG_ID, MONITOR_DAG_ID) as instance:
            instance.yesterday = yesterday
            instance.runs = {}
            yield instance
    finally:
        remove_pipeline_resources(names["MINIO_BUCKET"], names["KAFKA_TOPIC"], names["ELASTICSEARCH_INDEX"])


@pytest.fixture(scope="module")
def started_runs(airflow):
    """The healthy, late and failing runs, triggered together; unpausing adds today's scheduled run."""
    runs = airflow.runs
    runs["healthy"] = trigger(airflow, DAG_ID, {"input_path": "healthy.csv"}, datetime.now(UTC))
    # Yesterday's logical date: its day ended at midnight, the deadline is 36 s after that... at
    # once, plus the 36 s (the interval is counted from the logical date: 24 h + 36 s).
    runs["late"] = trigger(airflow, DAG_ID, {}, datetime.now(UTC) - timedelta(days=1))
    runs["failing"] = trigger(airflow, DAG_ID, {"input_path": "failing.csv"}, datetime.now(UTC))
    api(airflow, "PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    return runs


def mentions(run_id: str):
    return lambda m: run_id in m["Subject"] or run_id in m["Text"]


# ------------------------------------------------------------------------------ tests --
def test_a_healthy_run_and_a_healthy_monitor_send_nothing(airflow, names, started_runs):
    run_id = started_runs["healthy"]
    assert wait_for_run(airflow, DAG_ID, run_id) == "success", airflow.failure_report(DAG_ID, run_id)
    # The monitor, unpaused now: its scheduled run (and the one the alias's asset event queued).
    api(airflow, "PATCH", f"/api/v2/dags/{MONITOR_DAG_ID}", {"is_paused": False})
    time.sleep(5)
    monitor(airflow)
    runs = wait_until_idle(airflow, MONITOR_DAG_ID)
    assert all(r["state"] == "success" for r in runs), runs
    mails = mails_to(names["ALERT_EMAIL_TO"])
    assert not [m for m in mails if mentions(run_id)(m)], [m["Subject"] for m in mails]
    assert not [m for m in mails if MONITOR_DAG_ID in m["Text"]], [m["Subject"] for m in mails]


def test_a_run_that_fails_mails_its_task_and_its_run_without_row_content(airflow, names, started_runs):
    run_id = started_runs["failing"]
    assert wait_for_run(airflow, DAG_ID, run_id) == "failed"
    mails = wait_for_mails(names["ALERT_EMAIL_TO"], mentions(run_id), count=2)
    subjects = sorted(m["Subject"] for m in mails)
    assert subjects == [
        f"[ecommerce-profiles] Run failed: {DAG_ID} (run {run_id})",
        f"[ecommerce-profiles] Task failed: {DAG_ID}.validate_events (run {run_id})",
    ], subjects
    task_mail = next(m for m in mails if "Task failed" in m["Subject"])
    text = task_mail["Text"]
    assert "Try: 3 of 3" in text and "rows" in text and "/tasks/validate_events?try_number=3" in text, text
    assert f"/dags/{DAG_ID}/runs/" in text and str(airflow.port) in text, text
    for mail in mails:
        assert ROW_TOKEN not in mail["Text"] and "not-a-price" not in mail["Text"], mail["Text"]
        assert os.environ["MINIO_PIPELINE_PASSWORD"] not in mail["Text"]


def test_a_missed_deadline_and_a_missing_drop_are_mailed(airflow, names, started_runs):
    late = started_runs["late"]
    deadline_mails = wait_for_mails(names["ALERT_EMAIL_TO"], lambda m: "Deadline missed" in m["Subject"], timeout=240)
    assert [m["Subject"].split(" not finished")[0] for m in deadline_mails] == [
        f"[ecommerce-profiles] Deadline missed: {DAG_ID} (run {late})"
    ], [m["Subject"] for m in deadline_mails]
    assert "still running" in deadline_mails[0]["Text"] or "still queued" in deadline_mails[0]["Text"]
    assert wait_for_run(airflow, DAG_ID, late) == "failed"
    scheduled = [r["dag_run_id"] for r in dag_runs(airflow, DAG_ID) if r["run_type"] == "scheduled"]
    assert len(scheduled) == 1, scheduled
    assert wait_for_run(airflow, DAG_ID, scheduled[0]) == "failed"
    for run_id in (late, scheduled[0]):
        mails = wait_for_mails(names["ALERT_EMAIL_TO"], mentions(run_id), count=3 if run_id == late else 2)
        subjects = sorted(m["Subject"].split(" not finished")[0] for m in mails)
        expected = [
            f"[ecommerce-profiles] Input missing: {DAG_ID}.wait_for_input timed out (run {run_id})",
            f"[ecommerce-profiles] Run failed: {DAG_ID} (run {run_id})",
        ]
        if run_id == late:
            expected.insert(0, f"[ecommerce-profiles] Deadline missed: {DAG_ID} (run {run_id})")
        assert subjects == expected, subjects
        missing = next(m for m in mails if "Input missing" in m["Subject"])
        assert "incoming/" in missing["Text"] and "_SUCCESS" in missing["Text"], missing["Text"]


def test_a_publish_with_fewer_users_and_a_reject_spike_are_mailed_once(airflow, names, started_runs):
    bucket, client = names["MINIO_BUCKET"], s3()
    # The archive loses the healthy run's events (what overlapping runs once did to an index) ...
    for prefix in ("raw/events/", "profiles/"):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])
    # ... and four earlier run dates rejected 1% of their rows.
    for days in range(2, 6):
        run_date = (datetime.now(UTC) - timedelta(days=days)).date().isoformat()
        summary = {"run_id": f"history_{days}", "run_date": run_date, "rows_read": 1000, "rows_quarantined": 10}
        client.put_object(Bucket=bucket, Key=f"runs/run_date={run_date}/latest.json", Body=json.dumps(summary))
    # The success summary, off so far (the healthy run sent nothing), switched on by its Variable.
    api(airflow, "POST", "/api/v2/variables", {"key": "ALERT_ON_SUCCESS", "value": "true"})
    run_id = trigger(
        airflow,
        DAG_ID,
        {"input_path": "fewer.csv", "profile_build": "full", "max_reject_fraction": 0.5},
        datetime.now(UTC),
    )
    assert wait_for_run(airflow, DAG_ID, run_id) == "success", airflow.failure_report(DAG_ID, run_id)
    wait_until_idle(airflow, MONITOR_DAG_ID)  # the run its publish (asset event) started
    monitor(airflow)  # and one more, after the run's summary reached the lake
    monitor(airflow)  # nothing new: once per incident
    alias = names["ELASTICSEARCH_INDEX"]
    shrank = wait_for_mails(names["ALERT_EMAIL_TO"], lambda m: "Publish lowered" in m["Subject"])
    assert len(shrank) == 1, [m["Subject"] for m in shrank]
    subject = shrank[0]["Subject"]
    assert f"behind {alias}: 6 in {alias}-" in subject and " -> 2 in " in subject, subject
    spikes = wait_for_mails(names["ALERT_EMAIL_TO"], lambda m: "Reject fraction" in m["Subject"])
    assert [m["Subject"] for m in spikes] == [
        f"[ecommerce-profiles] Reject fraction 20.00% of run {run_id} ({datetime.now(UTC).date().isoformat()}) "
        "is above 3x the median 1.00% of the 4 runs before"
    ]
    assert ROW_TOKEN not in spikes[0]["Text"]
    summary = wait_for_mails(names["ALERT_EMAIL_TO"], lambda m: "Run succeeded" in m["Subject"])
    assert [m["Subject"] for m in summary] == [
        f"[ecommerce-profiles] Run succeeded: {DAG_ID} (run {run_id}): 2 profiles"
    ]
    assert "rows_read: 10" in summary[0]["Text"] and "rows_quarantined: 2" in summary[0]["Text"], summary[0]["Text"]


def test_a_stale_alias_is_mailed_once(airflow, names, started_runs):
    monitor(airflow, max_snapshot_age_days=0)
    monitor(airflow, max_snapshot_age_days=0)
    alias = names["ELASTICSEARCH_INDEX"]
    stale = wait_for_mails(names["ALERT_EMAIL_TO"], lambda m: "serves a snapshot" in m["Subject"])
    assert [m["Subject"] for m in stale] == [
        f"[ecommerce-profiles] Alias {alias} serves a snapshot 1 day old ({airflow.yesterday})"
    ]


def test_a_service_that_does_not_answer_is_mailed_once(airflow, names, started_runs):
    monitor(airflow, kafka_conn_id="kafka_stopped")
    monitor(airflow, kafka_conn_id="kafka_stopped")
    down = wait_for_mails(names["ALERT_EMAIL_TO"], lambda m: "does not answer" in m["Subject"])
    assert [m["Subject"] for m in down] == ["[ecommerce-profiles] Kafka does not answer"]
    assert "Incident: service_down:kafka" in down[0]["Text"] and f"/dags/{MONITOR_DAG_ID}/runs/" in down[0]["Text"]


def test_no_other_mail_arrived(airflow, names, started_runs):
    """2 (failing run) + 3 (late run) + 2 (today's scheduled run) + 3 (shrink, spike, success
    summary) + stale + Kafka."""
    subjects = sorted(m["Subject"] for m in mails_to(names["ALERT_EMAIL_TO"]))
    assert len(subjects) == 12, subjects
