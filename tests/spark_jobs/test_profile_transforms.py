"""Customer-profile transforms on small hand-computed cases (one local SparkSession, see conftest).

Every expected value below is worked out by hand from docs/profiles.md; the comments show the sums.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import numpy as np
import pytest
from pyspark.sql import Row
from pyspark.sql import functions as F

# pyspark 3.5's pyspark.testing imports pyspark.pandas, which still uses np.NaN (removed in NumPy 2;
# Spark 3.5 supports NumPy < 2 only, SPARK-48710), while pyarrow 26 requires NumPy >= 2. The alias
# is all pyspark.pandas needs to import; nothing here uses the pandas API.
if not hasattr(np, "NaN"):
    np.NaN = np.nan
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")  # else pyspark.pandas warns on import
from pyspark.testing import assertDataFrameEqual, assertSchemaEqual  # noqa: E402

from ecommerce_profiles.core.schemas import EVENT_COLUMNS, PROFILE_COLUMNS, profile_docs_table  # noqa: E402
from spark_jobs.profile_transforms import (  # noqa: E402
    ARCHIVE_SCHEMA,
    EVENT_SCHEMA,
    IS_VALID,
    PROFILE_SCHEMA,
    build_profiles,
    collapse_duplicates,
    counts_by_date,
    dedupe_events,
    events_up_to,
    parse_kafka_events,
    parse_kafka_records,
    read_events_csv,
    valid_events,
    with_event_date,
)

UTC = dt.UTC
SNAPSHOT = dt.date(2020, 10, 10)  # a Saturday


def at(text: str) -> dt.datetime:
    """An aware UTC datetime, so Spark stores the intended instant whatever the local zone."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def event(time, event_type, product_id, category_code=None, brand=None, price=0.0, user_id=1, session=None):
    row = (at(time), event_type, product_id, 2000 + product_id % 7, category_code, brand, price, user_id, session)
    return dict(zip(EVENT_COLUMNS, row))


def events_df(spark, rows):
    return spark.createDataFrame([Row(**r) for r in rows], EVENT_SCHEMA)


def profile(**values):
    missing = set(PROFILE_COLUMNS) - set(values)
    assert not missing, f"expected profile lacks {sorted(missing)}"
    return Row(**{name: values[name] for name in PROFILE_COLUMNS})


PHONE, NOTEBOOK = "electronics.smartphone", "computers.notebook"

# User 1: two sessions (s2 spans midnight), a duplicate row, a zero-price purchase, a removal,
# ties in hour and weekday, and an event after the snapshot.
USER_1 = [
    event("2020-10-05 09:00:00", "view", 101, PHONE, "apple", 500.0, 1, "s1"),
    event("2020-10-05 09:00:00", "view", 101, PHONE, "apple", 500.0, 1, "s1"),  # exact duplicate
    event("2020-10-05 09:05:00", "cart", 101, PHONE, "apple", 500.0, 1, "s1"),
    event("2020-10-05 09:10:00", "purchase", 101, PHONE, "apple", 500.0, 1, "s1"),
    event("2020-10-09 23:50:00", "view", 202, NOTEBOOK, "lenovo", 300.0, 1, "s2"),
    event("2020-10-10 00:10:00", "view", 203, NOTEBOOK, "asus", 0.0, 1, "s2"),
    event("2020-10-10 00:20:00", "purchase", 203, NOTEBOOK, "asus", 0.0, 1, "s2"),
    event("2020-10-10 00:25:00", "remove_from_cart", 202, NOTEBOOK, "lenovo", 300.0, 1, "s2"),
    event("2020-10-11 00:00:00", "purchase", 999, PHONE, "apple", 900.0, 1, "s3"),  # after the snapshot
]
# User 2: views only, never a category or a brand.
USER_2 = [
    event("2020-10-01 12:00:00", "view", 301, None, None, 10.0, 2, "s4"),
    event("2020-10-01 12:00:30", "view", 302, None, None, 20.0, 2, "s4"),
]
# User 3: only events after the snapshot, so no profile.
USER_3 = [event("2020-10-11 10:00:00", "view", 401, PHONE, "apple", 100.0, 3, "s5")]
# User 4: no session at all; a cart and its removal, category without brand.
USER_4 = [
    event("2020-10-03 18:00:00", "cart", 501, "kids.toys", None, 5.0, 4, None),
    event("2020-10-03 18:30:00", "remove_from_cart", 501, "kids.toys", None, 5.0, 4, None),
]
# User 5: one removal in the snapshot's last second (weight 0: no top category), one event after.
USER_5 = [
    event("2020-10-10 23:59:59", "remove_from_cart", 601, "sport.bicycle", "trek", 100.0, 5, "s6"),
    event("2020-10-11 00:00:00", "view", 601, "sport.bicycle", "trek", 100.0, 5, "s6"),
]

