"""Profiles compared field by field with the independent DuckDB reference (bench/duckdb_reference.py).

Rows on both sides are brought to plain values first: timestamps as epoch microseconds (UTC),
dates as datetime.date, user ids as ints. Doubles must agree within a relative 1e-9, everything else
exactly, nulls only where the other side has a null. Used by tests/reference (Spark's rows) and
tests/compose (the documents behind the alias of the Compose stack).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from bench.duckdb_reference import duckdb_profiles
from ecommerce_profiles.core.schemas import PROFILE_FIELDS

RELATIVE_TOLERANCE = 1e-9
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE, abs_tol=0.0)
    return a == b and type(a) is type(b)


def reference_rows(csv_paths: str | Path | Sequence[str | Path], snapshot_date: dt.date | str) -> list[dict]:
    """The DuckDB reference's profiles, ordered by user_id, timestamps as epoch microseconds."""
    table = duckdb_profiles(csv_paths, snapshot_date)
    assert table.column_names == [f.name for f in PROFILE_FIELDS]
    for f in PROFILE_FIELDS:
        if f.type == "timestamp":  # naive UTC timestamps -> epoch microseconds
            index = table.column_names.index(f.name)
            table = table.set_column(index, f.name, pc.cast(table[f.name], pa.int64()))
    return table.to_pylist()


def _epoch_micros(value: Any) -> int | None:
    """An Elasticsearch date value (epoch millis, or ISO 8601 with or without zone) in microseconds."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return int(value) * 1000
    text = str(value).replace("Z", "+00:00")
    if text.isdigit():
        return int(text) * 1000
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def document_row(doc: Mapping[str, Any]) -> dict:
    """A profile document's _source with the reference's plain types."""
    row = {}
    for f in PROFILE_FIELDS:
        value = doc.get(f.name)
        if value is None:
            row[f.name] = None
        elif f.type == "timestamp":
            row[f.name] = _epoch_micros(value)
        elif f.type == "date":
            row[f.name] = dt.date.fromisoformat(str(value)[:10])
        elif f.type in ("int", "long"):
            row[f.name] = int(value)
        elif f.type == "double":
            row[f.name] = float(value)
        else:
            row[f.name] = value
    return row


def mismatches(ours: Iterable[Mapping[str, Any]], reference: Iterable[Mapping[str, Any]]) -> list[tuple]:
    """(user, field, ours, reference) for every field that differs; users are matched by user_id,
    a user on one side only is reported with field ``<missing>``."""
    mine = {row["user_id"]: row for row in ours}
    theirs = {row["user_id"]: row for row in reference}
    out: list[tuple] = [
        (user, "<missing>", user in mine, user in theirs) for user in sorted(mine.keys() ^ theirs.keys())
    ]
    for user in sorted(mine.keys() & theirs.keys()):
        out += [
            (user, f.name, mine[user][f.name], theirs[user][f.name])
            for f in PROFILE_FIELDS
            if not same_value(mine[user][f.name], theirs[user][f.name])
        ]
    return out
