"""What a DAG run works on, decided once by its first task (``plan_run``) from the run itself.

Every later task reads the plan (XCom), never ``ds``: scheduled, backfill, UI-triggered (with
or without a logical date) and ``airflow dags test`` runs all get the same kind of plan.

Two ways in (README "Input"):
  * daily drop: the folder ``<data dir>/incoming/<run date>/``, complete when it holds the
    ``_SUCCESS`` marker; its events form the archive batch ``drop-<run date>``; snapshot =
    the run date;
  * one-shot file: the ``input_path`` param, relative to the data directory (an absolute path
    must be inside it); batch ``file-<name>-<hash>``; snapshot = the last event date in the
    file. The ``snapshot_date`` param overrides either (never in the future).

The run date is the logical date when the run has one, else the day the run was created.
Outputs of a run are keyed by its own run id (``lake.run_evidence_prefix``), so two runs of the
same date keep separate evidence; ``runs/run_date=<D>/latest.json`` says which finished last.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ecommerce_profiles.core import lake
from ecommerce_profiles.core.inputs import DROP_COMPLETE_MARKER, InputError, confine, drop_dir

DAILY, ONE_SHOT = "daily", "one_shot"
# Events may be at most this far ahead of the run's wall clock (clock skew between systems).
FUTURE_TOLERANCE = timedelta(days=1)


class PlanError(ValueError):
    """A parameter makes the run impossible; the message names the parameter and the rule."""


def _optional_text(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PlanError(f"param {name} must be a string or empty, got {type(value).__name__}")
    return value.strip() or None


def plan_run(
    params: Mapping[str, Any],
    *,
    run_id: str,
    logical_date: datetime | None,
    run_after: datetime | None,
    data_dir: Path,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The run's plan: mode, run date, input, batch, snapshot date, output prefixes, limits."""
    now = now or datetime.now(UTC)
    when = logical_date or run_after or now
    run_date = when.astimezone(UTC).date().isoformat()
    run_key = lake.safe_token(run_id)

    input_path = _optional_text(params, "input_path")
    if input_path:
        try:
            target = confine(input_path, data_dir)
        except InputError as err:
            raise PlanError(f"param input_path: {err}") from err
        if not target.is_file():
            raise PlanError(f"param input_path: {input_path!r} is not a file inside the data directory {data_dir}")
        mode, wait_path = ONE_SHOT, target
        batch_id = lake.file_batch_id(target.relative_to(data_dir).as_posix())
    else:
        target = drop_dir(data_dir, run_date)
        mode, wait_path = DAILY, target / DROP_COMPLETE_MARKER
        batch_id = lake.daily_batch_id(run_date)

    snapshot = _optional_text(params, "snapshot_date")
    if snapshot:
        try:
            snapshot = date.fromisoformat(snapshot).isoformat()
        except ValueError as err:
            raise PlanError(f"param snapshot_date: {snapshot!r} is not a YYYY-MM-DD date") from err
        if snapshot > (now + FUTURE_TOLERANCE).date().isoformat():
            raise PlanError(f"param snapshot_date: {snapshot} is in the future (today is {now.date()})")
        if snapshot < "1970-01-01":
            raise PlanError(f"param snapshot_date: {snapshot} is before 1970-01-01")
    elif mode == DAILY:
        snapshot = run_date

    max_reject_fraction = params.get("max_reject_fraction", 0.01)
    if max_reject_fraction is None:
        max_reject_fraction = 0.01
    if not 0 <= float(max_reject_fraction) <= 1:
        raise PlanError(f"param max_reject_fraction: {max_reject_fraction} is not within [0, 1]")

    return {
        "run_id": run_id,
        "run_key": run_key,
        "mode": mode,
        "run_date": run_date,
        "input_target": str(target),
        "wait_path": str(wait_path),
        "batch_id": batch_id,
        # None for a one-shot file without override: the last valid event date decides.
        "snapshot_date": snapshot,
        "evidence_prefix": lake.run_evidence_prefix(run_date, run_key),
        "staging_dir": str(data_dir / "staging" / run_key),
        "max_reject_fraction": float(max_reject_fraction),
        "max_event_time": (now + FUTURE_TOLERANCE).replace(microsecond=0).isoformat(),
    }


def snapshot_date(plan: Mapping[str, Any], validation: Mapping[str, Any] | None) -> str:
    """The plan's snapshot date, or for a one-shot file the last valid event date in it."""
    if plan.get("snapshot_date"):
        return str(plan["snapshot_date"])
    if not validation or not validation.get("max_event_date"):
        raise PlanError("the one-shot input has no valid events: cannot derive a snapshot date")
    return str(validation["max_event_date"])
