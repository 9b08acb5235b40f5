"""What an alert mail says (docs/operations.md): pure functions, no Airflow, no SMTP.

Every message names the DAG, the run and (for a task) the task, the error's first line and the
URL of the task's log in the UI. It never carries a secret or row content: the error line is cut
to its first line, quoted text (the validator quotes the raw rows it gives as examples) is
replaced by an ellipsis, credentials in URLs and ``password=...``-like pairs are masked, and the
line is capped at ``MAX_ERROR_CHARS``.

The adapters (ecommerce_profiles.notifications) read the Airflow context and send the mail
through the SMTP provider's notifier.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

MAX_ERROR_CHARS = 240
SUBJECT_PREFIX = "[ecommerce-profiles]"

_QUOTED = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""")
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")
_SECRET_PAIR = re.compile(
    r"(?i)\b(?P<key>password|passwd|secret|token|api[_-]?key|access[_-]?key|authorization)"
    r"(?P<sep>\s*[=:]\s*)(?P<value>[^\s,;&]+)"
)


def error_first_line(error: object, max_chars: int = MAX_ERROR_CHARS) -> str:
    """The first non-empty line of an error, without row content or secrets, at most ``max_chars``."""
    if error is None:
        return "(no error message)"
    text = str(error)
    if not text.strip():
        text = type(error).__name__ if isinstance(error, BaseException) else ""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if isinstance(error, BaseException) and type(error).__name__ not in first:
        first = f"{type(error).__name__}: {first}" if first else type(error).__name__
    first = _QUOTED.sub("'…'", first)
    first = _URL_CREDENTIALS.sub(r"\g<scheme>***@", first)
    first = _SECRET_PAIR.sub(r"\g<key>\g<sep>***", first)
    if len(first) > max_chars:
        first = first[: max_chars - 1].rstrip() + "…"
    return first or "(no error message)"


def task_log_url(base_url: str, dag_id: str, run_id: str, task_id: str, try_number: int | None = None) -> str:
    """The task instance's page in the Airflow 3 UI (its Logs tab), as Airflow's ``ti.log_url`` builds it."""
    url = f"{base_url.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id)}"
    if try_number:
        url += f"?try_number={try_number}"
    return url


def run_url(base_url: str, dag_id: str, run_id: str) -> str:
    return f"{base_url.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"


@dataclass(frozen=True)
class AlertMessage:
    """One mail: subject, plain lines (logged too) and the HTML body built from them."""

    kind: str
    subject: str
    lines: tuple[tuple[str, str], ...]  # (label, value); a value that is a URL becomes a link

    @property
    def html(self) -> str:
        rows = []
        for label, value in self.lines:
            shown = html.escape(value)
            if value.startswith(("http://", "https://")):
                shown = f'<a href="{html.escape(value, quote=True)}">{shown}</a>'
            rows.append(f"{html.escape(label)}: {shown}")
        # One "Label: value" per line, so the text part mail readers derive keeps them apart.
        return f"<p>{html.escape(self.subject)}</p>\n<p>" + "<br>\n".join(rows) + "</p>"

    @property
    def text(self) -> str:
        return "\n".join([self.subject, *(f"{label}: {value}" for label, value in self.lines)])


def task_failed(
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    try_number: int | None,
    max_tries: int | None,
    error: object,
    log_url: str,
) -> AlertMessage:
    """A task failed its last try (retries exhausted, or a failure that is not retried)."""
    tries = f"{try_number} of {max_tries}" if try_number and max_tries else str(try_number or "?")
    return AlertMessage(
        kind="task_failed",
        subject=f"{SUBJECT_PREFIX} Task failed: {dag_id}.{task_id} (run {run_id})",
        lines=(
            ("DAG", dag_id),
            ("Run", run_id),
            ("Task", task_id),
            ("Try", tries),
            ("Error", error_first_line(error)),
            ("Log", log_url),
        ),
    )


def drop_missing(
    *, dag_id: str, run_id: str, task_id: str, waited_for: str, error: object, log_url: str
) -> AlertMessage:
    """The sensor gave up: the drop (its ``_SUCCESS`` marker) or the one-shot file never arrived."""
    return AlertMessage(
        kind="sensor_timeout",
        subject=f"{SUBJECT_PREFIX} Input missing: {dag_id}.{task_id} timed out (run {run_id})",
        lines=(
            ("DAG", dag_id),
            ("Run", run_id),
            ("Task", task_id),
            ("Waited for", waited_for or "(unknown path)"),
            ("Error", error_first_line(error)),
            ("Log", log_url),
        ),
    )