NO_PURCHASE = dict(
    revenue=0.0,
    avg_order_value=None,
    max_purchase_price=None,
    distinct_products_purchased=0,
    days_since_last_purchase=None,
    r_score=0,
    f_score=0,
    m_score=0,
)

EXPECTED = [
    profile(
        user_id=1,
        snapshot_date=SNAPSHOT,
        first_seen=at("2020-10-05 09:00:00"),
        last_seen=at("2020-10-10 00:25:00"),
        tenure_days=5,
        recency_days=0,
        active_days=3,  # 10-05, 10-09, 10-10
        sessions=2,
        events=7,
        events_per_session=3.5,
        avg_session_seconds=1350.0,  # s1: 600 s, s2: 23:50 -> 00:25 = 2100 s
        views=3,
        carts=1,
        purchases=2,
        remove_from_carts=1,
        view_to_cart_rate=1 / 3,
        cart_to_purchase_rate=2.0,
        view_to_purchase_rate=2 / 3,
        cart_abandonment_rate=0.0,  # max(1 - 2, 0) / 1
        revenue=500.0,
        avg_order_value=250.0,
        max_purchase_price=500.0,
        distinct_products_purchased=2,
        avg_viewed_price=800 / 3,  # (500 + 300 + 0) / 3
        days_since_last_purchase=0,
        r_score=1,
        f_score=1,
        m_score=1,  # the only purchaser: rank 1 of 1
        rfm_segment="Hibernating",
        # phone: view 1 + cart 3 + purchase 5 = 9; notebook: 1 + 1 + 5 + 0 = 7
        top_category=PHONE,
        top_category_share=9 / 16,
        # apple 9, asus 1 + 5 = 6, lenovo 1 + 0 = 1
        top_brand="apple",
        top_brand_share=9 / 16,
        distinct_categories=2,
        distinct_brands=3,
        preferred_hour=0,  # 3 events at 09 and 3 at 00: the earliest hour wins
        preferred_weekday=1,  # 3 on Monday 10-05, 3 on Saturday 10-10: the lowest wins
    ),
    profile(
        user_id=2,
        snapshot_date=SNAPSHOT,
        first_seen=at("2020-10-01 12:00:00"),
        last_seen=at("2020-10-01 12:00:30"),
        tenure_days=9,
        recency_days=9,
        active_days=1,
        sessions=1,
        events=2,
        events_per_session=2.0,
        avg_session_seconds=30.0,
        views=2,
        carts=0,
        purchases=0,
        remove_from_carts=0,
        view_to_cart_rate=0.0,
        cart_to_purchase_rate=None,
        view_to_purchase_rate=0.0,
        cart_abandonment_rate=None,
        avg_viewed_price=15.0,
        rfm_segment="Browsers",
        top_category=None,
        top_category_share=None,
        top_brand=None,
        top_brand_share=None,
        distinct_categories=0,
        distinct_brands=0,
        preferred_hour=12,
        preferred_weekday=4,  # Thursday
        **NO_PURCHASE,
    ),
    profile(
        user_id=4,
        snapshot_date=SNAPSHOT,
        first_seen=at("2020-10-03 18:00:00"),
        last_seen=at("2020-10-03 18:30:00"),
        tenure_days=7,
        recency_days=7,
        active_days=1,
        sessions=0,
        events=2,
        events_per_session=None,
        avg_session_seconds=None,
        views=0,
        carts=1,
        purchases=0,
        remove_from_carts=1,
        view_to_cart_rate=None,
        cart_to_purchase_rate=0.0,
        view_to_purchase_rate=None,
        cart_abandonment_rate=1.0,
        avg_viewed_price=None,
        rfm_segment="Cart abandoners",
        top_category="kids.toys",
        top_category_share=1.0,
        top_brand=None,
        top_brand_share=None,
        distinct_categories=1,
        distinct_brands=0,
        preferred_hour=18,
        preferred_weekday=6,
        **NO_PURCHASE,
    ),
    profile(
        user_id=5,
        snapshot_date=SNAPSHOT,
        first_seen=at("2020-10-10 23:59:59"),
        last_seen=at("2020-10-10 23:59:59"),
        tenure_days=0,
        recency_days=0,
        active_days=1,
        sessions=1,
        events=1,
        events_per_session=1.0,
        avg_session_seconds=0.0,
        views=0,
        carts=0,
        purchases=0,
        remove_from_carts=1,
        view_to_cart_rate=None,
        cart_to_purchase_rate=None,
        view_to_purchase_rate=None,
        cart_abandonment_rate=None,
        avg_viewed_price=None,
        rfm_segment="Browsers",
        top_category=None,
        top_category_share=None,
        top_brand=None,
        top_brand_share=None,
        distinct_categories=1,
        distinct_brands=1,
        preferred_hour=23,
        preferred_weekday=6,
        **NO_PURCHASE,
    ),
]


