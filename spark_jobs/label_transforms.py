"""Point-in-time training sets: features as of a snapshot date S, labels from events after S.

Small, pure DataFrame -> DataFrame functions (no I/O, no Python UDFs); the Spark job
spark_jobs/training_set.py wires them to the lake.

The rule (docs/profiles.md, "Training sets (point in time)"):

* **features** are ``build_profiles`` over the events whose UTC date is on or before S, and only
  those: ``point_in_time_training_set`` filters the events before build_profiles sees them, so
  an event after S cannot reach a feature even if build_profiles' own cut-off changed;
* **labels** use only events whose UTC date is in ``[S + 1, S + n]`` for an n-day horizon, i.e.
  ``event_time`` in ``(end of S, end of S + n]``: 23:59:59 on S is a feature event, 00:00:00
  on S + 1 is the first label event, the whole of day S + n counts, S + n + 1 does not;
* exact duplicate events count once on both sides, as in the profiles;
* the population is the profiles' (users with an event on or before S); users without an event
  in a window get ``False`` / ``0.0``. Users first seen after S are not in the set.
"""

from __future__ import annotations

import datetime as dt
import re

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ecommerce_profiles.core.schemas import EVENT_COLUMNS, PROFILE_COLUMNS
from ecommerce_profiles.core.training_window import (
    LabelHorizons,
    as_date,
    label_window_end,
    purchased_column,
    revenue_column,
)
from spark_jobs.profile_transforms import (
    EVENT_DATE,
    MONEY,
    build_profiles,
    events_up_to,
    with_event_date,
)

LABEL_WINDOW_END = "label_window_end"
SNAPSHOT_DATE = "snapshot_date"
_PURCHASED = re.compile(r"^purchased_within_(\d+)d$")
_REVENUE = re.compile(r"^revenue_within_(\d+)d$")


def _event_date_between(first: dt.date, last: dt.date) -> Column:
    return (F.col(EVENT_DATE) >= F.lit(first)) & (F.col(EVENT_DATE) <= F.lit(last))


def training_labels(
    events: DataFrame, snapshot_date: dt.date | str, horizons: LabelHorizons = LabelHorizons()
) -> DataFrame:
    """One row per user with an event in (S, S + max horizon]: ``user_id`` and the labels.

    ``purchased_within_{n}d`` (boolean): at least one purchase event dated S + 1 ... S + n (UTC).
    ``revenue_within_{n}d`` (double): the sum of those purchases' prices, added exactly as
    DECIMAL(18,2) like the profile's ``revenue``; 0.0 without purchases in the window.

    Only events in the window are read: nothing on or before S can change a label. The UTC date
    is recomputed from ``event_time`` (an ``event_date`` column of the input is not trusted).
    Exact duplicate events count once. ``training_set`` fills the users this leaves out.
    """
    snapshot = as_date(snapshot_date)
    first = snapshot + dt.timedelta(days=1)
    later = (
        events.select(*EVENT_COLUMNS)
        .transform(with_event_date)
        .where(_event_date_between(first, label_window_end(snapshot, horizons)))
        .dropDuplicates()
    )
    is_purchase = F.col("event_type") == "purchase"
    labels = []
    for n in horizons.purchase_days:
        in_window = is_purchase & (F.col(EVENT_DATE) <= F.lit(snapshot + dt.timedelta(days=n)))
        labels.append((F.count(F.when(in_window, 1)) > 0).alias(purchased_column(n)))
    for n in horizons.revenue_days:
        in_window = is_purchase & (F.col(EVENT_DATE) <= F.lit(snapshot + dt.timedelta(days=n)))
        amount = F.sum(F.when(in_window, F.col("price").cast(MONEY)))
        labels.append(F.coalesce(amount.cast("double"), F.lit(0.0)).alias(revenue_column(n)))
    return later.groupBy("user_id").agg(*labels)


def _horizon_of(pattern: re.Pattern[str], column: str) -> int:
    """n of a label column named by ``pattern`` (purchased_within_<n>d / revenue_within_<n>d)."""
    match = pattern.match(column)
    if match is None:
        raise ValueError(f"{column!r} is not a label column")
    return int(match.group(1))


def _label_horizons_of(labels: DataFrame) -> tuple[list[str], list[str], int]:
    purchased = sorted((c for c in labels.columns if _PURCHASED.match(c)), key=lambda c: _horizon_of(_PURCHASED, c))
    revenue = sorted((c for c in labels.columns if _REVENUE.match(c)), key=lambda c: _horizon_of(_REVENUE, c))
    if not purchased and not revenue:
        raise ValueError(f"no label columns (purchased_within_<n>d / revenue_within_<n>d) in {labels.columns}")
    days = [_horizon_of(pattern, c) for pattern, group in ((_PURCHASED, purchased), (_REVENUE, revenue)) for c in group]
    return purchased, revenue, max(days)


def training_set(profiles_as_of_s: DataFrame, labels: DataFrame) -> DataFrame:
    """Every profile as of S (all PROFILE_COLUMNS, ``snapshot_date`` = S) with its labels and
    ``label_window_end`` (S + the longest horizon among the label columns).

    A left join from the profiles: every profiled user is a row; one without events in a
    window gets ``False`` / ``0.0``. Label rows of users without a profile (first seen after S)
    are dropped. ``labels`` must have been computed for the same S (``training_labels``);
    ``point_in_time_training_set`` does both from one events DataFrame. No column is nullable
    except the profile features that are nullable by definition.
    """
    purchased, revenue, longest = _label_horizons_of(labels)
    joined = profiles_as_of_s.select(*PROFILE_COLUMNS).join(
        labels.select("user_id", *purchased, *revenue), "user_id", "left"
    )
    return joined.select(
        *PROFILE_COLUMNS,
        *(F.coalesce(F.col(c), F.lit(False)).alias(c) for c in purchased),
        *(F.coalesce(F.col(c), F.lit(0.0)).alias(c) for c in revenue),
        F.date_add(F.col(SNAPSHOT_DATE), longest).alias(LABEL_WINDOW_END),
    )


def point_in_time_training_set(
    events: DataFrame, snapshot_date: dt.date | str, horizons: LabelHorizons = LabelHorizons()
) -> DataFrame:
    """Features from events on or before S only, labels from (S, S + horizon] only, joined.

    ``events`` are typed events (EVENT_COLUMNS; extra columns such as the archive's event_date
    are ignored). They are read three times (features, RFM ranks, labels): cache them when they
    are expensive to recompute.
    """
    snapshot = as_date(snapshot_date)
    features = build_profiles(events_up_to(events.select(*EVENT_COLUMNS), snapshot), snapshot)
    return training_set(features, training_labels(events, snapshot, horizons))


def training_set_columns(horizons: LabelHorizons = LabelHorizons()) -> list[str]:
    """The columns of a training set, in order."""
    return [*PROFILE_COLUMNS, *horizons.label_columns, LABEL_WINDOW_END]
