"""A week of daily drops through the real DAG, delivered the way upstream systems deliver:
late, at least once, re-run and backfilled out of order. Nothing may be lost or doubled.

Seven daily drops of generated events (``incoming/<date>/events.csv`` + ``_SUCCESS``):
  * >= 5% of each later drop's events belong to earlier days (held back from their own drop);
  * >= 1% of each later drop are rows an earlier drop already delivered (re-delivery);
  * run order: D1 D2 D3, D3 again (rerun), D5 then D4 (out-of-order backfill), D6 D7.
Then, behind the alias (snapshot D7): every user's counts equal an independent recomputation
over all distinct events; the lake holds each distinct event exactly once; only published
indices remain; the staging area is empty; every run kept its own evidence.
"""

from __future__ import annotations

import csv
import random
from datetime import date, timedelta
from pathlib import Path

import pytest

from bench.generator import write_events_csv
from ecommerce_profiles.core.inputs import DROP_COMPLETE_MARKER
from ecommerce_profiles.core.profile_index import profile_indices
from tests.support.pipeline import (
    alias_docs,
    distinct_valid_rows,
    expected_profiles,
    lake_json,
    lake_keys,
    lake_rows,
    make_pipeline,
)

# October 2019: the sibling REES46 datasets' dates, before the DAG's old start_date (runs then had no tasks).
FIRST_DAY = date(2019, 10, 1)
DAYS = [(FIRST_DAY + timedelta(days=i)).isoformat() for i in range(7)]
RUN_ORDER = [DAYS[0], DAYS[1], DAYS[2], DAYS[2], DAYS[4], DAYS[3], DAYS[5], DAYS[6]]
EVENTS = 8_400
LATE_SHARE = 0.10  # of a day's events, delivered 1 (mostly) or 2 drops later
REDELIVERED_SHARE = 0.015  # of a drop, copies of rows an earlier drop delivered