@pytest.fixture(scope="module")
def sample_events(spark):
    return events_df(spark, USER_1 + USER_2 + USER_3 + USER_4 + USER_5)


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------
KAFKA_VALUES = [
    {
        "event_time": "2020-09-24T11:57:06Z",
        "event_type": "view",
        "product_id": 1996170,
        "category_id": 2144415922528452715,
        "category_code": "electronics.telephone",
        "brand": "",
        "price": 31.9,
        "user_id": 1515915625519388267,
        "user_session": "LJuJVLEjPT",
    },
    {
        "event_time": "2020-09-24T23:59:59Z",
        "event_type": "purchase",
        "product_id": 139905,
        "category_id": 2144415926932472027,
        "category_code": "",
        "brand": "samsung",
        "price": 0,
        "user_id": 1515915625353230683,
        "user_session": "",
    },
]
TYPED_EVENTS = [
    Row(
        event_time=at("2020-09-24 11:57:06"),
        event_type="view",
        product_id=1996170,
        category_id=2144415922528452715,
        category_code="electronics.telephone",
        brand=None,
        price=31.9,
        user_id=1515915625519388267,
        user_session="LJuJVLEjPT",
    ),
    Row(
        event_time=at("2020-09-24 23:59:59"),
        event_type="purchase",
        product_id=139905,
        category_id=2144415926932472027,
        category_code=None,
        brand="samsung",
        price=0.0,
        user_id=1515915625353230683,
        user_session=None,
    ),
]


def kafka_batch(spark, values: list[bytes]):
    rows = [(b"key", value, "topic", 0, offset) for offset, value in enumerate(values)]
    return spark.createDataFrame(rows, "key binary, value binary, topic string, partition int, offset long")


def test_parse_kafka_events_types_and_cleans_values(spark):
    unusable = [
        json.dumps({**KAFKA_VALUES[0], "event_time": "2020-09-24T11:57:06"}).encode(),  # no zone
        json.dumps({k: v for k, v in KAFKA_VALUES[0].items() if k != "user_id"}).encode(),
        b"not json",
    ]
    parsed = parse_kafka_events(kafka_batch(spark, [json.dumps(v).encode() for v in KAFKA_VALUES] + unusable))

    assert parsed.schema == EVENT_SCHEMA  # nullability included
    assertDataFrameEqual(parsed, spark.createDataFrame(TYPED_EVENTS, EVENT_SCHEMA))


