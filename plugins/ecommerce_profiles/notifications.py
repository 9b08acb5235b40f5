"""Alert mails through Airflow's own notifier mechanism: the SMTP provider's ``SmtpNotifier``.

    task_failure_notifier()    on_failure_callback of every task (DEFAULT_ARGS): runs once the
                               task has failed its last try; a sensor timeout gets its own subject
    run_failure_notifier()     the DAG's on_failure_callback (runs in the DAG processor)
    success_summary_notifier() on_success_callback of summarise_run: the run's counts, sent only
                               when ALERT_ON_SUCCESS (or the Variable of that name) is true
    run_deadline()             the DeadlineAlert of the daily run; ``deadline_missed`` runs in
                               the triggerer (an AsyncCallback) and sends with ``async_notify``

The mail server is the Airflow connection ``smtp_default`` (AIRFLOW_CONN_SMTP_DEFAULT in .env;
its ``from_email`` extra is the sender); the recipients are ALERT_EMAIL_TO (comma-separated),
read when a mail is sent. Without recipients nothing is sent and the log says so. What each
message says is built by ecommerce_profiles.core.alerts (no secret, no row content).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from ecommerce_profiles.core import alerts

log = logging.getLogger(__name__)

SMTP_CONN_ID = "smtp_default"
RECIPIENTS_ENV = "ALERT_EMAIL_TO"
SUCCESS_SWITCH = "ALERT_ON_SUCCESS"  # env variable, and the Airflow Variable that overrides it
DEADLINE_HOURS_ENV = "PIPELINE_DEADLINE_HOURS"
DEFAULT_DEADLINE_HOURS = 6.0
TRUE_WORDS = {"1", "true", "yes", "on"}


def recipients() -> list[str]:
    return [address.strip() for address in os.environ.get(RECIPIENTS_ENV, "").split(",") if address.strip()]


def ui_base_url() -> str:
    """Where people open the UI: [api] base_url, else the API server's local port."""
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback=None)
    if base:
        return base
    return f"http://localhost:{conf.get('api', 'port', fallback='8080')}"


def success_summary_enabled() -> bool:
    """The Variable ALERT_ON_SUCCESS when it is set, else the environment variable; off by default."""
    value = None
    try:
        from airflow.sdk import Variable

        value = Variable.get(SUCCESS_SWITCH, default=None)
    except Exception:  # no Variable store reachable (a unit test): the environment decides
        value = None
    if value is None:
        value = os.environ.get(SUCCESS_SWITCH, "false")
    return str(value).strip().lower() in TRUE_WORDS


def _without_dag(context: Any) -> Any:
    """The context minus its DAG (a Context is a TypedDict: a plain dict of its keys stands in)."""
    return {key: value for key, value in dict(context).items() if key != "dag"}


