"""Customer-profile transforms: small, pure DataFrame -> DataFrame functions.

No I/O happens here; spark_jobs/customer_profiles.py wires these functions to Kafka, MinIO and
Elasticsearch. Only built-in Spark SQL functions are used (no Python UDFs): the Compose Spark
workers run the JVM without this project's Python code.

Calendar values (event date, hour, weekday) are computed from UTC epoch seconds, so the results do
not depend on ``spark.sql.session.timeZone``. docs/profiles.md defines every feature; the DuckDB
reference in tests/reference/duckdb_profiles.py computes the same profiles independently.
"""

from __future__ import annotations

import datetime as dt
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, StringType, StructField, StructType

from ecommerce_profiles.core.schemas import EVENT_COLUMNS, EVENT_FIELDS, PROFILE_FIELDS
from spark_jobs.spark_types import spark_schema

EVENT_SCHEMA = spark_schema(EVENT_FIELDS)
PROFILE_SCHEMA = spark_schema(PROFILE_FIELDS)
EVENT_DATE = "event_date"  # the archive's partition column
# The archived rows: the events plus their UTC date.
ARCHIVE_SCHEMA = StructType([*EVENT_SCHEMA.fields, StructField(EVENT_DATE, DateType(), False)])
IS_VALID = "is_valid_event"  # parse_kafka_records: all required values present
COPIES = "copies"  # collapse_duplicates: how many identical records one row stands for

# Interaction weight per event type for top_category / top_brand. A removal is no sign of
# affinity, and an unknown event type weighs nothing either.
INTERACTION_WEIGHTS = {"view": 1, "cart": 3, "purchase": 5, "remove_from_cart": 0}
RFM_QUINTILES = 5

SECONDS_PER_DAY = 86_400
SECONDS_PER_HOUR = 3_600
MICROS_PER_SECOND = 1_000_000
# Prices are USD with two decimals; money is summed as exact decimals so that the sum (and the
# revenue ranking behind m_score) does not depend on the order rows are added in.
MONEY = "decimal(18,2)"
AMOUNT_TOTAL = "decimal(38,2)"  # a user's purchase total, exact
# The RFM inputs kept beside the activity features (activity_profiles).
LAST_PURCHASE_DATE = "last_purchase_date"
PURCHASE_AMOUNT = "purchase_amount"
# The profile fields computed from the snapshot date (with_snapshot_features); the rest describe
# the user's events alone.
SNAPSHOT_FEATURES = (
    "snapshot_date",
    "tenure_days",
    "recency_days",
    "days_since_last_purchase",
    "r_score",
    "f_score",
    "m_score",
    "rfm_segment",
)
ACTIVITY_COLUMNS = [f.name for f in PROFILE_FIELDS if f.name not in SNAPSHOT_FEATURES]

# A timestamp string is only trusted with an explicit zone (`Z`, `+hh:mm`, ` UTC`): Spark's cast
# would read a zoneless string in the session time zone.
_EXPLICIT_ZONE = r"(Z|[+-]\d\d(:?\d\d)?| UTC)$"


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------
def _parse_utc_timestamp(text: Column) -> Column:
    # to_timestamp without a pattern is a cast: it returns null for malformed text instead of
    # failing the job (a pattern makes Spark 3 raise SparkUpgradeException on some inputs).
    return F.when(text.rlike(_EXPLICIT_ZONE), F.to_timestamp(text))


def _zero(spark_type: str) -> Column:
    """A non-null literal of the type, used only to declare columns NOT NULL (see _declare)."""
    value = {"string": "", "date": dt.date(1970, 1, 1), "timestamp": dt.datetime(1970, 1, 1)}.get(spark_type, 0)
    return F.lit(value).cast(spark_type)


