"""The monitoring DAG's checks (dags/ecommerce_monitoring.py, docs/operations.md): pure functions.

Each check turns observations (what the adapters in ecommerce_profiles.operators.monitoring read
from Elasticsearch, the lake and the services) into ``Finding``s. A finding has a ``key`` that
names its incident: the same problem seen again an hour later has the same key, so
``track_incidents`` mails it once, keeps it open while it lasts, and forgets it when the check
no longer finds it (a later return is a new incident). A check that could not look (its service
did not answer) leaves its open incidents as they are.

    service_down:<name>              Kafka, MinIO or Elasticsearch does not answer
    alias_stale:<alias>:<index>      the alias's snapshot is older than max_age_days (or it serves nothing)
    alias_shrank:<index>             the alias moved to an index with fewer users than the one before
    reject_spike:<run id>            the last run's reject fraction is far above the median of the runs before
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

SERVICES = ("kafka", "minio", "elasticsearch")
SERVICE_LABELS = {"kafka": "Kafka", "minio": "MinIO", "elasticsearch": "Elasticsearch"}

# The kinds of finding, each the scope of one check.
SERVICE_DOWN, ALIAS_STALE, ALIAS_SHRANK, REJECT_SPIKE = "service_down", "alias_stale", "alias_shrank", "reject_spike"


@dataclass(frozen=True)
class Finding:
    kind: str
    key: str
    subject: str
    details: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class MonitorSettings:
    max_snapshot_age_days: int = 2
    reject_spike_factor: float = 3.0
    reject_history_runs: int = 14  # the last run and up to this many before it
    reject_min_history: int = 3  # fewer runs before the last one: no median, no alert
    reject_floor: float = 0.001  # fractions at or below this never alert (a median of 0 would make any reject a spike)


def _int(environ: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    value = int(environ.get(name) or default)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(environ: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    value = float(environ.get(name) or default)
    if not value >= minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def settings_from_env(environ: Mapping[str, str]) -> MonitorSettings:
    """MONITOR_MAX_SNAPSHOT_AGE_DAYS, MONITOR_REJECT_SPIKE_FACTOR, MONITOR_REJECT_HISTORY_RUNS,
    MONITOR_REJECT_MIN_HISTORY and MONITOR_REJECT_FLOOR (.env), else the defaults."""
    defaults = MonitorSettings()
    return MonitorSettings(
        max_snapshot_age_days=_int(environ, "MONITOR_MAX_SNAPSHOT_AGE_DAYS", defaults.max_snapshot_age_days, 0),
        reject_spike_factor=_float(environ, "MONITOR_REJECT_SPIKE_FACTOR", defaults.reject_spike_factor, 1.0),
        reject_history_runs=_int(environ, "MONITOR_REJECT_HISTORY_RUNS", defaults.reject_history_runs, 1),
        reject_min_history=_int(environ, "MONITOR_REJECT_MIN_HISTORY", defaults.reject_min_history, 1),
        reject_floor=_float(environ, "MONITOR_REJECT_FLOOR", defaults.reject_floor, 0.0),
    )


# ------------------------------------------------------------------------------ services --
def check_services(errors: Mapping[str, str | None]) -> list[Finding]:
    """``errors``: service name -> None when it answered, else the error's first line."""
    return [
        Finding(
            kind=SERVICE_DOWN,
            key=f"{SERVICE_DOWN}:{name}",
            subject=f"{SERVICE_LABELS.get(name, name)} does not answer",
            details=(("Service", SERVICE_LABELS.get(name, name)), ("Error", error)),
        )
        for name, error in errors.items()
        if error is not None
    ]


# ------------------------------------------------------------------------------ the alias --
@dataclass(frozen=True)
class AliasObservation:
    """What the alias serves now: its index (None: the alias does not exist), the documents
    (= users) behind it and the index's snapshot date."""

    alias: str
    index: str | None
    users: int | None
    snapshot_date: str | None

    def as_state(self) -> dict[str, Any]:
        return {"index": self.index, "users": self.users, "snapshot_date": self.snapshot_date}


def check_alias_age(observed: AliasObservation, today: date, max_age_days: int) -> list[Finding]:
    if observed.index is None or not observed.snapshot_date:
        return [
            Finding(
                kind=ALIAS_STALE,
                key=f"{ALIAS_STALE}:{observed.alias}:(none)",
                subject=f"Alias {observed.alias} serves no profile snapshot",
                details=(("Alias", observed.alias), ("Index", observed.index or "(none)")),
            )
        ]
    snapshot = date.fromisoformat(observed.snapshot_date)
    age = (today - snapshot).days
    if age <= max_age_days:
        return []
    return [
        Finding(
            kind=ALIAS_STALE,
            key=f"{ALIAS_STALE}:{observed.alias}:{observed.index}",
            subject=f"Alias {observed.alias} serves a snapshot {age} day{'' if age == 1 else 's'} old ({observed.snapshot_date})",
            details=(
                ("Alias", observed.alias),
                ("Index", observed.index),
                ("Snapshot date", observed.snapshot_date),
                ("Age", f"{age} days (limit {max_age_days})"),
            ),
        )
    ]


