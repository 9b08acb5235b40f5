"""Point-in-time training sets on small hand-worked cases (the shared local SparkSession).

The snapshot date S is 2020-10-10. Events after S are *planted* so that each would change a
feature if it leaked into the profile (purchases, revenue, recency, last_seen, the RFM ranks of
everybody) and sits on a label boundary: S 23:59:59 (feature) vs S+1 00:00:00 (label), the last
second of S+7 (in the 7-day window) vs S+8 00:00:00 (out), the last second of S+30 vs S+31.
Expected values are worked out by hand in the comments.
"""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import Row
from pyspark.sql import functions as F

from ecommerce_profiles.core.schemas import EVENT_COLUMNS, PROFILE_COLUMNS
from spark_jobs.label_transforms import (
    LABEL_WINDOW_END,
    LabelHorizons,
    label_window_end,
    point_in_time_training_set,
    training_labels,
    training_set,
    training_set_columns,
)
from spark_jobs.profile_transforms import EVENT_SCHEMA, build_profiles

UTC = dt.UTC
S = dt.date(2020, 10, 10)
HORIZONS = LabelHorizons(purchase_days=(1, 7), revenue_days=(7, 30))


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def event(time, event_type, product_id, price, user_id, session=None):
    row = (
        at(time),
        event_type,
        product_id,
        2000 + product_id % 7,
        "electronics.audio",
        "sony",
        price,
        user_id,
        session,
    )
    return dict(zip(EVENT_COLUMNS, row))


FEATURE_EVENTS = [  # UTC date <= S
    # user 1: a purchase of 100.00 on S-5, the last second of S is a view
    event("2020-10-01 10:00:00", "view", 11, 100.0, 1, "a1"),
    event("2020-10-05 12:00:00", "purchase", 11, 100.0, 1, "a2"),
    event("2020-10-10 23:59:59", "view", 12, 30.0, 1, "a3"),
    # user 2: a cart, then a 5.00 purchase in the last second of S (a feature, not a label)
    event("2020-10-09 08:00:00", "cart", 21, 10.0, 2, "b1"),
    event("2020-10-10 23:59:59", "purchase", 22, 5.0, 2, "b1"),
    # user 3: one view, nothing later
    event("2020-10-02 09:00:00", "view", 31, 15.0, 3, "c1"),
    # user 5: one view in the first second of S
    event("2020-10-10 00:00:00", "view", 51, 0.0, 5, "e1"),
]
PLANTED_EVENTS = [  # UTC date > S: each would change a feature if leaked
    # user 1: 50.00 in the first second of S+1 (twice: an exact duplicate counts once), 20.00 in the
    # last second of S+7, 7.00 at S+8 00:00:00, 3.00 in the last second of S+30, 1000.00 at S+31.
    event("2020-10-11 00:00:00", "purchase", 12, 50.0, 1, "a4"),
    event("2020-10-11 00:00:00", "purchase", 12, 50.0, 1, "a4"),
    event("2020-10-17 23:59:59", "purchase", 13, 20.0, 1, "a5"),
    event("2020-10-18 00:00:00", "purchase", 14, 7.0, 1, "a6"),
    event("2020-11-09 23:59:59", "purchase", 15, 3.0, 1, "a7"),
    event("2020-11-10 00:00:00", "purchase", 16, 1000.0, 1, "a8"),
    # user 2: 10.00 at S+8 00:00:00: outside every 7-day label, inside the 30-day one
    event("2020-10-18 00:00:00", "purchase", 21, 10.0, 2, "b2"),
    # user 4: first seen after S (a purchaser: would shift everybody's RFM ranks if leaked)
    event("2020-10-12 10:00:00", "purchase", 41, 99.0, 4, "d1"),
    # user 5: a view on S+1 and a 0.00 purchase in the last second of S+7
    event("2020-10-11 12:00:00", "view", 52, 80.0, 5, "e2"),
    event("2020-10-17 23:59:59", "purchase", 52, 0.0, 5, "e2"),
]


def events_df(spark, rows):
    return spark.createDataFrame([Row(**r) for r in rows], EVENT_SCHEMA)


@pytest.fixture(scope="module")
def all_events(spark):
    return events_df(spark, FEATURE_EVENTS + PLANTED_EVENTS).cache()


@pytest.fixture(scope="module")
def result(all_events):
    return {r["user_id"]: r.asDict() for r in point_in_time_training_set(all_events, S, HORIZONS).collect()}


# ------------------------------------------------------------------------------ no Spark --
def test_horizons_are_validated_and_normalised():
    assert LabelHorizons().purchase_days == (7,) and LabelHorizons().revenue_days == (30,)
    assert LabelHorizons(purchase_days=7, revenue_days=[30, 7, 30]).revenue_days == (7, 30)
    assert HORIZONS.max_days == 30
    assert HORIZONS.label_columns == [
        "purchased_within_1d",
        "purchased_within_7d",
        "revenue_within_7d",
        "revenue_within_30d",
    ]
    assert label_window_end("2020-10-10", LabelHorizons()) == dt.date(2020, 11, 9)
    for bad in (0, -1, 367, 1.5, True):
        with pytest.raises(ValueError):
            LabelHorizons(purchase_days=bad)
    with pytest.raises(ValueError):
        LabelHorizons(purchase_days=(), revenue_days=())