def _declare(df: DataFrame, schema: StructType) -> DataFrame:
    """Select the schema's columns in order, with its types and its nullability.

    Spark marks min()/max()/sum() results and columns from joins nullable even where they cannot
    be null; coalescing with a literal makes the plan's nullability match the contract, so the
    Parquet columns are REQUIRED. Callers guarantee the values are never actually null.
    """
    columns = []
    for field in schema.fields:
        column = F.col(field.name).cast(field.dataType)
        if not field.nullable and df.schema[field.name].nullable:
            column = F.coalesce(column, _zero(field.dataType.simpleString()))
        columns.append(column.alias(field.name))
    return df.select(*columns)


def _typed_events(raw: DataFrame) -> DataFrame:
    """Raw columns named like the CSV (event_time as text) -> typed, nullable columns plus
    IS_VALID: whether every required value is present."""
    raw = raw.withColumn("event_time", _parse_utc_timestamp(F.col("event_time")))
    columns = []
    for field in EVENT_SCHEMA.fields:
        column = F.col(field.name).cast(field.dataType)
        if field.nullable:  # category_code, brand, user_session: empty means unknown
            column = F.nullif(column, F.lit(""))
        columns.append(column.alias(field.name))
    typed = raw.select(*columns)
    required = [F.col(field.name).isNotNull() for field in EVENT_SCHEMA.fields if not field.nullable]
    return typed.withColumn(IS_VALID, reduce(Column.__and__, required))


def valid_events(typed: DataFrame, schema: StructType = EVENT_SCHEMA) -> DataFrame:
    """The IS_VALID rows of ``typed`` with ``schema``'s columns, types and nullability.

    Rows missing a required value cannot be profiled; the validator quarantines them before
    Kafka, so none are expected here (the job counts them as unparsed).
    """
    return _declare(typed.where(F.col(IS_VALID)), schema)


def parse_kafka_records(kafka_df: DataFrame) -> DataFrame:
    """Kafka batch rows (binary ``value`` holding one JSON event) -> one typed row per record.

    The JSON object has the CSV column names; event_time is ISO-8601 UTC (``2020-09-24T11:57:06Z``),
    ids and price are JSON numbers, empty category_code/brand/user_session strings become null.
    A record that is not such an object keeps its row, with IS_VALID false, so it can be counted.
    """
    json_schema = StructType(
        [StructField(f.name, StringType() if f.name == "event_time" else f.dataType, True) for f in EVENT_SCHEMA.fields]
    )
    parsed = kafka_df.select(F.from_json(F.col("value").cast("string"), json_schema).alias("event")).select("event.*")
    return _typed_events(parsed)


def parse_kafka_events(kafka_df: DataFrame) -> DataFrame:
    """Kafka batch rows -> typed events (EVENT_SCHEMA); unusable records are left out."""
    return valid_events(parse_kafka_records(kafka_df))


def read_events_csv(spark: SparkSession, paths: str | list[str]) -> DataFrame:
    """Events CSV file(s) (``2020-09-24 11:57:06 UTC`` times) -> the same typed events as Kafka gives.

    For tests and benchmarks; the pipeline reads events from Kafka.
    """
    as_text = StructType([StructField(name, StringType(), True) for name in EVENT_COLUMNS])
    raw = spark.read.csv(paths, header=True, schema=as_text, mode="PERMISSIVE")
    return valid_events(_typed_events(raw))


def dedupe_events(events: DataFrame) -> DataFrame:
    """Exact duplicate rows count once."""
    return events.dropDuplicates()


def _utc_date(timestamp: Column) -> Column:
    return F.date_from_unix_date(F.floor(F.unix_seconds(timestamp) / SECONDS_PER_DAY).cast("int"))


def with_event_date(events: DataFrame) -> DataFrame:
    """Add ``event_date``, the UTC date of event_time (the archive's partition column)."""
    return events.withColumn(EVENT_DATE, _utc_date(F.col("event_time")))