class PipelineAlertNotifier(SmtpNotifier):
    """``SmtpNotifier`` whose subject and body are one of the pipeline's alert messages.

    ``kind``: ``task`` (task failed its last try; sensor timeouts get the input-missing message),
    ``run`` (DAG run failed) or ``success`` (summary, only when switched on)."""

    def __init__(self, kind: str, **kwargs: Any) -> None:
        if kind not in ("task", "run", "success"):
            raise ValueError(f"unknown alert kind {kind!r}")
        kwargs.setdefault("smtp_conn_id", SMTP_CONN_ID)
        # `to` is filled when the mail is sent: the recipients are read at that moment.
        super().__init__(to="", **kwargs)
        self.kind = kind

    def message(self, context: Any) -> alerts.AlertMessage | None:
        ti = context.get("ti") or context.get("task_instance")
        dag = context.get("dag")
        dag_run = context.get("dag_run")
        dag_id = getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None) or "?"
        run_id = getattr(ti, "run_id", None) or context.get("run_id") or getattr(dag_run, "run_id", "?")
        task_id = getattr(ti, "task_id", None)
        try_number = getattr(ti, "try_number", None)
        log_url = (
            alerts.task_log_url(ui_base_url(), dag_id, run_id, task_id, try_number)
            if task_id
            else alerts.run_url(ui_base_url(), dag_id, run_id)
        )
        if self.kind == "run":
            return alerts.run_failed(
                dag_id=dag_id, run_id=run_id, task_id=task_id, reason=context.get("reason"), log_url=log_url
            )
        if self.kind == "success":
            if not success_summary_enabled():
                return None
            counts = ti.xcom_pull(task_ids=task_id) if ti is not None else None
            return alerts.run_succeeded(dag_id=dag_id, run_id=run_id, counts=counts or {}, log_url=log_url)
        error = context.get("exception")
        from airflow.sdk.exceptions import AirflowSensorTimeout

        if isinstance(error, AirflowSensorTimeout):
            task = context.get("task") or getattr(ti, "task", None)
            waited_for = str(getattr(task, "filepath", "") or "")
            return alerts.drop_missing(
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id or "?",
                waited_for=waited_for,
                error=error,
                log_url=log_url,
            )
        return alerts.task_failed(
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id or "?",
            try_number=try_number,
            max_tries=(getattr(ti, "max_tries", None) or 0) + 1 if ti is not None else None,
            error=error,
            log_url=log_url,
        )

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing here is a template; render without the context's DAG, which under
        `airflow dags test` is a SerializedDAG that has no template environment."""
        super().render_template_fields(_without_dag(context), jinja_env)

    def notify(self, context: Any) -> None:
        message = self.message(context)
        if message is None:
            log.info("Success summary not sent (%s is off)", SUCCESS_SWITCH)
            return
        to = recipients()
        if not to:
            log.warning("Alert not sent, %s is empty: %s", RECIPIENTS_ENV, message.text)
            return
        self.to, self.subject, self.html_content = to, message.subject, message.html
        log.info("Sending alert %s to %s: %s", message.kind, ", ".join(to), message.subject)
        super().notify(_without_dag(context))


def task_failure_notifier() -> PipelineAlertNotifier:
    return PipelineAlertNotifier("task")


def run_failure_notifier() -> PipelineAlertNotifier:
    return PipelineAlertNotifier("run")


def success_summary_notifier() -> PipelineAlertNotifier:
    return PipelineAlertNotifier("success")


# ------------------------------------------------------------------------------ deadline --
def deadline_hours(environ: Any = None) -> float:
    environ = os.environ if environ is None else environ
    return alerts.parse_hours(environ.get(DEADLINE_HOURS_ENV), DEFAULT_DEADLINE_HOURS)


async def deadline_missed(context: dict | None = None, hours_after_day_end: float = DEFAULT_DEADLINE_HOURS) -> str:
    """AsyncCallback of the run deadline, run by the triggerer: mail unless the run is not late.

    Airflow 3.3 hands it a small context: ``dag_run`` (the run as the REST API shows it, state
    at the moment of the miss) and ``deadline`` (``deadline_time``)."""
    context = context or {}
    dag_run = context.get("dag_run") or {}
    deadline_time = (context.get("deadline") or {}).get("deadline_time")
    dag_id, run_id = dag_run.get("dag_id", "?"), dag_run.get("dag_run_id") or dag_run.get("run_id", "?")
    skip = alerts.deadline_alert_skip_reason(dag_run, deadline_time)
    if skip:
        log.info("Deadline of %s %s passed, no alert: %s", dag_id, run_id, skip)
        return f"not sent: {skip}"
    message = alerts.deadline_missed(
        dag_id=dag_id,
        run_id=run_id,
        deadline_time=deadline_time,
        hours_after_day_end=hours_after_day_end,
        state=str(dag_run.get("state")),
        run_link=alerts.run_url(ui_base_url(), dag_id, run_id),
    )
    to = recipients()
    if not to:
        log.warning("Deadline alert not sent, %s is empty: %s", RECIPIENTS_ENV, message.text)
        return "not sent: no recipients"
    notifier = SmtpNotifier(
        to=to, subject=message.subject, html_content=message.html, smtp_conn_id=SMTP_CONN_ID, context={}
    )
    await notifier.async_notify({})
    log.info("Sent deadline alert to %s: %s", ", ".join(to), message.subject)
    return f"sent: {message.subject}"


def under_dags_test(argv: list[str] | None = None) -> bool:
    """Is this process `airflow dags test`? It runs the DAG in-process, where no deadline is
    tracked, and Airflow 3.3.2's ``dags test`` crashes after a successful run of any DAG with a
    deadline (``'dict' object has no attribute 'hex'``: apache/airflow#73428, fix in PR #73430)."""
    args = sys.argv if argv is None else argv
    return bool(args) and os.path.basename(args[0]) == "airflow" and args[1:3] == ["dags", "test"]


def run_deadline(hours_after_day_end: float | None = None) -> DeadlineAlert | None:
    """The daily run must finish ``hours_after_day_end`` (PIPELINE_DEADLINE_HOURS) after its day.

    Counted from the logical date (the start of the run's day), so it exists only for runs that
    have one: scheduled runs, backfills and runs triggered with a logical date; a run triggered
    without one gets no deadline (Airflow creates none: apache/airflow#71750). None under
    `airflow dags test` (``under_dags_test``), which tracks no deadline and would crash on one."""
    if under_dags_test():
        return None
    hours = deadline_hours() if hours_after_day_end is None else hours_after_day_end
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=alerts.deadline_interval(hours),
        callback=AsyncCallback(deadline_missed, kwargs={"hours_after_day_end": hours}),
        name="daily_run_finished",
    )
