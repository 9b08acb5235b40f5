"""Alert messages (core.alerts): what they name, what they never carry, the deadline rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecommerce_profiles.core import alerts


def test_the_error_line_is_the_first_line_without_rows_or_secrets():
    error = ValueError(
        "3 of 10 rows (30.00%) are invalid. x.csv: bad_price x3 (e.g. line 2: price: '2020-10-01 10:00:00 UTC,view,1')\n"
        "Traceback line two with 'more rows'"
    )
    line = alerts.error_first_line(error)
    assert line.startswith("ValueError: 3 of 10 rows (30.00%) are invalid.")
    assert "2020-10-01" not in line and "view,1" not in line and "two" not in line
    masked = alerts.error_first_line("cannot reach http://user:s3cret@minio:9000 password=s3cret token: abc")
    assert "s3cret" not in masked and "abc" not in masked and "http://***@minio:9000" in masked
    assert len(alerts.error_first_line("x" * 1000)) == alerts.MAX_ERROR_CHARS
    assert alerts.error_first_line(None) == "(no error message)"


def test_a_task_failure_names_dag_run_task_error_and_log_url():
    url = alerts.task_log_url("http://localhost:8080/", "dag", "manual__2026-12-01T00:00:00+00:00", "t", 3)
    assert url == "http://localhost:8080/dags/dag/runs/manual__2026-12-01T00%3A00%3A00%2B00%3A00/tasks/t?try_number=3"
    message = alerts.task_failed(
        dag_id="dag", run_id="r1", task_id="t", try_number=3, max_tries=3, error=RuntimeError("boom"), log_url=url
    )
    assert message.subject == "[ecommerce-profiles] Task failed: dag.t (run r1)"
    assert ("Error", "RuntimeError: boom") in message.lines and ("Try", "3 of 3") in message.lines
    assert f'<a href="{url}">' in message.html.replace("&amp;", "&") and "Try: 3 of 3<br>" in message.html


def test_the_success_summary_holds_counts_only():
    message = alerts.run_succeeded(
        dag_id="d", run_id="r", counts={"profiles": 5, "rows_read": 9, "evidence": "s3://secret-path"}, log_url="u"
    )
    assert "5 profiles" in message.subject and ("rows_read", "9") in message.lines
    assert "s3://secret-path" not in message.text


def test_the_deadline_counts_from_the_start_of_the_run_date():
    assert alerts.deadline_interval(6) == timedelta(hours=30)
    assert alerts.parse_hours("", 6) == 6 and alerts.parse_hours("0.5", 6) == 0.5
    with pytest.raises(ValueError):
        alerts.parse_hours("-1", 6)


@pytest.mark.parametrize(
    ("state", "queued_at", "skipped"),
    [
        ("running", "2026-12-02T00:00:00+00:00", False),
        ("queued", None, False),
        ("failed", "2026-12-02T00:00:00+00:00", True),  # apache/airflow#60927: failed runs keep their deadline
        ("success", "2026-12-02T00:00:00+00:00", True),
        ("running", "2026-12-04T00:00:00+00:00", True),  # created after its deadline: a backfill
    ],
)
def test_a_missed_deadline_mails_only_for_a_late_run(state, queued_at, skipped):
    deadline = datetime(2026, 12, 3, 6, tzinfo=UTC)
    reason = alerts.deadline_alert_skip_reason({"state": state, "queued_at": queued_at}, deadline.isoformat())
    assert (reason is not None) == skipped


def test_the_deadline_is_left_out_only_under_airflow_dags_test():
    from ecommerce_profiles import notifications

    assert notifications.under_dags_test(["/venv/bin/airflow", "dags", "test", "ecommerce_customer_profiles"])
    assert not notifications.under_dags_test(["/venv/bin/airflow", "scheduler"])
    assert not notifications.under_dags_test(["/venv/bin/airflow", "dags", "trigger", "x"])
    assert not notifications.under_dags_test(["python", "-m", "pytest"])
    assert notifications.run_deadline(6.0) is not None  # this process is not `airflow dags test`
