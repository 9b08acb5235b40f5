"""Spark's build_profiles against the independent DuckDB SQL reference, field by field.

Both read the same generated CSV (120,000 rows: duplicates, empty categories and brands, zero prices,
removals, sessions across midnight, events after the snapshot). Every field of every user must be
equal: doubles within a relative 1e-9, everything else exactly, nulls only where the other has nulls.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest
from pyspark.sql import functions as F

from bench.generator import DEFAULT_EVENT_MIX, write_events_csv
from ecommerce_profiles.core.schemas import PROFILE_FIELDS
from spark_jobs.profile_transforms import PROFILE_SCHEMA, build_profiles, read_events_csv
from tests.support.profile_compare import reference_rows as reference_rows_of
from tests.support.profile_compare import same_value

N_EVENTS = 120_000
SNAPSHOT = dt.date(2021, 1, 15)  # inside the generated range (2020-09-24 .. 2021-02-28)


@pytest.fixture(scope="module")
def events_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("crosscheck") / "events.csv"
    # The real file has no removals; add a few so their weight-0 rule is exercised too.
    mix = {**DEFAULT_EVENT_MIX, "remove_from_cart": 0.02}
    summary = write_events_csv(path, N_EVENTS, seed=20240924, event_mix=mix)
    assert summary["duplicates"] > 0 and summary["zero_price_rows"] > 0
    assert summary["empty_category_code_rows"] > 0 and summary["empty_brand_rows"] > 0
    return path


def test_the_generated_events_cover_the_edge_cases(events_csv):
    """Guards the comparison below: it only proves something if these cases occur."""
    [counts] = duckdb.sql(
        f"""
        WITH e AS (SELECT strptime(event_time, '%Y-%m-%d %H:%M:%S UTC') AS t, *
                   FROM read_csv('{events_csv}', all_varchar = true))
        SELECT
            (SELECT count(*) FROM e WHERE CAST(t AS DATE) > DATE '{SNAPSHOT}') AS after_snapshot,
            (SELECT count(*) FROM (SELECT user_session FROM e WHERE user_session IS NOT NULL
                                   GROUP BY user_session HAVING count(DISTINCT CAST(t AS DATE)) > 1)) AS midnight_sessions,
            (SELECT count(*) FROM e WHERE event_type = 'remove_from_cart') AS removals,
            (SELECT count(*) FROM e WHERE user_session IS NULL) AS without_session
        """
    ).fetchall()  # DuckDB 2 relations have no fetchone()
    assert all(count > 0 for count in counts), counts


def _spark_rows(spark, csv_path) -> list[dict]:
    profiles = build_profiles(read_events_csv(spark, str(csv_path)), SNAPSHOT)
    assert profiles.schema == PROFILE_SCHEMA
    # Timestamps compared as epoch microseconds: collect() would turn them into local-time datetimes.
    as_plain = [F.unix_micros(f.name).alias(f.name) if f.type == "timestamp" else F.col(f.name) for f in PROFILE_FIELDS]
    return [row.asDict() for row in profiles.select(*as_plain).orderBy("user_id").collect()]


def test_spark_profiles_equal_the_duckdb_reference(spark, events_csv):
    spark_rows = _spark_rows(spark, events_csv)
    reference_rows = reference_rows_of(events_csv, SNAPSHOT)

    assert len(spark_rows) == len(reference_rows) > 10_000
    assert [r["user_id"] for r in spark_rows] == [r["user_id"] for r in reference_rows]

    mismatches = [
        (ours["user_id"], f.name, ours[f.name], theirs[f.name])
        for ours, theirs in zip(spark_rows, reference_rows)
        for f in PROFILE_FIELDS
        if not same_value(ours[f.name], theirs[f.name])
    ]
    assert not mismatches, f"{len(mismatches)} differences (user, field, spark, duckdb), first: {mismatches[:20]}"

    # The comparison covered the interesting values, not only defaults.
    segments = {r["rfm_segment"] for r in spark_rows}
    assert {"Champions", "Loyal", "At risk", "New", "Hibernating", "Browsers", "Cart abandoners"} <= segments
    assert any(r["top_category"] is None for r in spark_rows) and any(r["remove_from_carts"] for r in spark_rows)