def collapse_duplicates(records: DataFrame) -> DataFrame:
    """Typed records (parse_kafka_records) -> one row per distinct record, with ``copies``.

    Adds event_date and clusters the rows by it, in one shuffle: the archive then writes one file
    per date, and the copy counts give every count the run reports (records, valid events,
    duplicates) without reading the input again.
    """
    dated = with_event_date(records)
    return dated.repartition(EVENT_DATE).groupBy(*dated.columns).agg(F.count(F.lit(1)).alias(COPIES))


def counts_by_date(collapsed: DataFrame) -> DataFrame:
    """Per (event_date, IS_VALID): ``records`` (every copy) and ``distinct_records``."""
    return collapsed.groupBy(EVENT_DATE, IS_VALID).agg(
        F.sum(COPIES).alias("records"), F.count(F.lit(1)).alias("distinct_records")
    )


def _as_date(snapshot_date: dt.date | str) -> dt.date:
    if isinstance(snapshot_date, dt.datetime):
        raise TypeError("snapshot_date must be a date, not a datetime")
    return snapshot_date if isinstance(snapshot_date, dt.date) else dt.date.fromisoformat(snapshot_date)


def events_up_to(events: DataFrame, snapshot_date: dt.date | str) -> DataFrame:
    """Events at or before the end of ``snapshot_date`` (UTC)."""
    return events.where(_utc_date(F.col("event_time")) <= F.lit(_as_date(snapshot_date)))


# ---------------------------------------------------------------------------------------------
# Profiles in one pass. After a single shuffle by user_id, each event is exploded into one row per
# "facet" it belongs to (its date, session, category, brand, hour, weekday, purchased product).
# Sub-totals per (user_id, facet, key) give what per-user features need -- distinct counts, session
# spans, the heaviest category -- and a second aggregation per user_id computes every feature
# family from them. Both aggregations stay inside the partitions of that one shuffle.
# ---------------------------------------------------------------------------------------------
def _is(event_type: str) -> Column:
    return F.col("event_type") == event_type


def _ratio(numerator: Column, denominator: Column) -> Column:
    """numerator / denominator as a double; null (never 0 or infinity) when the denominator is 0."""
    return F.when(denominator > 0, numerator.cast("double") / denominator)


def _prepare(events: DataFrame, snapshot_date: dt.date) -> DataFrame:
    interaction_weight = F.lit(0)
    for event_type, weight in INTERACTION_WEIGHTS.items():
        interaction_weight = F.when(_is(event_type), weight).otherwise(interaction_weight)
    return (
        events.select(*EVENT_COLUMNS)
        .transform(events_up_to, snapshot_date)
        # The one shuffle: deduplication and both aggregations below are clustered by user_id.
        .repartition("user_id")
        .transform(dedupe_events)
        .transform(with_event_date)
        .withColumns(
            {
                "event_hour": F.floor(
                    F.pmod(F.unix_seconds("event_time"), F.lit(SECONDS_PER_DAY)) / SECONDS_PER_HOUR
                ).cast("int"),
                "event_weekday": F.weekday("event_date") + 1,  # ISO: 1 = Monday ... 7 = Sunday
                "weight": interaction_weight,
                "amount": F.col("price").cast(MONEY),
            }
        )
    )


def _facet_keys() -> dict[str, Column]:
    """Facet -> the key of an event in it (a string; events with a null key are not in the facet).

    Keys sort like their values: ISO dates, zero-padded hours, weekday digits.
    """
    return {
        "date": F.col("event_date").cast("string"),  # one row per active day: sums over them are user totals
        "session": F.col("user_session"),
        "category": F.col("category_code"),
        "brand": F.col("brand"),
        "hour": F.lpad(F.col("event_hour").cast("string"), 2, "0"),
        "weekday": F.col("event_weekday").cast("string"),
        "purchased_product": F.when(_is("purchase"), F.col("product_id").cast("string")),
    }