def test_collapse_duplicates_counts_every_record_once(spark):
    """Records -> distinct rows with copies; the per-date counts add up to the input."""
    values = [json.dumps(v).encode() for v in KAFKA_VALUES]
    batch = values + values[:1] + values[:1] + [b"not json", b"not json", b"{}"]
    collapsed = collapse_duplicates(parse_kafka_records(kafka_batch(spark, batch)))

    counts = {(r.event_date, r[IS_VALID]): (r.records, r.distinct_records) for r in counts_by_date(collapsed).collect()}
    assert sum(records for records, _ in counts.values()) == len(batch)
    invalid = [v for (_, valid), v in counts.items() if not valid]
    assert sum(records for records, _ in invalid) == 3  # counted, never archived
    valid_records = sum(records for (_, ok), (records, _) in counts.items() if ok)
    assert valid_records == len(KAFKA_VALUES) + 2
    events = valid_events(collapsed, ARCHIVE_SCHEMA)
    assert events.schema == ARCHIVE_SCHEMA
    assertDataFrameEqual(events.drop("event_date"), spark.createDataFrame(TYPED_EVENTS, EVENT_SCHEMA))
    assert {r.event_date for r in events.collect()} == {d for (d, ok) in counts if ok}


def test_read_events_csv_gives_what_kafka_gives(spark, tmp_path):
    csv = tmp_path / "events.csv"
    lines = [",".join(EVENT_COLUMNS)]
    for value in KAFKA_VALUES:
        stamp = value["event_time"].replace("T", " ").replace("Z", " UTC")
        lines.append(",".join(str(value[c]) if c != "event_time" else stamp for c in EVENT_COLUMNS))
    csv.write_text("\n".join(lines) + "\n")

    from_csv = read_events_csv(spark, str(csv))
    from_kafka = parse_kafka_events(kafka_batch(spark, [json.dumps(v).encode() for v in KAFKA_VALUES]))

    assert from_csv.schema == EVENT_SCHEMA
    assertDataFrameEqual(from_csv, from_kafka)


def test_dedupe_keeps_one_copy_of_exact_duplicates_only(spark):
    rows = USER_1[:2] + [{**USER_1[0], "price": 499.0}]  # same event, other price: not a duplicate
    assert dedupe_events(events_df(spark, rows)).count() == 2


def test_events_up_to_keeps_the_whole_snapshot_day(spark, sample_events):
    kept = events_up_to(sample_events, SNAPSHOT).select(F.max("event_time")).first()[0]
    assert kept.replace(tzinfo=None) == dt.datetime(2020, 10, 10, 23, 59, 59)  # user 5's last second
    assert events_up_to(sample_events, "2020-10-10").count() == events_up_to(sample_events, SNAPSHOT).count() == 13


def test_event_date_is_the_utc_date_in_any_session_time_zone(spark):
    events = events_df(spark, [event("2020-10-10 02:00:00", "view", 1), event("2020-10-10 23:30:00", "view", 2)])
    previous = spark.conf.get("spark.sql.session.timeZone")
    try:
        for zone in ("UTC", "America/Los_Angeles", "Asia/Kolkata"):
            spark.conf.set("spark.sql.session.timeZone", zone)
            dates = {r.event_date for r in with_event_date(events).collect()}
            assert dates == {dt.date(2020, 10, 10)}, zone
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous)


# ---------------------------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def profiles(sample_events):
    return build_profiles(sample_events, SNAPSHOT)


def test_profiles_have_exactly_the_contract_schema(profiles):
    assertSchemaEqual(profiles.schema, PROFILE_SCHEMA)
    assert profiles.schema == PROFILE_SCHEMA  # assertSchemaEqual ignores nullability


def test_profiles_match_hand_computed_values(spark, profiles):
    assertDataFrameEqual(profiles, spark.createDataFrame(EXPECTED, PROFILE_SCHEMA), rtol=1e-12, atol=0.0)


def test_profiles_use_no_python_udfs(profiles):
    # The Compose Spark workers run without this project's Python code.
    plan = profiles._jdf.queryExecution().executedPlan().toString()
    assert "EvalPython" not in plan and "PythonUDF" not in plan


