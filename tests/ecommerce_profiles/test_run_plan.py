"""plan_run: one plan per run, from the run itself, never from `ds` alone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ecommerce_profiles.core.run_plan import DAILY, ONE_SHOT, PlanError, plan_run, snapshot_date

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def _plan(
    data_dir,
    params=None,
    run_id="scheduled__2020-11-17T00:00:00+00:00",
    logical_date=datetime(2020, 11, 17, tzinfo=UTC),
    run_after=None,
):
    return plan_run(
        params or {}, run_id=run_id, logical_date=logical_date, run_after=run_after, data_dir=data_dir, now=NOW
    )


def test_a_daily_run_waits_for_the_complete_drop_of_its_date(tmp_path):
    plan = _plan(tmp_path, {"input_path": None, "snapshot_date": None})
    assert plan["mode"] == DAILY and plan["run_date"] == "2020-11-17"
    assert plan["input_target"] == str(tmp_path / "incoming" / "2020-11-17")
    assert plan["wait_path"] == str(tmp_path / "incoming" / "2020-11-17" / "_SUCCESS")
    assert plan["batch_id"] == "drop-2020-11-17"
    assert plan["snapshot_date"] == "2020-11-17"
    assert plan["evidence_prefix"] == "runs/run_date=2020-11-17/run=scheduled__2020-11-17T00_00_00_00_00"
    assert plan["max_event_time"] == "2026-12-02T03:00:00+00:00"


def test_a_run_without_logical_date_uses_the_day_it_was_created(tmp_path):
    plan = _plan(
        tmp_path,
        run_id="manual__2026-12-01T02:59:00",
        logical_date=None,
        run_after=datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
    )
    assert plan["run_date"] == "2026-11-30" and plan["batch_id"] == "drop-2026-11-30"


def test_reruns_share_the_batch_but_keep_their_own_evidence(tmp_path):
    first = _plan(tmp_path, run_id="scheduled__2020-11-17T00:00:00+00:00")
    rerun = _plan(tmp_path, run_id="manual__2020-11-18T09:00:00+00:00")
    assert first["batch_id"] == rerun["batch_id"]
    assert first["evidence_prefix"] != rerun["evidence_prefix"]
    assert first["staging_dir"] != rerun["staging_dir"]


def test_a_one_shot_file_is_found_inside_the_data_dir_and_named_as_its_batch(tmp_path):
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "events.csv").write_text("x\n")
    plan = _plan(tmp_path, {"input_path": " exports/events.csv "})
    assert plan["mode"] == ONE_SHOT and plan["input_target"] == str(tmp_path / "exports" / "events.csv")
    assert plan["wait_path"] == plan["input_target"]
    assert plan["batch_id"].startswith("file-events-") and plan["snapshot_date"] is None
    other = tmp_path / "other"
    other.mkdir()
    (other / "events.csv").write_text("x\n")
    assert _plan(tmp_path, {"input_path": "other/events.csv"})["batch_id"] != plan["batch_id"]


@pytest.mark.parametrize("path", ["../secrets.csv", "/etc/passwd", "/proc/self/environ", "missing.csv"])
def test_a_one_shot_path_outside_the_data_dir_or_missing_is_refused(tmp_path, path):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "secrets.csv").write_text("x\n")
    with pytest.raises(PlanError, match="input_path"):
        _plan(data, {"input_path": path})


@pytest.mark.parametrize(
    "value, message", [("2026-12-03", "in the future"), ("17/11/2020", "YYYY-MM-DD"), ("1969-12-31", "before 1970")]
)
def test_a_bad_snapshot_date_is_refused_with_the_rule(tmp_path, value, message):
    with pytest.raises(PlanError, match=message):
        _plan(tmp_path, {"snapshot_date": value})


def test_an_override_wins_and_a_one_shot_snapshot_is_its_last_event_date(tmp_path):
    assert _plan(tmp_path, {"snapshot_date": "2020-11-10"})["snapshot_date"] == "2020-11-10"
    (tmp_path / "f.csv").write_text("x\n")
    plan = _plan(tmp_path, {"input_path": "f.csv"})
    assert snapshot_date(plan, {"max_event_date": "2020-10-03"}) == "2020-10-03"
    with pytest.raises(PlanError, match="no valid events"):
        snapshot_date(plan, {"max_event_date": None})


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_a_reject_fraction_outside_0_1_is_refused(tmp_path, value):
    with pytest.raises(PlanError, match="max_reject_fraction"):
        _plan(tmp_path, {"max_reject_fraction": value})