def run_failed(*, dag_id: str, run_id: str, task_id: str | None, reason: str | None, log_url: str) -> AlertMessage:
    """The DAG run ended failed; ``task_id`` is the task that failed it (its own alert has the error)."""
    return AlertMessage(
        kind="run_failed",
        subject=f"{SUBJECT_PREFIX} Run failed: {dag_id} (run {run_id})",
        lines=(
            ("DAG", dag_id),
            ("Run", run_id),
            ("Task", task_id or "(none recorded)"),
            ("Error", error_first_line(reason or "the run failed") + " (the task's own alert has its error)"),
            ("Log", log_url),
        ),
    )


def run_succeeded(*, dag_id: str, run_id: str, counts: Mapping[str, object], log_url: str) -> AlertMessage:
    """The optional success summary: the run's counts (no row content: numbers and names only)."""
    keys = (
        "snapshot_date",
        "rows_read",
        "rows_quarantined",
        "rows_accepted",
        "events_produced",
        "events_archived",
        "profiles",
        "elasticsearch_index",
    )
    lines = [("DAG", dag_id), ("Run", run_id), ("Task", "summarise_run")]
    lines += [(key, str(counts[key])) for key in keys if counts.get(key) is not None]
    lines.append(("Log", log_url))
    return AlertMessage(
        kind="run_succeeded",
        subject=f"{SUBJECT_PREFIX} Run succeeded: {dag_id} (run {run_id}): {counts.get('profiles', '?')} profiles",
        lines=tuple(lines),
    )


# ------------------------------------------------------------------------------ deadline --
# DeadlineAlert (Airflow 3.3, experimental) counts from a reference; the daily run's reference is
# its logical date, the start of its run date (the schedule is a cron *trigger*: logical date =
# the moment the run is due). "N hours after the run's day ended" is therefore 24 h + N h later.
DAY = timedelta(days=1)


def deadline_interval(hours_after_day_end: float) -> timedelta:
    """The DeadlineAlert interval counted from the logical date (the start of the run's day)."""
    return DAY + timedelta(hours=hours_after_day_end)


def parse_hours(value: str | None, default: float) -> float:
    if value is None or not str(value).strip():
        return default
    hours = float(value)
    if hours < 0 or hours != hours:
        raise ValueError(f"hours must be a number >= 0, got {value!r}")
    return hours


def _as_datetime(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def deadline_alert_skip_reason(dag_run: Mapping[str, object], deadline_time: object) -> str | None:
    """Why a missed deadline must not mail, or None.

    Airflow 3.3 keeps a run's deadline when the run *fails* before it (only a success prunes it:
    apache/airflow#60927), so a failed run would get a second, late alert; and a run created after
    its own deadline (a backfill or rerun of an old date) misses it the moment it exists."""
    state = str(dag_run.get("state") or "")
    if state not in ("queued", "running"):
        return f"the run is {state or 'in an unknown state'}, not late (a failed run had its own alert)"
    deadline = _as_datetime(deadline_time)
    queued = _as_datetime(dag_run.get("queued_at")) or _as_datetime(dag_run.get("run_after"))
    if deadline is not None and queued is not None and queued > deadline:
        return f"the run was queued at {queued.isoformat()}, after its deadline {deadline.isoformat()} (a backfill or rerun)"
    return None


def deadline_missed(
    *, dag_id: str, run_id: str, deadline_time: object, hours_after_day_end: float, state: str, run_link: str
) -> AlertMessage:
    deadline = _as_datetime(deadline_time)
    shown = deadline.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if deadline else str(deadline_time)
    return AlertMessage(
        kind="deadline_missed",
        subject=f"{SUBJECT_PREFIX} Deadline missed: {dag_id} (run {run_id}) not finished by {shown}",
        lines=(
            ("DAG", dag_id),
            ("Run", run_id),
            ("Task", "(the whole run)"),
            ("Error", f"still {state} {hours_after_day_end:g} h after its day ended (deadline {shown})"),
            ("Log", run_link),
        ),
    )