def facet_subtotals(events: DataFrame) -> DataFrame:
    """One row per (user_id, facet, key) with the sub-totals the feature families use."""
    facet = F.explode(
        F.array(*(F.struct(F.lit(name).alias("facet"), key.alias("key")) for name, key in _facet_keys().items()))
    )
    exploded = events.select("*", facet.alias("f")).select("*", "f.facet", "f.key").where(F.col("key").isNotNull())
    return exploded.groupBy("user_id", "facet", "key").agg(
        F.count(F.lit(1)).alias("events"),
        F.sum("weight").alias("weight"),
        (F.unix_micros(F.max("event_time")) - F.unix_micros(F.min("event_time"))).alias("span_micros"),
        F.min("event_time").alias("first_time"),
        F.max("event_time").alias("last_time"),
        *(F.count(F.when(_is(kind), 1)).alias(f"{kind}_events") for kind in INTERACTION_WEIGHTS),
        F.sum(F.when(_is("purchase"), F.col("amount"))).alias("purchase_amount"),
        F.sum(F.when(_is("view"), F.col("amount"))).alias("view_amount"),
        F.max(F.when(_is("purchase"), F.col("price"))).alias("max_purchase_price"),
    )


def _in(facet: str, value: Column | str) -> Column:
    """``value`` on one facet's sub-total rows, null elsewhere (aggregates skip nulls)."""
    return F.when(F.col("facet") == facet, F.col(value) if isinstance(value, str) else value)


def _total(column: str) -> Column:
    """Per-user total of a sub-total column (summed over the user's date rows)."""
    return F.sum(_in("date", column))


def _heaviest(facet: str, weight: str) -> Column:
    """Aggregate: struct(negative_weight, key) of the facet key with the largest positive weight.

    min over (-weight, key) picks the heaviest and, on ties, the smallest key.
    """
    entry = F.struct((-F.col(weight)).alias("negative_weight"), F.col("key").alias("key"))
    return F.min(_in(facet, F.when(F.col(weight) > 0, entry)))


# Feature families: each returns aggregate expressions over one user's facet sub-totals. None of
# them depends on the snapshot date (with_snapshot_features adds those), so an earlier snapshot's
# row of a user without new events can be carried forward (incremental_profiles).
def time_features() -> list[Column]:
    return [
        F.min(_in("date", "first_time")).alias("first_seen"),
        F.max(_in("date", "last_time")).alias("last_seen"),
        F.count(_in("date", F.lit(1))).alias("active_days"),
    ]


def session_features() -> list[Column]:
    sessions = F.count(_in("session", F.lit(1)))
    return [
        sessions.alias("sessions"),
        _total("events").alias("events"),
        _ratio(_total("events"), sessions).alias("events_per_session"),
        _ratio(F.sum(_in("session", "span_micros")) / MICROS_PER_SECOND, sessions).alias("avg_session_seconds"),
    ]


def funnel_features() -> list[Column]:
    views, carts = _total("view_events"), _total("cart_events")
    purchases, removals = _total("purchase_events"), _total("remove_from_cart_events")
    return [
        views.alias("views"),
        carts.alias("carts"),
        purchases.alias("purchases"),
        removals.alias("remove_from_carts"),
        _ratio(carts, views).alias("view_to_cart_rate"),
        _ratio(purchases, carts).alias("cart_to_purchase_rate"),
        _ratio(purchases, views).alias("view_to_purchase_rate"),
        _ratio(F.greatest(carts - purchases, F.lit(0)), carts).alias("cart_abandonment_rate"),
    ]


def money_features() -> list[Column]:
    purchase_amount = _total("purchase_amount").cast("double")
    return [
        F.coalesce(purchase_amount, F.lit(0.0)).alias("revenue"),
        _ratio(purchase_amount, _total("purchase_events")).alias("avg_order_value"),
        F.max(_in("date", "max_purchase_price")).alias("max_purchase_price"),
        F.count(_in("purchased_product", F.lit(1))).alias("distinct_products_purchased"),
        _ratio(_total("view_amount").cast("double"), _total("view_events")).alias("avg_viewed_price"),
    ]