def test_profiles_ignore_session_time_zone_extra_columns_and_input_order(spark, sample_events):
    reordered = with_event_date(sample_events).orderBy(F.col("event_time").desc())
    previous = spark.conf.get("spark.sql.session.timeZone")
    try:
        spark.conf.set("spark.sql.session.timeZone", "Pacific/Auckland")
        in_auckland = build_profiles(reordered, SNAPSHOT).collect()
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous)
    assertDataFrameEqual(in_auckland, spark.createDataFrame(EXPECTED, PROFILE_SCHEMA), rtol=1e-12, atol=0.0)


def test_tie_on_weight_goes_to_the_alphabetically_first_value(spark):
    rows = [
        event("2020-10-01 10:00:00", "view", 1, "b.second", "zeta", 1.0, 9, "s"),
        event("2020-10-01 10:01:00", "view", 2, "a.first", "alpha", 1.0, 9, "s"),
        event("2020-10-01 10:02:00", "remove_from_cart", 3, "0.removed", "0removed", 1.0, 9, "s"),
    ]
    top = build_profiles(events_df(spark, rows), SNAPSHOT).select(
        "top_category", "top_category_share", "top_brand", "distinct_categories", "distinct_brands"
    )
    assertDataFrameEqual(
        top,
        [
            Row(
                top_category="a.first",
                top_category_share=0.5,
                top_brand="alpha",
                distinct_categories=3,
                distinct_brands=3,
            )
        ],
    )


# RFM on eleven purchasers. n = 11, score = 1 + floor(5 * (rank - 1) / 11): ranks 1-3 -> 1,
# 4-5 -> 2, 6-7 -> 3, 8-9 -> 4, 10-11 -> 5; tied values share the lowest rank.
RFM_SNAPSHOT = dt.date(2020, 10, 31)
# user: (days since last purchase, purchase prices oldest first)
PURCHASERS = {
    1: (0, [10.0]),
    2: (0, [20.0]),
    3: (1, [30.0]),
    4: (2, [40.0, 45.0]),
    5: (3, [25.0, 25.0]),
    6: (5, [50.0]),
    7: (8, [20.0, 20.0, 30.0]),
    8: (13, [80.0]),
    9: (21, [90.0]),
    10: (30, [25.0, 25.0, 25.0, 25.0]),
    11: (40, [15.0]),
}
# R by days, most days first: 11, 10, 9 | 8, 7 | 6, 5 | 4, 3 | 1 and 2 (tied at rank 10).
# F by purchases: seven single buyers tie at rank 1; 4 and 5 (2) rank 8; 7 (3) 10; 10 (4) 11.
# M by revenue: 1 (10), 11 (15), 2 (20) | 3 (30), 5 and 6 (50, rank 5) | 7 (70) | 8 (80), 4 (85) | 9, 10.
EXPECTED_RFM = {
    1: (5, 1, 1, "New"),
    2: (5, 1, 1, "New"),
    3: (4, 1, 2, "New"),
    4: (4, 4, 4, "Champions"),
    5: (3, 4, 2, "Loyal"),
    6: (3, 1, 2, "Need attention"),
    7: (2, 5, 3, "At risk"),
    8: (2, 1, 4, "At risk"),
    9: (1, 1, 5, "At risk"),
    10: (1, 5, 5, "At risk"),
    11: (1, 1, 1, "Hibernating"),
    12: (0, 0, 0, "Browsers"),
    13: (0, 0, 0, "Cart abandoners"),
}


def test_rfm_quintiles_and_segments(spark):
    rows = []
    for user, (days, prices) in PURCHASERS.items():
        last = RFM_SNAPSHOT - dt.timedelta(days=days)
        for i, price in enumerate(prices):
            day = last - dt.timedelta(days=len(prices) - 1 - i)
            rows.append(event(f"{day} 12:00:00", "purchase", 100 + i, "kids.toys", "lego", price, user, f"u{user}"))
    rows.append(event("2020-10-30 12:00:00", "view", 1, None, None, 1.0, 12, "u12"))
    rows.append(event("2020-10-30 12:00:00", "cart", 1, None, None, 1.0, 13, "u13"))

    scores = build_profiles(events_df(spark, rows), RFM_SNAPSHOT).select(
        "user_id", "days_since_last_purchase", "r_score", "f_score", "m_score", "rfm_segment"
    )
    expected = [
        Row(
            user_id=user,
            days_since_last_purchase=PURCHASERS[user][0] if user in PURCHASERS else None,
            r_score=r,
            f_score=f,
            m_score=m,
            rfm_segment=segment,
        )
        for user, (r, f, m, segment) in EXPECTED_RFM.items()
    ]
    assertDataFrameEqual(scores, expected)


