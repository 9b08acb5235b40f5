"""An independent DuckDB SQL implementation of the customer profiles (tests and benchmarks only).

It reads the events CSV directly and follows docs/profiles.md, sharing no code with
spark_jobs/profile_transforms.py beyond the field list in plugins/ecommerce_profiles/core/schemas.py (used to read the
CSV and to cast the result to the contract's types). Where the two must agree exactly, the
definitions are exact in both: money is added as DECIMAL(18,2), quintiles come from RANK() with
integer arithmetic, ties are broken by value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from ecommerce_profiles.core.schemas import EVENT_COLUMNS, PROFILE_FIELDS

_TOP_BY_WEIGHT = """
    SELECT user_id, {column} AS top_{name}, weight / total_weight AS top_{name}_share
    FROM (
        SELECT user_id, {column}, sum(weight) AS weight,
               sum(sum(weight)) OVER (PARTITION BY user_id) AS total_weight,
               row_number() OVER (PARTITION BY user_id ORDER BY sum(weight) DESC, {column}) AS position
        FROM e WHERE {column} IS NOT NULL
        GROUP BY user_id, {column}
    )
    WHERE position = 1 AND weight > 0
"""

_MOST_FREQUENT = """
    SELECT user_id, {column} AS preferred_{name}
    FROM (
        SELECT user_id, {column},
               row_number() OVER (PARTITION BY user_id ORDER BY count(*) DESC, {column}) AS position
        FROM e GROUP BY user_id, {column}
    )
    WHERE position = 1