def affinity_features() -> list[Column]:
    columns = []
    for facet, plural in (("category", "categories"), ("brand", "brands")):
        heaviest = _heaviest(facet, "weight")
        columns += [
            heaviest.getField("key").alias(f"top_{facet}"),
            # Weights are >= 0: the total is positive exactly when a top value exists.
            _ratio(-heaviest.getField("negative_weight"), F.sum(_in(facet, "weight"))).alias(f"top_{facet}_share"),
            F.count(_in(facet, F.lit(1))).alias(f"distinct_{plural}"),
        ]
    return columns


def habit_features() -> list[Column]:
    return [
        _heaviest(facet, "events").getField("key").cast("int").alias(f"preferred_{facet}")
        for facet in ("hour", "weekday")
    ]


def rfm_inputs() -> list[Column]:
    """The RFM ranking inputs that the profile row does not hold as such."""
    purchase_date = F.when(F.col("purchase_events") > 0, F.col("key"))  # ISO date keys sort as dates
    return [
        F.max(_in("date", purchase_date)).cast("date").alias(LAST_PURCHASE_DATE),
        _total("purchase_amount").cast(AMOUNT_TOTAL).alias(PURCHASE_AMOUNT),
    ]


def activity_profiles(events: DataFrame, snapshot_date: dt.date | str) -> DataFrame:
    """Per user with an event up to ``snapshot_date``: every feature that does not depend on the
    snapshot date, plus LAST_PURCHASE_DATE and PURCHASE_AMOUNT (the RFM inputs)."""
    prepared = _prepare(events, _as_date(snapshot_date))
    return (
        facet_subtotals(prepared)
        .groupBy("user_id")
        .agg(
            *time_features(),
            *session_features(),
            *funnel_features(),
            *money_features(),
            *affinity_features(),
            *habit_features(),
            *rfm_inputs(),
        )
    )


def _quintile(order: Column, purchasers: Column) -> Column:
    """1 + floor(5 * (rank - 1) / n): RANK() gives ties the same (lowest) rank, hence the same score."""
    rank = F.rank().over(Window.orderBy(order))
    return (1 + F.floor((rank - 1) * RFM_QUINTILES / purchasers)).cast("int")


def rfm_scores(dated: DataFrame) -> DataFrame:
    """r/f/m quintiles of the purchasing customers (one row each) among all of them."""
    # The quintiles rank all purchasers together (one partition); the rows are small.
    n = F.count(F.lit(1)).over(Window.partitionBy())
    return dated.where(F.col("purchases") > 0).select(
        "user_id",
        _quintile(F.col("days_since_last_purchase").desc(), n).alias("r_score"),
        _quintile(F.col("purchases").asc(), n).alias("f_score"),
        _quintile(F.col(PURCHASE_AMOUNT).asc(), n).alias("m_score"),
    )


def rfm_segment(r: Column, f: Column, m: Column, purchases: Column, carts: Column) -> Column:
    """Named segment; the first matching rule wins (docs/profiles.md has the table)."""
    return (
        F.when((purchases == 0) & (carts > 0), "Cart abandoners")
        .when(purchases == 0, "Browsers")
        .when((r >= 4) & (f >= 4) & (m >= 4), "Champions")
        .when((r >= 3) & (f >= 4), "Loyal")
        .when((r <= 2) & ((f >= 4) | (m >= 4)), "At risk")
        .when(r >= 4, "New")
        .when(r <= 2, "Hibernating")
        .otherwise("Need attention")
    )