def check_alias_users(previous: Mapping[str, Any] | None, observed: AliasObservation) -> list[Finding]:
    """The alias moved (another index than last seen) and fewer users are behind it now."""
    if not previous or observed.index is None or observed.users is None:
        return []
    before_index, before_users = previous.get("index"), previous.get("users")
    if before_index is None or before_users is None or before_index == observed.index:
        return []
    if observed.users >= int(before_users):
        return []
    return [
        Finding(
            kind=ALIAS_SHRANK,
            key=f"{ALIAS_SHRANK}:{observed.index}",
            subject=(
                f"Publish lowered the users behind {observed.alias}: {int(before_users):,} in {before_index} "
                f"-> {observed.users:,} in {observed.index}"
            ),
            details=(
                ("Alias", observed.alias),
                ("Before", f"{before_index}: {int(before_users):,} users"),
                ("After", f"{observed.index}: {observed.users:,} users"),
                ("Lost", f"{int(before_users) - observed.users:,} users"),
            ),
        )
    ]


# ------------------------------------------------------------------------------ rejects --
@dataclass(frozen=True)
class RunRejects:
    run_date: str
    run_id: str
    rows_read: int
    rows_quarantined: int

    @property
    def fraction(self) -> float:
        return self.rows_quarantined / self.rows_read if self.rows_read else 0.0


def run_rejects_from_summary(summary: Mapping[str, Any]) -> RunRejects:
    """From a run's ``latest.json`` / ``run_summary.json`` (ecommerce_profiles.core.run_summary)."""
    return RunRejects(
        run_date=str(summary["run_date"]),
        run_id=str(summary["run_id"]),
        rows_read=int(summary["rows_read"]),
        rows_quarantined=int(summary["rows_quarantined"]),
    )


def check_reject_fraction(runs: Sequence[RunRejects], settings: MonitorSettings) -> list[Finding]:
    """The newest run (by run date) against the median of up to ``reject_history_runs`` before it."""
    ordered = sorted(runs, key=lambda r: (r.run_date, r.run_id))
    if len(ordered) < settings.reject_min_history + 1:
        return []
    last, history = ordered[-1], ordered[-1 - settings.reject_history_runs : -1]
    median = statistics.median(r.fraction for r in history)
    limit = max(settings.reject_spike_factor * median, settings.reject_floor)
    if last.fraction <= limit:
        return []
    return [
        Finding(
            kind=REJECT_SPIKE,
            key=f"{REJECT_SPIKE}:{last.run_id}",
            subject=(
                f"Reject fraction {last.fraction:.2%} of run {last.run_id} ({last.run_date}) is above "
                f"{settings.reject_spike_factor:g}x the median {median:.2%} of the {len(history)} runs before"
            ),
            details=(
                ("Run", f"{last.run_id} (run date {last.run_date})"),
                ("Rejected", f"{last.rows_quarantined:,} of {last.rows_read:,} rows ({last.fraction:.2%})"),
                (
                    "Median before",
                    f"{median:.2%} over {len(history)} runs ({history[0].run_date} .. {history[-1].run_date})",
                ),
                ("Limit", f"{limit:.2%}"),
            ),
        )
    ]


# ------------------------------------------------------------------------------ incidents --
@dataclass
class IncidentUpdate:
    new: list[Finding] = field(default_factory=list)  # to mail now
    ongoing: list[str] = field(default_factory=list)  # open before, still found: no mail
    resolved: list[str] = field(default_factory=list)  # open before, gone now
    open: dict[str, dict[str, Any]] = field(default_factory=dict)  # the state to keep


def track_incidents(
    open_before: Mapping[str, Mapping[str, Any]],
    findings: Iterable[Finding],
    checked_kinds: Iterable[str],
    now: datetime,
) -> IncidentUpdate:
    """Once per incident: a finding mails only when its key was not open already."""
    checked = set(checked_kinds)
    update = IncidentUpdate()
    found: dict[str, Finding] = {}
    for finding in findings:
        found.setdefault(finding.key, finding)
    for key, finding in found.items():
        if key in open_before:
            update.ongoing.append(key)
            update.open[key] = dict(open_before[key])
        else:
            update.new.append(finding)
            update.open[key] = {"since": now.isoformat(), "subject": finding.subject}
    for key, record in open_before.items():
        if key in found:
            continue
        if key.split(":", 1)[0] in checked:
            update.resolved.append(key)
        else:
            update.open[key] = dict(record)  # that check could not look this time
    return update