"""

_QUINTILE = "1 + (5 * (rank() OVER (ORDER BY {order}) - 1)) // count(*) OVER ()"

_PROFILES_SQL = f"""
WITH raw AS (
    SELECT * FROM read_csv($paths, header = true, auto_detect = false,
                           columns = {{{", ".join(f"'{c}': 'VARCHAR'" for c in EVENT_COLUMNS)}}})
),
typed AS (
    SELECT try_strptime(event_time, '%Y-%m-%d %H:%M:%S UTC') AS event_time,
           event_type,
           TRY_CAST(product_id AS BIGINT) AS product_id,
           TRY_CAST(category_id AS BIGINT) AS category_id,
           NULLIF(category_code, '') AS category_code,
           NULLIF(brand, '') AS brand,
           TRY_CAST(price AS DOUBLE) AS price,
           TRY_CAST(user_id AS BIGINT) AS user_id,
           NULLIF(user_session, '') AS user_session
    FROM raw
),
e AS (
    SELECT *,
           CAST(event_time AS DATE) AS day,
           hour(event_time) AS hour_of_day,
           isodow(event_time) AS iso_weekday,
           CASE event_type WHEN 'view' THEN 1 WHEN 'cart' THEN 3 WHEN 'purchase' THEN 5 ELSE 0 END AS weight,
           CAST(price AS DECIMAL(18, 2)) AS amount
    FROM (SELECT DISTINCT * FROM typed
          WHERE event_time IS NOT NULL AND event_type IS NOT NULL AND product_id IS NOT NULL
            AND category_id IS NOT NULL AND price IS NOT NULL AND user_id IS NOT NULL
            AND CAST(event_time AS DATE) <= $snapshot)
),
per_user AS (
    SELECT user_id,
           min(event_time) AS first_seen,
           max(event_time) AS last_seen,
           $snapshot - min(day) AS tenure_days,
           $snapshot - max(day) AS recency_days,
           count(DISTINCT day) AS active_days,
           count(DISTINCT user_session) AS sessions,
           count(*) AS events,
           count(*) FILTER (WHERE event_type = 'view') AS views,
           count(*) FILTER (WHERE event_type = 'cart') AS carts,
           count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
           count(*) FILTER (WHERE event_type = 'remove_from_cart') AS remove_from_carts,
           sum(amount) FILTER (WHERE event_type = 'purchase') AS purchase_amount,
           sum(amount) FILTER (WHERE event_type = 'view') AS view_amount,
           max(price) FILTER (WHERE event_type = 'purchase') AS max_purchase_price,
           count(DISTINCT product_id) FILTER (WHERE event_type = 'purchase') AS distinct_products_purchased,
           $snapshot - max(day) FILTER (WHERE event_type = 'purchase') AS days_since_last_purchase,
           count(DISTINCT category_code) AS distinct_categories,
           count(DISTINCT brand) AS distinct_brands
    FROM e GROUP BY user_id
),
session_spans AS (
    SELECT user_id, sum(epoch_us(last_time) - epoch_us(first_time)) AS span_micros
    FROM (SELECT user_id, user_session, min(event_time) AS first_time, max(event_time) AS last_time
          FROM e WHERE user_session IS NOT NULL GROUP BY user_id, user_session)
    GROUP BY user_id
),
rfm AS (
    SELECT user_id,
           {_QUINTILE.format(order="days_since_last_purchase DESC")} AS r_score,
           {_QUINTILE.format(order="purchases")} AS f_score,
           {_QUINTILE.format(order="purchase_amount")} AS m_score
    FROM per_user WHERE purchases > 0
),
top_category AS ({_TOP_BY_WEIGHT.format(column="category_code", name="category")}),
top_brand AS ({_TOP_BY_WEIGHT.format(column="brand", name="brand")}),
preferred_hour AS ({_MOST_FREQUENT.format(column="hour_of_day", name="hour")}),
preferred_weekday AS ({_MOST_FREQUENT.format(column="iso_weekday", name="weekday")}),
profiles AS (
    SELECT p.*,
           $snapshot AS snapshot_date,
           CASE WHEN sessions > 0 THEN events / sessions END AS events_per_session,
           CASE WHEN sessions > 0 THEN CAST(s.span_micros AS DOUBLE) / 1000000 / sessions END AS avg_session_seconds,
           CASE WHEN views > 0 THEN carts / views END AS view_to_cart_rate,
           CASE WHEN carts > 0 THEN purchases / carts END AS cart_to_purchase_rate,
           CASE WHEN views > 0 THEN purchases / views END AS view_to_purchase_rate,
           CASE WHEN carts > 0 THEN greatest(carts - purchases, 0) / carts END AS cart_abandonment_rate,
           coalesce(CAST(purchase_amount AS DOUBLE), 0) AS revenue,
           CASE WHEN purchases > 0 THEN CAST(purchase_amount AS DOUBLE) / purchases END AS avg_order_value,
           CASE WHEN views > 0 THEN CAST(view_amount AS DOUBLE) / views END AS avg_viewed_price,
           coalesce(r.r_score, 0) AS r_score,
           coalesce(r.f_score, 0) AS f_score,
           coalesce(r.m_score, 0) AS m_score,
           tc.top_category, tc.top_category_share, tb.top_brand, tb.top_brand_share,
           ph.preferred_hour, pw.preferred_weekday
    FROM per_user p
    LEFT JOIN session_spans s USING (user_id)
    LEFT JOIN rfm r USING (user_id)
    LEFT JOIN top_category tc USING (user_id)
    LEFT JOIN top_brand tb USING (user_id)
    JOIN preferred_hour ph USING (user_id)
    JOIN preferred_weekday pw USING (user_id)
),
segmented AS (
    SELECT *,
           CASE
               WHEN purchases = 0 AND carts > 0 THEN 'Cart abandoners'
               WHEN purchases = 0 THEN 'Browsers'
               WHEN r_score >= 4 AND f_score >= 4 AND m_score >= 4 THEN 'Champions'
               WHEN r_score >= 3 AND f_score >= 4 THEN 'Loyal'
               WHEN r_score <= 2 AND (f_score >= 4 OR m_score >= 4) THEN 'At risk'
               WHEN r_score >= 4 THEN 'New'
               WHEN r_score <= 2 THEN 'Hibernating'
               ELSE 'Need attention'
           END AS rfm_segment
    FROM profiles
)
SELECT {", ".join(f"CAST({f.name} AS {f.duckdb_type}) AS {f.name}" for f in PROFILE_FIELDS)}
FROM segmented
ORDER BY user_id
"""


def duckdb_profiles(
    csv_paths: str | Path | Sequence[str | Path],
    snapshot_date: dt.date | str,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Profiles of every user with an event up to the end of ``snapshot_date`` (UTC), by user_id."""
    paths = [str(csv_paths)] if isinstance(csv_paths, (str, Path)) else [str(p) for p in csv_paths]
    snapshot = snapshot_date if isinstance(snapshot_date, dt.date) else dt.date.fromisoformat(snapshot_date)
    con = connection or duckdb.connect()
    try:
        return con.sql(_PROFILES_SQL, params={"paths": paths, "snapshot": snapshot}).to_arrow_table()
    finally:
        if connection is None:
            con.close()
