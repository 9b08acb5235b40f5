"""The synthetic events generator and the two data CLIs (generate, split into daily drops)."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench.generator import BAD_ROW_VARIANTS, DEFAULT_EVENT_MIX, write_events_csv
from ecommerce_profiles.core.schemas import EVENT_COLUMNS, EVENT_TYPES
from ecommerce_profiles.core.validation import RULES

PROJECT_ROOT = Path(__file__).resolve().parents[2]
N_EVENTS = 60_000


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "events.csv"
    summary = write_events_csv(path, N_EVENTS, seed=11)
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    return {"path": path, "summary": summary, "header": header, "rows": rows}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    write_events_csv(a, 5_000, seed=3, bad_rows_per_rule=1)
    write_events_csv(b, 5_000, seed=3, bad_rows_per_rule=1)
    write_events_csv(c, 5_000, seed=4, bad_rows_per_rule=1)
    assert _sha256(a) == _sha256(b)
    assert _sha256(a) != _sha256(c)


def test_header_row_count_and_formats(generated):
    rows = generated["rows"]
    assert generated["header"] == list(EVENT_COLUMNS)
    assert len(rows) == N_EVENTS == generated["summary"]["rows"]
    assert all(len(r) == len(EVENT_COLUMNS) for r in rows)
    time_format = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")
    assert all(time_format.fullmatch(r[0]) for r in rows)
    assert {r[1] for r in rows} <= set(EVENT_TYPES)
    assert all(re.fullmatch(r"\d{19}", r[7]) and int(r[7]) < 2**63 for r in rows)
    assert all(re.fullmatch(r"\d{19}", r[3]) and int(r[3]) < 2**63 for r in rows)
    assert all(re.fullmatch(r"[1-9]\d*", r[2]) for r in rows)
    assert all(re.fullmatch(r"\d+\.\d\d", r[6]) for r in rows)
    assert all(re.fullmatch(r"[A-Za-z0-9]{10}|", r[8]) for r in rows)
    assert all(re.fullmatch(r"[a-z_]+(\.[a-z_]+)+|", r[4]) for r in rows)


def test_sorted_by_time_within_the_date_range(generated):
    times = [r[0] for r in generated["rows"]]
    assert times == sorted(times)
    assert times[0] >= "2020-09-24 00:00:00 UTC" and times[-1] <= "2021-02-28 23:59:59 UTC"
    assert times[0][:10] == "2020-09-24" and times[-1][:10] == "2021-02-28"


def test_event_mix_and_empty_shares_match_the_real_file(generated):
    rows = generated["rows"]
    n = len(rows)
    types = Counter(r[1] for r in rows)
    for name, share in DEFAULT_EVENT_MIX.items():
        assert types[name] / n == pytest.approx(share, abs=0.005), name
    assert sum(1 for r in rows if not r[4]) / n == pytest.approx(0.267, abs=0.03)
    assert sum(1 for r in rows if not r[5]) / n == pytest.approx(0.240, abs=0.03)
    assert any(r[6] == "0.00" for r in rows)
    assert generated["summary"]["event_types"] == dict(types)


def test_exact_duplicates_at_about_one_per_thousand(generated):
    lines = Counter(tuple(r) for r in generated["rows"])
    extra_copies = sum(c - 1 for c in lines.values() if c > 1)
    assert extra_copies == generated["summary"]["duplicates"] == round(N_EVENTS * 0.001)


def test_users_are_heavy_tailed_and_sessions_hold_several_events(generated):
    rows = generated["rows"]
    per_user = Counter(r[7] for r in rows)
    counts = sorted(per_user.values())
    assert statistics.median(counts) <= 2
    assert counts[-1] >= 30  # a few very active users
    assert len(per_user) / len(rows) == pytest.approx(0.46, abs=0.05)  # 407,283 / 885,129 in the real file
    per_session = Counter(r[8] for r in rows if r[8])
    assert statistics.mean(per_session.values()) > 1.5
    assert all(len(users) == 1 for users in _session_users(rows).values())  # a session is one user's


def _session_users(rows):
    users: dict[str, set] = {}
    for r in rows:
        if r[8]:
            users.setdefault(r[8], set()).add(r[7])
    return users


def test_carts_and_purchases_follow_a_view_of_the_same_product_in_the_session(generated):
    last_product: dict[str, str] = {}
    following = total = 0
    for r in generated["rows"]:
        session = r[8]
        if r[1] in ("cart", "purchase") and session:
            total += 1
            following += last_product.get(session) == r[2]
        if session:
            last_product[session] = r[2]
    assert total and following / total > 0.95


def test_bad_rows_cover_every_validation_rule_but_duplicates():
    assert set(BAD_ROW_VARIANTS) == set(RULES) - {"duplicate_row"}


def test_event_mix_option_adds_remove_from_cart(tmp_path):
    mix = {"view": 0.8, "cart": 0.1, "remove_from_cart": 0.05, "purchase": 0.05}
    summary = write_events_csv(tmp_path / "e.csv", 10_000, seed=1, event_mix=mix, duplicate_rate=0)
    assert summary["event_types"]["remove_from_cart"] == pytest.approx(500, abs=5)
    assert summary["event_types"]["view"] == pytest.approx(8_000, abs=10)


def test_single_day_range_stays_on_that_day(tmp_path):
    path = tmp_path / "day.csv"
    write_events_csv(path, 3_000, seed=5, start="2020-11-02", end="2020-11-02")
    with open(path) as f:
        next(f)
        assert {line[:10] for line in f} == {"2020-11-02"}


# ------------------------------------------------------------------------------------------
# CLIs
# ------------------------------------------------------------------------------------------
def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)


def test_generate_events_cli_writes_the_requested_rows(tmp_path):
    out = tmp_path / "cli.csv"
    result = _run(
        "-m", "bench.generate_events", "--events", "2000", "--seed", "9", "--bad-rows", "1", "--out", str(out)
    )
    summary = json.loads(result.stdout)
    assert summary["rows"] == 2000 and summary["bad_rows"] == len(BAD_ROW_VARIANTS)
    assert sum(1 for _ in open(out, "rb")) == 2001
    # the CLI and the function agree byte for byte
    again = tmp_path / "again.csv"
    write_events_csv(again, 2000, seed=9, bad_rows_per_rule=1)
    assert _sha256(out) == _sha256(again)


def test_split_daily_drops_cli_keeps_every_row_once(tmp_path):
    source = tmp_path / "full.csv"
    write_events_csv(source, 4_000, seed=2, start="2020-10-01", end="2020-10-05", bad_rows_per_rule=1)
    out_dir = tmp_path / "incoming"
    stale = out_dir / "2020-01-01" / "events.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    result = _run("scripts/split_daily_drops.py", str(source), "--out-dir", str(out_dir), "--clean")

    lines = source.read_text(errors="surrogateescape").splitlines()
    header, data = lines[0], lines[1:]
    drops = sorted(out_dir.glob("*/events.csv"))
    assert [d.parent.name for d in drops] == [f"2020-10-0{i}" for i in range(1, 6)]
    assert not stale.exists()
    split_rows = []
    for drop in drops:
        drop_lines = drop.read_text(errors="surrogateescape").splitlines()
        assert drop_lines[0] == header
        # every row with a readable date sits in its own date's drop
        assert all(
            not re.match(r"\d{4}-\d\d-\d\d", r) or r.startswith(drop.parent.name) or not _real_date(r[:10])
            for r in drop_lines[1:]
        )
        split_rows += drop_lines[1:]
        assert f"{drop.parent.name}  {len(drop_lines) - 1:>9,}" in result.stdout
    assert sorted(split_rows) == sorted(data)  # nothing lost, nothing doubled
    # each drop is marked complete for the DAG's sensor, after its file was written
    assert all((d.parent / "_SUCCESS").is_file() for d in drops)
    assert f"{len(data):,} rows into 5 daily drops" in result.stdout


def _real_date(text: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(text)
        return True
    except ValueError:
        return False