def _write_drops(data_dir: Path, source: Path) -> dict[str, list[list[str]]]:
    """Cut one generated week into drops with late and re-delivered rows; return rows per drop."""
    rng = random.Random(11)
    with open(source, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        by_day: dict[str, list[list[str]]] = {d: [] for d in DAYS}
        for row in reader:
            by_day[row[0][:10]].append(row)
    drops: dict[str, list[list[str]]] = {d: [] for d in DAYS}
    delivered: list[list[str]] = []
    for i, day in enumerate(DAYS):
        rows = by_day[day]
        rng.shuffle(rows)
        late = int(len(rows) * LATE_SHARE) if i < len(DAYS) - 2 else 0
        drops[day] += rows[late:]
        for row in rows[:late]:  # late: arrives with the drop of the next day or the one after
            drops[DAYS[i + (1 if rng.random() < 0.75 else 2)]].append(row)
    for i, day in enumerate(DAYS):
        if i:
            again = rng.sample(delivered, int(len(drops[day]) * REDELIVERED_SHARE) + 1)
            drops[day] += again
        delivered += drops[day]
    for day, rows in drops.items():
        folder = data_dir / "incoming" / day
        folder.mkdir(parents=True)
        rng.shuffle(rows)
        with open(folder / "events.csv", "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        (folder / DROP_COMPLETE_MARKER).touch()
    return drops


@pytest.fixture(scope="module")
def week(stack, tmp_path_factory):
    pipeline = make_pipeline(tmp_path_factory.mktemp("week"), prefix="week")
    source = pipeline.root / "week.csv"
    # Fewer users than the real file's ratio: most users are active on several days, so a lost or
    # doubled late event changes their counts.
    write_events_csv(source, EVENTS, seed=5, start=DAYS[0], end=DAYS[-1], n_users=900)
    drops = _write_drops(pipeline.data_dir, source)
    for day in RUN_ORDER:
        pipeline.dags_test(day)
    yield {"pipeline": pipeline, "drops": drops, "source": source}
    pipeline.remove()


def test_the_drops_are_as_hostile_as_promised(week):
    drops = week["drops"]
    seen: set[tuple[str, ...]] = set()
    for i, day in enumerate(DAYS):
        rows = [tuple(r) for r in drops[day]]
        if 0 < i < len(DAYS) - 1:
            assert sum(r[0][:10] < day for r in rows) >= 0.05 * len(rows), day
        if i:
            assert sum(r in seen for r in rows) >= 0.01 * len(rows), day
        seen.update(rows)


def test_profiles_behind_the_alias_equal_a_recomputation_over_all_distinct_events(week):
    pipeline = week["pipeline"]
    rows = distinct_valid_rows(sorted(pipeline.data_dir.glob("incoming/*/events.csv")))
    expected = expected_profiles(rows, DAYS[-1])
    docs = alias_docs(pipeline.alias)
    assert set(docs) == set(expected)
    wrong = []
    for user, want in expected.items():
        doc = docs[user]
        got = {k: doc[k] for k in ("views", "carts", "purchases", "events")}
        if (
            got != {k: want[k] for k in got}
            or abs(doc["revenue"] - want["revenue"]) > 1e-6
            or doc["last_seen"][:10] != want["last"]
            or doc["snapshot_date"] != DAYS[-1]
        ):
            wrong.append((user, got, want))
    assert not wrong, f"{len(wrong)} of {len(expected)} users wrong, e.g. {wrong[:3]}"


def test_the_lake_holds_every_distinct_event_exactly_once(week):
    pipeline = week["pipeline"]
    rows = distinct_valid_rows(sorted(pipeline.data_dir.glob("incoming/*/events.csv")))
    archived = lake_rows(pipeline.bucket, "raw/events/")
    assert len(archived) == len(rows)
    keys = {
        (
            r["event_time"].strftime("%Y-%m-%d %H:%M:%S UTC"),
            r["event_type"],
            r["product_id"],
            r["user_id"],
            r["user_session"],
            str(r["price"]),
        )
        for r in archived
    }
    assert len(keys) == len(archived), "an event is archived twice"
    # Late events sit in their own event date, in the batch of the drop that delivered them.
    batches = {(r["event_date"], r["batch"]) for r in archived}
    assert any(d != b.removeprefix("drop-") for d, b in batches)
    assert {b for _, b in batches} == {f"drop-{d}" for d in DAYS}


def test_only_published_indices_remain_and_the_alias_is_on_the_last_day(week):
    pipeline = week["pipeline"]
    from tests.support.pipeline import elasticsearch

    indices = profile_indices(elasticsearch(), pipeline.alias)
    assert all(info["published_at"] for info in indices.values()), indices
    aliased = [name for name, info in indices.items() if info["aliased"]]
    assert len(aliased) == 1 and indices[aliased[0]]["snapshot"] == DAYS[-1].replace("-", "")
    assert len(indices) <= 3  # retention


def test_staging_is_empty_and_every_run_kept_its_evidence(week):
    pipeline = week["pipeline"]
    staging = pipeline.data_dir / "staging"
    assert not staging.exists() or not any(staging.rglob("*"))
    rerun_day = DAYS[2]
    runs = {k.split("/")[2] for k in lake_keys(pipeline.bucket, f"runs/run_date={rerun_day}/") if "/run=" in k}
    assert len(runs) == 2, runs  # the run and its rerun, side by side
    latest = lake_json(pipeline.bucket, f"runs/run_date={rerun_day}/latest.json")
    assert latest["run_date"] == rerun_day
    assert latest["evidence"].rsplit("/", 1)[1] in runs
    assert latest["rows_read"] == latest["rows_accepted"] + latest["rows_quarantined"]
    # the rerun found all of its events already archived by itself: nothing new, nothing lost
    assert (
        latest["events_archived"] + latest["already_archived"] + latest["duplicates_in_run"]
        == latest["events_produced"]
    )


def test_each_run_carried_the_previous_snapshot_forward_only_when_the_archive_allowed(week):
    """Profiles are rebuilt from the previous snapshot when nothing up to it changed since it was
    built, and from the whole archive otherwise; the final profiles (checked above) are exact."""
    pipeline = week["pipeline"]
    built: dict[str, list[tuple[str, str | None]]] = {}
    for key in sorted(k for k in lake_keys(pipeline.bucket, "runs/") if k.endswith("/spark_summary.json")):
        summary = lake_json(pipeline.bucket, key)
        build = summary["profile_build"]
        built.setdefault(summary["snapshot_date"], []).append(
            (build["mode"], build["previous_snapshot"] if build["mode"] == "incremental" else None)
        )
    d1, d2, d3, d4, d5, d6, d7 = DAYS
    assert built == {
        d1: [("full", None)],  # nothing before it
        d2: [("incremental", d1)],
        d3: [("incremental", d2), ("incremental", d2)],  # the rerun replaces a batch D2 never held
        d5: [("incremental", d3)],  # D4 not run yet: D3 is the latest snapshot
        d4: [("full", None)],  # D5's late events of D3 changed the archive up to D3
        d6: [("full", None)],  # D4's late events changed the archive up to D5
        d7: [("incremental", d6)],
    }
