"""Spark job: the lake's event archive -> a point-in-time training set for one snapshot date S.

This file only wires I/O; the features and labels are ``label_transforms.point_in_time_training_set``
(features = ``build_profiles`` over events dated on or before S, labels from events dated
S + 1 ... S + horizon). The caller (SparkSubmitOperator or spark-submit) passes the s3a settings
and the connector jars as Spark conf (``ecommerce_profiles.spark_submit_conf.job_conf`` on the submit side); nothing is downloaded.

Steps:
  1. list the archive ``<lake>/raw/events/event_date=*/batch=*/`` and refuse, before reading a
     row, when the labels are not complete yet (no archived events dated S + max horizon or
     later) or when there is no history (no archived events on or before S);
  2. read the events dated up to S + max horizon (partition pruning), dropping exact duplicate
     events across batches (the archive stores each event once; this is a safety net);
  3. compute the training set and write it to ``<lake>/training_sets/snapshot_date=S/``
     (that partition only is replaced): plain Parquet that pandas, pyarrow and DuckDB read
     as-is (INT64 microsecond UTC timestamps, DATE dates, booleans, doubles; no Spark-only types);
  4. write a JSON summary to --summary-uri (default ``training_sets/_summaries/snapshot_date=S.json``,
     outside the Parquet partitions; readers skip ``_``-prefixed folders).

Exit code 0 on success; a refusal exits with code 3 and one line that says why
("labels not complete yet ..."), nothing written.

Summary keys: snapshot_date, label_window_end, purchase_horizon_days, revenue_horizon_days,
label_columns, archive_first_event_date, archive_last_event_date, archive_rows_read,
duplicates_dropped, events_used, feature_events, label_events, rows (= profiles as of S),
positives (per purchased_within_* label), label_revenue (sum per revenue_within_* label),
users_with_revenue, output_uri, shuffle_partitions, spark_version, total_seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ecommerce_profiles.core import lake
from ecommerce_profiles.core.schemas import EVENT_COLUMNS
from ecommerce_profiles.core.training_window import (
    DEFAULT_PURCHASE_HORIZON_DAYS,
    DEFAULT_REVENUE_HORIZON_DAYS,
    LabelHorizons,
    TrainingSetNotReady,
    check_ready,
    label_window_end,
    purchased_column,
    revenue_column,
)
from spark_jobs.archive_transforms import BATCHED_ARCHIVE_SCHEMA
from spark_jobs.label_transforms import point_in_time_training_set
from spark_jobs.profile_transforms import EVENT_DATE
from spark_jobs.spark_io import list_files, scaled_shuffle_partitions, single_row, write_summary

LOG = logging.getLogger("training_set")
OUTPUT_FILES = 2  # one row per user: small
EXIT_NOT_READY = 3


summary_key = lake.training_summary_key


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake-uri", required=True, help="s3a://<bucket>[/<prefix>]")
    parser.add_argument("--snapshot-date", required=True, type=dt.date.fromisoformat, help="S, YYYY-MM-DD")
    parser.add_argument(
        "--purchase-horizon-days",
        type=int,
        default=DEFAULT_PURCHASE_HORIZON_DAYS,
        help="purchased_within_<n>d: a purchase dated S+1 ... S+n (default %(default)s)",
    )
    parser.add_argument(
        "--revenue-horizon-days",
        type=int,
        default=DEFAULT_REVENUE_HORIZON_DAYS,
        help="revenue_within_<n>d: purchase revenue dated S+1 ... S+n (default %(default)s)",
    )
    parser.add_argument("--summary-uri", help="a URI, or a key in the lake (default training_sets/_summaries/...)")
    args = parser.parse_args(argv)
    args.lake_uri = args.lake_uri.rstrip("/")
    try:
        args.horizons = LabelHorizons(args.purchase_horizon_days, args.revenue_horizon_days)
    except ValueError as error:
        parser.error(str(error))
    args.summary_uri = args.summary_uri or summary_key(args.snapshot_date.isoformat())
    if "://" not in args.summary_uri:
        args.summary_uri = f"{args.lake_uri}/{args.summary_uri.lstrip('/')}"
    return args


# ------------------------------------------------------------------------------------ I/O --
def archive_event_dates(spark: SparkSession, archive_uri: str) -> list[dt.date]:
    """The distinct event dates that hold at least one archive data file (sorted), from one
    recursive listing; files in a crashed write's hidden staging folders are not archive files."""
    return [dt.date.fromisoformat(d) for d in lake.archive_event_dates(list_files(spark, archive_uri))]