# ---------------------------------------------------------------------------------------------
# Generated contract files
# ---------------------------------------------------------------------------------------------
def test_committed_elasticsearch_mapping_is_current():
    from ecommerce_profiles.core.schemas import ES_MAPPING_PATH, es_mapping

    assert json.loads(ES_MAPPING_PATH.read_text()) == es_mapping(), "run: python -m ecommerce_profiles.core.schemas"


def test_profiles_doc_holds_the_generated_field_table(project_root):
    from ecommerce_profiles.core.schemas import PROFILE_DOCS_PATH, docs_with_field_table

    text = (project_root / "docs" / "profiles.md").read_text()
    assert PROFILE_DOCS_PATH == project_root / "docs" / "profiles.md"
    assert profile_docs_table() in text
    assert docs_with_field_table(text) == text, "run: python -m ecommerce_profiles.core.schemas"


# ---------------------------------------------------------------------------------------------
# Incremental profiles: an earlier snapshot carried forward equals a full rebuild
# ---------------------------------------------------------------------------------------------
def test_incremental_profiles_equal_a_full_rebuild(spark, tmp_path):
    """Generated events over ten days with few users (so many return): the snapshot of day 6
    built from what the archive held then, carried forward to day 9 with the run's late events
    of earlier days and the archive's later days, is the full rebuild of day 9, column for column."""
    from bench.generator import write_events_csv
    from spark_jobs.profile_transforms import changed_users, incremental_profiles

    csv = tmp_path / "events.csv"
    write_events_csv(csv, 4_000, seed=5, start="2020-10-01", end="2020-10-10", n_users=300, duplicate_rate=0)
    archive = with_event_date(dedupe_events(read_events_csv(spark, str(csv)))).cache()
    previous, snapshot = dt.date(2020, 10, 6), dt.date(2020, 10, 9)
    # The run delivers the events of one in seven users late: dated up to the previous snapshot,
    # but not in the archive when that snapshot was built.
    late = archive.where((F.col("event_date") <= F.lit(previous)) & (F.col("user_id") % 7 == 0))
    archived_then = archive.subtract(late)
    run_events = late.unionByName(archive.where(F.col("event_date") == F.lit(snapshot)))
    assert late.count() > 0 and archive.where(F.col("event_date") > F.lit(snapshot)).count() > 0

    previous_profiles = build_profiles(archived_then, previous).cache()
    profile_events = events_up_to(archive, snapshot)
    changed = changed_users(profile_events, run_events, previous)
    history = profile_events.join(changed, "user_id", "left_semi")
    incremental = incremental_profiles(previous_profiles, previous, history, snapshot)

    full = build_profiles(archive, snapshot)
    untouched = previous_profiles.join(changed, "user_id", "left_anti").count()
    assert 0 < untouched < previous_profiles.count()  # both paths of the merge are exercised
    assert full.where(F.col("purchases") > 0).select("m_score").distinct().count() == 5
    assertSchemaEqual(incremental.schema, PROFILE_SCHEMA)
    assertDataFrameEqual(incremental, full, rtol=1e-12)


def test_changed_users_are_those_with_later_events_or_late_ones(spark):
    from spark_jobs.profile_transforms import changed_users

    rows = [
        event("2020-10-01 10:00:00", "view", 1, user_id=1),  # only before: unchanged
        event("2020-10-03 10:00:00", "view", 2, user_id=2),  # after the previous snapshot
        event("2020-10-01 11:00:00", "view", 3, user_id=3),
    ]  # before, but delivered late by this run
    archive = with_event_date(events_df(spark, rows))
    run_events = archive.where(F.col("user_id") == 3)
    changed = changed_users(archive, run_events, dt.date(2020, 10, 2))
    assert sorted(r.user_id for r in changed.collect()) == [2, 3]