def with_snapshot_features(activity: DataFrame, snapshot_date: dt.date | str) -> DataFrame:
    """activity_profiles rows -> profiles (PROFILE_SCHEMA) as of ``snapshot_date``: the features
    measured from the snapshot date (tenure, recency, days since the last purchase) and the RFM
    quintiles, which rank every purchaser of the snapshot together."""
    snapshot = F.lit(_as_date(snapshot_date))
    dated = activity.withColumns(
        {
            "snapshot_date": snapshot,
            "tenure_days": F.datediff(snapshot, _utc_date(F.col("first_seen"))),
            "recency_days": F.datediff(snapshot, _utc_date(F.col("last_seen"))),
            "days_since_last_purchase": F.datediff(snapshot, F.col(LAST_PURCHASE_DATE)),  # null without purchases
        }
    )
    # Customers without purchases are not ranked: their scores are 0.
    profiles = dated.join(rfm_scores(dated), "user_id", "left").fillna(0, subset=["r_score", "f_score", "m_score"])
    segment = rfm_segment(*(F.col(c) for c in ("r_score", "f_score", "m_score", "purchases", "carts")))
    return _declare(profiles.withColumn("rfm_segment", segment), PROFILE_SCHEMA)


def build_profiles(events: DataFrame, snapshot_date: dt.date | str) -> DataFrame:
    """One profile per user with an event at or before the end of ``snapshot_date`` (UTC).

    ``events`` are typed events (parse_kafka_events / read_events_csv); extra columns such as
    event_date are ignored. The result has exactly PROFILE_SCHEMA (plugins/ecommerce_profiles/core/schemas.py).
    """
    return with_snapshot_features(activity_profiles(events, snapshot_date), snapshot_date)


# ---------------------------------------------------------------------------------------------
# Incremental profiles. A user without events after an earlier snapshot P (and without late
# events of dates <= P) has the same events up to D as up to P: their activity columns are P's,
# and only the snapshot-date features and the RFM ranks need recomputing. The job decides when
# P's snapshot may be used (ecommerce_profiles.core.profile_manifest: the archive up to P unchanged).
# ---------------------------------------------------------------------------------------------
def carried_forward(previous_profiles: DataFrame, previous_snapshot: dt.date | str) -> DataFrame:
    """A snapshot's profile rows -> their activity_profiles rows."""
    previous = F.lit(_as_date(previous_snapshot))
    purchased = F.col("purchases") > 0
    return previous_profiles.select(
        *ACTIVITY_COLUMNS,
        F.date_sub(previous, F.col("days_since_last_purchase")).alias(LAST_PURCHASE_DATE),
        # revenue is the exact cent sum as a double: casting back recovers the cents exactly
        # (doubles hold every cent amount below 2^53 cents).
        F.when(purchased, F.col("revenue").cast(AMOUNT_TOTAL)).alias(PURCHASE_AMOUNT),
    )


def changed_users(profile_events: DataFrame, run_events: DataFrame, previous_snapshot: dt.date | str) -> DataFrame:
    """user_id of everyone whose events up to the new snapshot differ from those up to
    ``previous_snapshot``: events dated after it (any batch) and the run's late events before it."""
    previous = F.lit(_as_date(previous_snapshot))
    later = profile_events.where(F.col(EVENT_DATE) > previous).select("user_id")
    late = run_events.where(F.col(EVENT_DATE) <= previous).select("user_id")
    return later.unionByName(late).distinct()


def incremental_activity(
    previous_profiles: DataFrame, previous_snapshot: dt.date | str, changed_activity: DataFrame
) -> DataFrame:
    """activity_profiles of every user as of a later snapshot: the earlier snapshot's rows of the
    users who did not change, and ``changed_activity`` (activity_profiles over the changed users'
    whole history up to the later snapshot)."""
    kept = carried_forward(previous_profiles, previous_snapshot).join(
        changed_activity.select("user_id"), "user_id", "left_anti"
    )
    return kept.unionByName(changed_activity)


def incremental_profiles(
    previous_profiles: DataFrame,
    previous_snapshot: dt.date | str,
    changed_history: DataFrame,
    snapshot_date: dt.date | str,
) -> DataFrame:
    """build_profiles(all events, snapshot_date) from an earlier snapshot's profiles and the whole
    history of the users who changed since (``changed_history``: their events up to the snapshot).
    The job composes the same steps itself to cache between them."""
    changed = activity_profiles(changed_history, snapshot_date)
    return with_snapshot_features(incremental_activity(previous_profiles, previous_snapshot, changed), snapshot_date)