def read_archive(spark: SparkSession, archive_uri: str, last_date: dt.date) -> DataFrame:
    """Archived events dated up to ``last_date`` (pruned by the event_date partition)."""
    archive = spark.read.schema(BATCHED_ARCHIVE_SCHEMA).option("basePath", archive_uri).parquet(archive_uri)
    return archive.where(F.col(EVENT_DATE) <= F.lit(last_date)).select(*EVENT_COLUMNS, EVENT_DATE)


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    snapshot, horizons = args.snapshot_date, args.horizons
    window_end = label_window_end(snapshot, horizons)
    archive_uri = f"{args.lake_uri}/{lake.archive_key()}"
    output_uri = f"{args.lake_uri}/{lake.training_set_key(snapshot.isoformat())}"

    dates = archive_event_dates(spark, archive_uri)
    check_ready(dates, snapshot, horizons)
    summary: dict = {
        "snapshot_date": snapshot.isoformat(),
        "label_window_end": window_end.isoformat(),
        "purchase_horizon_days": list(horizons.purchase_days),
        "revenue_horizon_days": list(horizons.revenue_days),
        "label_columns": horizons.label_columns,
        "archive_first_event_date": dates[0].isoformat(),
        "archive_last_event_date": dates[-1].isoformat(),
        "output_uri": output_uri,
    }
    LOG.info(
        "archive holds %s .. %s; training set for %s with labels up to %s", dates[0], dates[-1], snapshot, window_end
    )

    rows = read_archive(spark, archive_uri, window_end)
    summary["archive_rows_read"] = rows.count()  # Parquet footers: no scan
    # An event archived by two batches counts once (the profile job stores each event once; this
    # guards the point-in-time promise against a lake edited by hand).
    events = rows.dropDuplicates(list(EVENT_COLUMNS)).persist(StorageLevel.MEMORY_AND_DISK)
    counts = single_row(
        events.agg(
            F.count(F.lit(1)).alias("events"),
            F.count(F.when(F.col(EVENT_DATE) <= F.lit(snapshot), 1)).alias("feature_events"),
        )
    )
    summary["events_used"] = counts["events"]
    summary["duplicates_dropped"] = summary["archive_rows_read"] - counts["events"]
    summary["feature_events"] = counts["feature_events"]
    summary["label_events"] = counts["events"] - counts["feature_events"]
    summary["shuffle_partitions"] = scaled_shuffle_partitions(spark, counts["events"])

    dataset = point_in_time_training_set(events, snapshot, horizons).persist(StorageLevel.MEMORY_AND_DISK)
    # Overwrite of this one directory: other snapshot dates are untouched.
    dataset.coalesce(OUTPUT_FILES).write.mode("overwrite").parquet(output_uri)
    events.unpersist()

    stats = single_row(
        dataset.agg(
            F.count(F.lit(1)).alias("rows"),
            *(
                F.count(F.when(F.col(purchased_column(n)), 1)).alias(purchased_column(n))
                for n in horizons.purchase_days
            ),
            *(F.sum(revenue_column(n)).alias(revenue_column(n)) for n in horizons.revenue_days),
            *(
                F.count(F.when(F.col(revenue_column(n)) > 0, 1)).alias(f"users_{revenue_column(n)}")
                for n in horizons.revenue_days
            ),
        )
    )
    dataset.unpersist()
    summary["rows"] = stats["rows"]
    summary["positives"] = {purchased_column(n): stats[purchased_column(n)] for n in horizons.purchase_days}
    summary["label_revenue"] = {
        revenue_column(n): round(stats[revenue_column(n)] or 0.0, 2) for n in horizons.revenue_days
    }
    summary["users_with_revenue"] = {
        revenue_column(n): stats[f"users_{revenue_column(n)}"] for n in horizons.revenue_days
    }
    LOG.info("training set %s: %d rows, positives %s", output_uri, stats["rows"], summary["positives"])
    return summary


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    started = time.monotonic()
    spark = (
        SparkSession.builder.appName(f"training_set_{args.snapshot_date.isoformat()}")
        # Also set by job_conf; repeated because the output contract depends on them.
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    try:
        try:
            summary = run(spark, args)
        except TrainingSetNotReady as refusal:
            LOG.error("%s: nothing written", refusal)
            print(f"training set refused: {refusal}", file=sys.stderr)
            return EXIT_NOT_READY
        summary["spark_version"] = spark.version
        summary["total_seconds"] = round(time.monotonic() - started, 3)
        write_summary(spark, args.summary_uri, summary, LOG)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