# ------------------------------------------------------------------------------ labels --
def test_labels_use_only_events_in_the_window_with_inclusive_day_boundaries(result):
    assert set(result) == {1, 2, 3, 5}  # user 4 has no event on or before S: not in the set
    labels = {u: {c: r[c] for c in HORIZONS.label_columns} for u, r in result.items()}
    assert labels[1] == {
        "purchased_within_1d": True,  # S+1 00:00:00
        "purchased_within_7d": True,
        "revenue_within_7d": 70.0,  # 50 (once) + 20 (last second of S+7)
        "revenue_within_30d": 80.0,  # 50 + 20 + 7 (S+8) + 3 (last second of S+30); not 1000 (S+31)
    }
    assert labels[2] == {
        "purchased_within_1d": False,  # the purchase in the last second of S is a feature
        "purchased_within_7d": False,  # S+8 00:00:00 is outside
        "revenue_within_7d": 0.0,
        "revenue_within_30d": 10.0,  # ... and inside 30 days; the 5.00 on S is not a label
    }
    assert labels[3] == {
        "purchased_within_1d": False,
        "purchased_within_7d": False,
        "revenue_within_7d": 0.0,
        "revenue_within_30d": 0.0,
    }  # no later events
    assert labels[5] == {
        "purchased_within_1d": False,
        "purchased_within_7d": True,  # a 0.00 purchase is a purchase
        "revenue_within_7d": 0.0,
        "revenue_within_30d": 0.0,
    }
    assert {r[LABEL_WINDOW_END] for r in result.values()} == {dt.date(2020, 11, 9)}  # S + 30
    assert {r["snapshot_date"] for r in result.values()} == {S}


def test_training_labels_alone_cover_users_with_later_events_only(all_events):
    labels = {r["user_id"]: r.asDict() for r in training_labels(all_events, S).collect()}  # default 7 / 30 days
    assert set(labels) == {1, 2, 4, 5}  # user 3 has no later event: training_set fills it
    assert labels[4] == {"user_id": 4, "purchased_within_7d": True, "revenue_within_30d": 99.0}
    assert labels[1]["revenue_within_30d"] == 80.0


# ------------------------------------------------------------------------------ leakage --
def test_events_after_the_snapshot_do_not_change_any_feature(spark, all_events, result):
    # The planted events do change features when they are allowed in (a later cut-off) ...
    leaked = {r["user_id"]: r for r in build_profiles(all_events, dt.date(2020, 11, 20)).collect()}
    assert leaked[1]["purchases"] == 6 and leaked[1]["revenue"] == 1180.0 and leaked[2]["revenue"] == 15.0
    assert 4 in leaked

    # ... but the training set's features equal profiles built without them, column for column.
    without_planted = {r["user_id"]: r.asDict() for r in build_profiles(events_df(spark, FEATURE_EVENTS), S).collect()}
    assert set(without_planted) == set(result)
    for user, expected in without_planted.items():
        assert {c: result[user][c] for c in PROFILE_COLUMNS} == expected, f"user {user} features leaked"

    # Hand-checked: user 1 as of S has one purchase of 100.00, last seen in the last second of S.
    one = result[1]
    assert (one["purchases"], one["revenue"], one["max_purchase_price"], one["avg_order_value"]) == (
        1,
        100.0,
        100.0,
        100.0,
    )
    assert (one["events"], one["views"], one["active_days"], one["tenure_days"]) == (3, 2, 3, 9)
    assert (one["recency_days"], one["days_since_last_purchase"], one["distinct_products_purchased"]) == (0, 5, 1)
    assert one["last_seen"].astimezone(UTC) == at("2020-10-10 23:59:59")  # collected as naive local time
    # RFM among S's two purchasers only (user 4 is no purchaser yet): R by days 5 vs 0, M by 100 vs 5.
    assert (one["r_score"], one["f_score"], one["m_score"]) == (1, 1, 3)
    two = result[2]
    assert (two["purchases"], two["revenue"], two["carts"], two["days_since_last_purchase"]) == (1, 5.0, 1, 0)
    assert (two["r_score"], two["f_score"], two["m_score"]) == (3, 1, 1)
    assert result[3]["purchases"] == 0 and result[3]["rfm_segment"] == "Browsers"


def test_the_set_ignores_a_wrong_event_date_column_and_the_session_time_zone(spark, all_events, result):
    # The archive's event_date partition is not trusted (dates come from event_time), and calendar
    # days are UTC whatever spark.sql.session.timeZone says.
    lying = all_events.withColumn("event_date", F.lit(S))
    previous = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "Pacific/Auckland")
    try:
        rows = point_in_time_training_set(lying, S, HORIZONS).collect()
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous)
    again = {r["user_id"]: r.asDict() for r in rows}
    assert again.keys() == result.keys()
    for user in result:
        for column in [
            *HORIZONS.label_columns,
            "purchases",
            "revenue",
            "recency_days",
            "active_days",
            LABEL_WINDOW_END,
        ]:
            assert again[user][column] == result[user][column], (user, column)


# ------------------------------------------------------------------------------ schema --
def test_schema_is_the_profile_then_labels_then_window_end_without_nullable_labels(all_events):
    df = point_in_time_training_set(all_events, S)  # defaults: 7-day purchase, 30-day revenue
    assert (
        df.columns
        == training_set_columns()
        == [*PROFILE_COLUMNS, "purchased_within_7d", "revenue_within_30d", LABEL_WINDOW_END]
    )
    fields = {f.name: f for f in df.schema.fields}
    assert fields["purchased_within_7d"].dataType.simpleString() == "boolean"
    assert fields["revenue_within_30d"].dataType.simpleString() == "double"
    assert fields[LABEL_WINDOW_END].dataType.simpleString() == "date"
    for name in ("user_id", "snapshot_date", "purchased_within_7d", "revenue_within_30d", LABEL_WINDOW_END):
        assert not fields[name].nullable, name


def test_training_set_needs_label_columns(all_events):
    profiles = build_profiles(all_events, S)
    with pytest.raises(ValueError, match="no label columns"):
        training_set(profiles, profiles.select("user_id"))
