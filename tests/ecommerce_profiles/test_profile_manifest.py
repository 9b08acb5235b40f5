"""When a profile run may carry an earlier snapshot forward (ecommerce_profiles.core.profile_manifest)."""

from __future__ import annotations

from ecommerce_profiles.core.profile_manifest import (
    archive_files,
    build_manifest,
    decide,
    logic_version,
    previous_snapshot_date,
)

VERSION = "v1"


def part(event_date: str, batch: str, name: str = "part-0000-a.snappy.parquet") -> str:
    return f"event_date={event_date}/batch={batch}/{name}"


# The archive when the snapshot of 2020-10-02 was built: two daily drops, and an event of
# 2020-10-03 that arrived early (future-dated relative to that snapshot).
THEN = {
    part("2020-10-01", "drop-2020-10-01"): 100,
    part("2020-10-02", "drop-2020-10-02"): 120,
    part("2020-10-01", "drop-2020-10-02"): 7,
    part("2020-10-03", "drop-2020-10-02"): 3,
}
PREVIOUS = build_manifest("2020-10-02", THEN, VERSION, profiles=42, mode="full")


def test_the_next_daily_run_carries_the_previous_snapshot_forward():
    # Its own new files: a new date, late events of an old date, and more events of a later one.
    now = {**THEN, part("2020-10-03", "drop-2020-10-03"): 90, part("2020-10-01", "drop-2020-10-03"): 5}
    decision = decide(PREVIOUS, now, "drop-2020-10-03", "2020-10-03", VERSION)
    assert decision.incremental, decision.reason
    assert decision.previous_snapshot == "2020-10-02"


def test_files_after_the_previous_snapshot_may_change():
    now = {
        part("2020-10-01", "drop-2020-10-01"): 100,
        part("2020-10-02", "drop-2020-10-02"): 120,
        part("2020-10-01", "drop-2020-10-02"): 7,
        part("2020-10-05", "file-x-1"): 4,
    }
    assert decide(PREVIOUS, now, "drop-2020-10-06", "2020-10-06", VERSION).incremental


def test_a_changed_partition_up_to_the_previous_snapshot_forces_a_full_rebuild():
    rewritten = {**THEN, part("2020-10-01", "drop-2020-10-01"): 101}  # a backfill rewrote it
    decision = decide(PREVIOUS, rewritten, "drop-2020-10-03", "2020-10-03", VERSION)
    assert not decision.incremental and "event_date=2020-10-01/batch=drop-2020-10-01" in decision.reason
    gone = {k: v for k, v in THEN.items() if "batch=drop-2020-10-01" not in k}
    assert not decide(PREVIOUS, gone, "drop-2020-10-03", "2020-10-03", VERSION).incremental
    added = {**THEN, part("2020-09-30", "file-old-1"): 9}  # a file ingested since, of an old date
    assert not decide(PREVIOUS, added, "drop-2020-10-03", "2020-10-03", VERSION).incremental


def test_a_rerun_of_a_batch_that_fed_the_snapshot_forces_a_full_rebuild():
    # drop-2020-10-02 is re-run with snapshot 2020-10-03: its old rows are in the snapshot of 10-02.
    decision = decide(PREVIOUS, THEN, "drop-2020-10-02", "2020-10-03", VERSION)
    assert not decision.incremental and "rerun" in decision.reason


def test_other_logic_no_manifest_or_a_later_manifest_force_a_full_rebuild():
    assert "logic changed" in decide(PREVIOUS, THEN, "drop-2020-10-03", "2020-10-03", "v2").reason
    assert not decide(None, THEN, "drop-2020-10-03", "2020-10-03", VERSION).incremental
    assert not decide(PREVIOUS, THEN, "drop-2020-10-02", "2020-10-02", VERSION).incremental
    assert not decide({**PREVIOUS, "format": 99}, THEN, "drop-2020-10-03", "2020-10-03", VERSION).incremental


def test_the_manifest_records_data_files_only():
    listing = {
        **THEN,
        ".spark-staging-1/event_date=2020-10-04/batch=b/part-0.parquet": 5,
        "event_date=2020-10-01/batch=drop-2020-10-01/_SUCCESS": 0,
        "_temporary/0/x": 1,
    }
    assert archive_files(listing) == THEN
    assert build_manifest("2020-10-02", listing, VERSION, 42, "full")["archive_files"] == dict(sorted(THEN.items()))


def test_previous_snapshot_is_the_latest_manifest_before_the_run():
    names = [
        "snapshot_date=2020-10-01.json",
        "snapshot_date=2020-10-04.json",
        "snapshot_date=2020-10-02.json",
        "notes.txt",
        "snapshot_date=2020-10-03.json.tmp",
    ]
    assert previous_snapshot_date(names, "2020-10-04") == "2020-10-02"
    assert previous_snapshot_date(names, "2020-10-10") == "2020-10-04"
    assert previous_snapshot_date(names, "2020-10-01") is None


def test_logic_version_follows_the_files(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    before = logic_version(a, b)
    assert logic_version(a, b) == before
    b.write_text("y = 3\n")
    assert logic_version(a, b) != before
