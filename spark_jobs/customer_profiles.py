"""Spark job: one run's Kafka offset range -> Parquet archive -> customer profiles -> lake + Elasticsearch.

This file only wires I/O: ``run`` calls one function per stage (``read_kafka``,
``archive_run_events``, ``plan_profiles``, ``build_and_write_snapshot``, ``count_profiles``,
``write_elasticsearch``). The transformations live in ``spark_jobs.profile_transforms`` and
``spark_jobs.archive_transforms``, the profiles' shape for their stores in
``spark_jobs.profile_output``, the job's reads and deletes in ``spark_jobs.profile_job_io``, and
the connector settings in ``spark_jobs.spark_conf``. The caller (SparkSubmitOperator or
spark-submit) passes the s3a settings and the connector jars as Spark conf (see
``ecommerce_profiles.spark_submit_conf.job_conf`` on the submit side); nothing is downloaded at run time.

Steps:
  1. read the Kafka topic as a bounded batch [starting, ending) per partition, parse it and
     collapse exact duplicates in one shuffle by event_date; the result is cached and gives
     every count. The run fails before writing anything unless every produced record was read
     (``--expected-records``) and parsed;
  2. archive the run's events as its own batch: ``raw/events/event_date=D/batch=B/``. Events
     that another batch already holds are left out (an event delivered twice is stored once);
     a rerun replaces the batch's partitions (dynamic overwrite; a batch's first write appends)
     and deletes the ones it no longer fills, so a rerun or backfill replaces only its own batch
     and late events land beside the earlier ones of their date;
  3. build the profiles of the whole archive up to the snapshot date (other batches read from
     the lake, this run's from the cache): from the latest earlier snapshot and the changed
     users' history when its manifest allows it (ecommerce_profiles.core.profile_manifest), else
     from every archived event; the snapshot's manifest is written beside it;
  4. write the snapshot to <lake>/profiles/snapshot_date=<date>/ (that partition only);
  5. index the same (cached) profiles into the pre-created dated Elasticsearch index (_id = user_id);
  6. write a JSON summary of counts and stage timings to --summary-uri.

A crash mid-write: a rerun's write stages files under a hidden ``.spark-staging`` folder and
only the commit replaces the batch's partitions, so a crash before the commit leaves the archive
as it was; a crash during the commit's renames can leave a partition half-moved. A batch's first
write (S3A magic committer) uploads every file as a multipart upload that only the job commit
completes, so a crash before the commit leaves no file of the batch and one during it can leave
part of it. Either way the retry of the same batch finds what is there and replaces it whole (the
hidden leftovers, ``.spark-staging-*``, ``_temporary`` and ``__magic``, are deleted first; a
crashed write's uploads stay invisible until the store expires them, docs/archive-format.md).

Summary keys: kafka_records, events_parsed, records_unparsed, events_in_run, duplicates_dropped,
already_archived_by_other_batches, events_archived (new rows written for this batch),
events_per_date, dates_archived, stale_partitions_deleted, archive_write (first append with the
magic committer, or a rerun's dynamic overwrite), archive_events_total /
archive_dates_total (the profile input), read_shuffle_partitions, shuffle_partitions, profiles, distinct_users, batch_id,
run_date, snapshot_date, offsets, spark_startup_seconds, jvm_garbage_collectors, stage_seconds,
total_seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from ecommerce_profiles.core import lake, profile_manifest, schemas
from spark_jobs import profile_transforms
from spark_jobs.archive_transforms import (
    archived_by_other_batches,
    not_yet_archived,
    profile_input,
    with_batch,
)
from spark_jobs.profile_job_io import (
    archive_partitions_now,
    delete_partitions,
    delete_write_leftovers,
    read_archive,
    read_kafka_range,
    read_snapshot,
)
from spark_jobs.profile_output import (
    check_profile_schema,
    for_elasticsearch,
    writer_count,
    writer_partitions,
)
from spark_jobs.profile_transforms import (
    ARCHIVE_SCHEMA,
    EVENT_DATE,
    IS_VALID,
    activity_profiles,
    changed_users,
    collapse_duplicates,
    counts_by_date,
    incremental_activity,
    parse_kafka_records,
    valid_events,
    with_snapshot_features,
)
from spark_jobs.spark_conf import es_write_options, records_in_range
from spark_jobs.spark_io import (
    ARCHIVE_BYTES_PER_EVENT,
    delete_path,
    jvm,
    list_files,
    magic_commit,
    read_text,
    scaled_shuffle_partitions,
    single_row,
    write_summary,
    write_text,
)

LOG = logging.getLogger("customer_profiles")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--starting-offsets", required=True, help='per-partition JSON, e.g. {"events":{"0":0}}')
    parser.add_argument("--ending-offsets", required=True, help="per-partition JSON, exclusive")
    parser.add_argument("--snapshot-date", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument("--run-date", type=date.fromisoformat, help="YYYY-MM-DD (names the Spark app)")
    parser.add_argument(
        "--batch-id", required=True, help="the archive batch this run owns (ecommerce_profiles.core.lake)"
    )
    parser.add_argument("--expected-records", type=int, help="records produced to the offset range: fail unless read")
    parser.add_argument("--lake-uri", required=True, help="s3a://<bucket>")
    parser.add_argument("--es-nodes", required=True, help="http://host:port")
    parser.add_argument("--es-index", required=True, help="existing index with the profile mapping")
    parser.add_argument("--summary-uri", required=True, help="where the JSON summary goes: a URI, or a key in the lake")
    parser.add_argument(
        "--profile-build",
        choices=["auto", "full"],
        default="auto",
        help="auto: carry the latest earlier snapshot forward when its manifest allows it; "
        "full: build every profile from the archive",
    )
    args = parser.parse_args(argv)
    args.lake_uri = args.lake_uri.rstrip("/")
    if "://" not in args.summary_uri:
        args.summary_uri = f"{args.lake_uri}/{args.summary_uri.lstrip('/')}"
    return args


class StageTimer:
    """Collects wall-clock seconds per stage and logs progress lines."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.current: str | None = None  # the stage running now (names the failed one)

    @contextmanager
    def stage(self, name: str):
        LOG.info("stage %s: started", name)
        self.current = name
        started = time.monotonic()
        yield
        self.seconds[name] = round(time.monotonic() - started, 3)
        self.current = None
        LOG.info("stage %s: done in %.1f s", name, self.seconds[name])


def jvm_started_epoch_seconds(spark: SparkSession) -> float:
    """When this driver JVM (spark-submit) started: the start of Spark's start-up."""
    runtime = jvm(spark).java.lang.management.ManagementFactory.getRuntimeMXBean()
    return runtime.getStartTime() / 1000.0


def jvm_garbage_collectors(spark: SparkSession) -> list[str]:
    """The driver JVM's collectors (``PS Scavenge``/``PS MarkSweep`` for the parallel collector that
    spark_submit_conf.job_conf asks for): the summary says which one the run really had."""
    beans = jvm(spark).java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
    return sorted(str(bean.getName()) for bean in beans)


def quiet_spark_logs(spark: SparkSession) -> None:
    """WARN and above, minus one known warning that says nothing here.

    The RFM quintiles rank all purchasers in one window partition on purpose (one small row per
    purchaser), and Spark warns about it once per task.
    """
    spark.sparkContext.setLogLevel("WARN")
    log4j = jvm(spark).org.apache.logging.log4j
    log4j.core.config.Configurator.setLevel("org.apache.spark.sql.execution.window.WindowExec", log4j.Level.ERROR)


# Which service a stage depends on, to name it when the stage fails.
STAGE_SERVICES = {
    "read_kafka": "Kafka",
    "archive": "MinIO (the lake)",
    "read_archive": "MinIO (the lake)",
    "build_and_write_snapshot": "MinIO (the lake)",
    "count_profiles": "Spark",
    "write_elasticsearch": "Elasticsearch",
}


def failure_summary(error: BaseException, stage: str) -> dict:
    """What the job records when it fails: the stage, its service, and the error's telling line.

    A Py4J error's first line only says which call failed ("An error occurred while calling
    o123.save."); the JVM exception is on the next line that names one.
    """
    lines = [line.strip(" :\t") for line in str(error).splitlines() if line.strip(" :\t")]
    telling = next((line for line in lines if "Exception" in line or "Error" in line), lines[0] if lines else "")
    return {
        "status": "failed",
        "failed_stage": stage,
        "service": STAGE_SERVICES.get(stage, "the job's own checks"),
        "error": f"{type(error).__name__}: {telling}"[:600],
    }


class RecordCountError(RuntimeError):
    """What Spark read does not match what was produced: nothing is written."""


def profile_logic_version() -> str:
    """The version of the code that defines a profile (see profile_manifest)."""
    return profile_manifest.logic_version(profile_transforms.__file__, schemas.__file__)


def manifest_uri(lake_uri: str, snapshot: str) -> str:
    return f"{lake_uri}/{lake.profile_manifest_key(snapshot)}"


def choose_profile_build(
    spark: SparkSession, args: argparse.Namespace, files: dict[str, int]
) -> profile_manifest.Decision:
    """Carry the latest earlier snapshot forward when its manifest allows it (and its Parquet
    still holds the rows it recorded), otherwise build every profile from the archive."""
    if args.profile_build == "full":
        return profile_manifest.Decision(False, "a full rebuild was asked for (--profile-build full)")
    snapshot = args.snapshot_date.isoformat()
    names = [path.rsplit("/", 1)[-1] for path in list_files(spark, f"{args.lake_uri}/{lake.profile_manifests_key()}")]
    previous_date = profile_manifest.previous_snapshot_date(names, snapshot)
    previous = json.loads(read_text(spark, manifest_uri(args.lake_uri, previous_date))) if previous_date else None
    decision = profile_manifest.decide(previous, files, args.batch_id, snapshot, profile_logic_version())
    if decision.incremental:
        assert previous_date and previous, "decide() carries a snapshot forward only when there is one"
        rows = read_snapshot(spark, args.lake_uri, previous_date).count()
        if rows != previous["profiles"]:
            return profile_manifest.Decision(
                False,
                f"the snapshot of {previous_date} holds {rows} profiles, its manifest {previous['profiles']}",
                previous_date,
            )
    return decision


@dataclass
class KafkaRead:
    """What read_kafka gives the later stages."""

    collapsed: DataFrame  # the run's parsed records, exact duplicates collapsed (cached)
    valid: list[Row]  # counts of the valid records per event date, by date
    events: DataFrame  # the run's distinct events (ARCHIVE_SCHEMA)


@dataclass
class ArchivedBatch:
    """What the archive stage wrote: the run's events no other batch holds, per date."""

    new_events: DataFrame
    new_per_date: dict[str, int]
    stale: list[tuple[str, str]]  # the batch's partitions it no longer fills, deleted


@dataclass
class ProfilePlan:
    """The profiles' input and how they are built (read_archive)."""

    files: dict[str, int]  # the archive's data files now
    profiled_files: dict[str, int]  # those up to the snapshot date
    profile_events: DataFrame  # every archived event up to the snapshot date
    decision: profile_manifest.Decision


def run(spark: SparkSession, args: argparse.Namespace, timer: StageTimer) -> dict:
    """The job's stages in order; each adds its figures to the summary it returns."""
    archive_uri = f"{args.lake_uri}/{lake.archive_key()}"
    snapshot_uri = f"{args.lake_uri}/{lake.snapshot_key(args.snapshot_date.isoformat())}"
    summary = start_summary(args, archive_uri, snapshot_uri)
    with timer.stage("read_kafka"):
        read = read_kafka(spark, args, summary)
    check_record_counts(args, summary)
    with timer.stage("archive"):
        archived = archive_run_events(spark, args, archive_uri, read, summary)
    summarise_archive(args, summary, archived)
    with timer.stage("read_archive"):
        plan = plan_profiles(spark, args, archive_uri, archived.new_events, summary)
    LOG.info("profiles %s: %s", summary["profile_build"]["mode"], plan.decision.reason)
    with timer.stage("build_and_write_snapshot"):
        profiles = build_and_write_snapshot(spark, args, snapshot_uri, read, archived, plan, summary)
    with timer.stage("count_profiles"):
        counts = count_profiles(spark, args, profiles, plan.files, summary)
    LOG.info(
        "snapshot %s: %d profiles, %d distinct users, %d events over %d dates",
        snapshot_uri,
        counts["profiles"],
        counts["users"],
        summary["archive_events_total"],
        summary["archive_dates_total"],
    )
    with timer.stage("write_elasticsearch"):
        write_elasticsearch(args, profiles)
    LOG.info("indexed %d profiles into %s", counts["profiles"], args.es_index)
    profiles.unpersist()
    return summary


def start_summary(args: argparse.Namespace, archive_uri: str, snapshot_uri: str) -> dict:
    return {
        "run_date": args.run_date.isoformat() if args.run_date else None,
        "snapshot_date": args.snapshot_date.isoformat(),
        "batch_id": args.batch_id,
        "topic": args.topic,
        "starting_offsets": json.loads(args.starting_offsets),
        "ending_offsets": json.loads(args.ending_offsets),
        "es_index": args.es_index,
        "archive_uri": archive_uri,
        "snapshot_uri": snapshot_uri,
    }


def read_kafka(spark: SparkSession, args: argparse.Namespace, summary: dict) -> KafkaRead:
    """Stage read_kafka: the offset range, parsed and collapsed in one shuffle whose cached
    result gives every count; the archive and the profiles reuse it (Kafka is read once)."""
    # The run's record count is known before the read: the shuffle that collapses duplicates
    # (and the archive write after it) get partitions sized from it, as the profiles do below
    # (20M events in 4 partitions spilled 2.6 GB to disk in the collapse, 0.7 GB in the write).
    in_range = (
        args.expected_records
        if args.expected_records is not None
        else records_in_range(args.starting_offsets, args.ending_offsets)
    )
    summary["read_shuffle_partitions"] = scaled_shuffle_partitions(spark, in_range or 0)
    records = read_kafka_range(spark, args, len(summary["starting_offsets"][args.topic]))
    collapsed = collapse_duplicates(parse_kafka_records(records)).persist(StorageLevel.MEMORY_AND_DISK)
    per_date = counts_by_date(collapsed).collect()  # a few rows per date
    valid = sorted((r for r in per_date if r[IS_VALID]), key=lambda r: r[EVENT_DATE])
    summary["kafka_records"] = sum(r["records"] for r in per_date)
    summary["events_parsed"] = sum(r["records"] for r in valid)
    summary["records_unparsed"] = summary["kafka_records"] - summary["events_parsed"]
    summary["events_in_run"] = sum(r["distinct_records"] for r in valid)
    summary["duplicates_dropped"] = summary["events_parsed"] - summary["events_in_run"]
    return KafkaRead(collapsed, valid, valid_events(collapsed, ARCHIVE_SCHEMA))


def check_record_counts(args: argparse.Namespace, summary: dict) -> None:
    """Fail closed before anything is written: every produced event must be read and parsed."""
    if args.expected_records is not None and summary["kafka_records"] != args.expected_records:
        raise RecordCountError(
            f"read {summary['kafka_records']} Kafka records in the offset range but "
            f"{args.expected_records} were produced: nothing was written"
        )
    if summary["records_unparsed"]:
        raise RecordCountError(
            f"{summary['records_unparsed']} of {summary['kafka_records']} Kafka records are not "
            "valid events (the validator should have quarantined them): nothing was written"
        )


def archive_run_events(
    spark: SparkSession, args: argparse.Namespace, archive_uri: str, read: KafkaRead, summary: dict
) -> ArchivedBatch:
    """Stage archive: the run's events as its own batch, minus those another batch holds."""
    delete_write_leftovers(spark, archive_uri)
    _, partitions = archive_partitions_now(spark, archive_uri)
    run_dates = {r[EVENT_DATE].isoformat() for r in read.valid}
    other_dates = sorted({d for d, b in partitions if b != args.batch_id and d in run_dates})
    elsewhere = (
        archived_by_other_batches(read_archive(spark, archive_uri, other_dates), args.batch_id, other_dates)
        if other_dates
        else None
    )
    if elsewhere is None:
        # No other batch holds any of the run's dates: every distinct event is new, the
        # counts per date are the read's, and the cached records serve the write and the
        # profiles (no second cache, no counting job: 2.4 s of the 885k one-shot).
        # The events straight from Kafka are grouped by date already: one file per date.
        new_events = not_yet_archived(read.events, None)
        new_per_date = {r[EVENT_DATE].isoformat(): r["distinct_records"] for r in read.valid}
        to_write = new_events
    else:
        # Cached: written to the lake, counted, and the run's part of the profile input.
        new_events = not_yet_archived(read.events, elsewhere).persist(StorageLevel.MEMORY_AND_DISK)
        new_per_date = {r[EVENT_DATE].isoformat(): r["count"] for r in new_events.groupBy(EVENT_DATE).count().collect()}
        # After the EXCEPT's shuffle, regroup by date: one file per date instead of one per
        # shuffle partition and date.
        to_write = new_events.repartition(EVENT_DATE)
    writer = with_batch(to_write, args.batch_id).write.partitionBy(EVENT_DATE, lake.BATCH_PARTITION)
    if any(batch == args.batch_id for _, batch in partitions):
        # A rerun: dynamic overwrite replaces exactly the (event_date, batch) partitions written here.
        summary["archive_write"] = "rerun: dynamic overwrite, classic committer"
        writer.mode("overwrite").option("partitionOverwriteMode", "dynamic").parquet(archive_uri)
    else:
        # The batch's first write has nothing to replace: an append with the magic committer
        # uploads each file straight to its key and the job commit completes the uploads (no
        # rename copies). A crash before the commit leaves no file of the batch; one during
        # it can leave part of the batch, which the retry finds and overwrites.
        summary["archive_write"] = "first: append, magic committer"
        with magic_commit(spark) as options:
            writer.options(**options).mode("append").parquet(archive_uri)
    # The batch's partitions this run no longer fills (a corrected drop, or events now owned
    # by another batch) go, so the batch is exactly this run's events.
    stale = sorted((d, b) for d, b in partitions if b == args.batch_id and d not in new_per_date)
    delete_partitions(spark, archive_uri, stale)
    if elsewhere is not None:
        read.collapsed.unpersist()  # new_events has its own cache; otherwise it reads this one
    return ArchivedBatch(new_events, new_per_date, stale)


def summarise_archive(args: argparse.Namespace, summary: dict, archived: ArchivedBatch) -> None:
    new_per_date = archived.new_per_date
    summary["events_archived"] = sum(new_per_date.values())
    summary["already_archived_by_other_batches"] = summary["events_in_run"] - summary["events_archived"]
    summary["events_per_date"] = dict(sorted(new_per_date.items()))
    summary["dates_archived"] = sorted(new_per_date)
    summary["stale_partitions_deleted"] = [f"{d}/{b}" for d, b in archived.stale]
    LOG.info(
        "%d kafka records: %d duplicates in the run, %d already archived by other batches, "
        "%d events archived as batch %s over %d dates",
        summary["kafka_records"],
        summary["duplicates_dropped"],
        summary["already_archived_by_other_batches"],
        summary["events_archived"],
        args.batch_id,
        len(new_per_date),
    )


def plan_profiles(
    spark: SparkSession, args: argparse.Namespace, archive_uri: str, new_events: DataFrame, summary: dict
) -> ProfilePlan:
    """Stage read_archive: one listing of the archive as the profiles will read it. Its files
    decide whether the previous snapshot can be carried forward, and they are recorded in this
    snapshot's manifest."""
    snapshot = args.snapshot_date.isoformat()
    files, partitions = archive_partitions_now(spark, archive_uri)
    others = any(batch != args.batch_id for _, batch in partitions)
    archive = read_archive(spark, archive_uri) if others else None
    profile_events = profile_input(archive, new_events, args.batch_id, snapshot)
    profiled_files = {
        path: size for path, size in files.items() if (key := lake.archive_file_partition(path)) and key[0] <= snapshot
    }
    summary["archive_dates_total"] = len(lake.archive_event_dates(profiled_files))
    decision = choose_profile_build(spark, args, files)
    summary["profile_build"] = {
        "mode": "incremental" if decision.incremental else "full",
        "reason": decision.reason,
        "previous_snapshot": decision.previous_snapshot,
    }
    return ProfilePlan(files, profiled_files, profile_events, decision)


def build_and_write_snapshot(
    spark: SparkSession,
    args: argparse.Namespace,
    snapshot_uri: str,
    read: KafkaRead,
    archived: ArchivedBatch,
    plan: ProfilePlan,
    summary: dict,
) -> DataFrame:
    """Stage build_and_write_snapshot: the profiles (full, or incremental from the previous
    snapshot), cached and laid out for the writers, written to the snapshot's partition."""
    # The aggregation's input is the archive up to the snapshot (full) or the changed users'
    # share of it (incremental): sized from the files, as the whole is the upper bound.
    summary["shuffle_partitions"] = scaled_shuffle_partitions(
        spark, sum(plan.profiled_files.values()) // ARCHIVE_BYTES_PER_EVENT
    )
    scratch = [archived.new_events, read.collapsed]  # unpersisted once the profiles are cached and written
    if plan.decision.incremental:
        assert plan.decision.previous_snapshot, "an incremental build has a previous snapshot"
        previous_snapshot = date.fromisoformat(plan.decision.previous_snapshot)
        changed = changed_users(plan.profile_events, archived.new_events, previous_snapshot).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        scratch += [changed]
        summary["profile_build"]["changed_users"] = changed.count()
        history = plan.profile_events.join(F.broadcast(changed), "user_id", "left_semi")
        # Cached: small (the changed users), and both sides of the merge use it.
        changed_activity = activity_profiles(history, args.snapshot_date).persist(StorageLevel.MEMORY_AND_DISK)
        scratch += [changed_activity]
        previous = read_snapshot(spark, args.lake_uri, plan.decision.previous_snapshot)
        activity = incremental_activity(previous, previous_snapshot, changed_activity)
    else:
        activity = activity_profiles(plan.profile_events, args.snapshot_date)
    # Cached: the RFM ranks and the profile rows both read every user's activity.
    activity = activity.persist(StorageLevel.MEMORY_AND_DISK)
    scratch += [activity]
    profiles = check_profile_schema(with_snapshot_features(activity, args.snapshot_date))
    # Cached: the snapshot, the counts and Elasticsearch all get exactly these rows, and the
    # aggregation runs once. Laid out so that every writer task stays busy (writer_partitions).
    summary["writers"] = writer_count(spark.sparkContext.defaultParallelism)
    profiles = writer_partitions(profiles, plan.decision.incremental, summary["writers"]).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    # The manifest goes first and comes back last: a snapshot without one is never carried forward.
    delete_path(spark, manifest_uri(args.lake_uri, args.snapshot_date.isoformat()))
    profiles.write.mode("overwrite").parquet(snapshot_uri)
    for frame in scratch:
        frame.unpersist()
    return profiles


def count_profiles(
    spark: SparkSession, args: argparse.Namespace, profiles: DataFrame, files: dict[str, int], summary: dict
) -> Row:
    """Stage count_profiles: the snapshot's counts, then its manifest (which marks it complete)."""
    snapshot = args.snapshot_date.isoformat()
    counts = single_row(
        profiles.agg(
            F.count(F.lit(1)).alias("profiles"),
            F.countDistinct("user_id").alias("users"),
            F.sum("events").alias("events"),
        )
    )
    summary["profiles"] = counts["profiles"]
    summary["distinct_users"] = counts["users"]
    # The archive holds each event once, so the profiles' events are every archived event up to the snapshot.
    summary["archive_events_total"] = counts["events"] or 0
    manifest = profile_manifest.build_manifest(
        snapshot, files, profile_logic_version(), counts["profiles"], summary["profile_build"]["mode"]
    )
    write_text(spark, manifest_uri(args.lake_uri, snapshot), json.dumps(manifest, indent=1) + "\n")
    return counts


def write_elasticsearch(args: argparse.Namespace, profiles: DataFrame) -> None:
    """Stage write_elasticsearch: the same cached profiles into the pre-created dated index."""
    (
        for_elasticsearch(profiles)
        .write.format("es")
        .options(**es_write_options(args.es_nodes, args.es_index))
        .mode("append")  # with es.write.operation=index: documents are replaced by _id
        .save()
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    timer = StageTimer()
    spark = (
        SparkSession.builder.appName(f"customer_profiles_{args.batch_id}")
        # Also set by job_conf; repeated here because correctness depends on them.
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .getOrCreate()
    )
    spark_ready = time.time()
    quiet_spark_logs(spark)
    startup_seconds = round(spark_ready - jvm_started_epoch_seconds(spark), 3)
    LOG.info("spark session ready %.1f s after spark-submit started (Spark %s)", startup_seconds, spark.version)
    try:
        try:
            summary = run(spark, args, timer)
        except Exception as error:
            # The task that submitted the job reads this and names the stage and its service.
            failure = failure_summary(error, timer.current or "checks")
            try:
                write_summary(spark, args.summary_uri, failure, LOG)
            except Exception:  # the lake itself may be what is down
                LOG.warning("could not record the failure at %s", args.summary_uri)
            raise
        summary["status"] = "succeeded"
        summary["spark_version"] = spark.version
        summary["spark_startup_seconds"] = startup_seconds
        summary["jvm_garbage_collectors"] = jvm_garbage_collectors(spark)
        summary["stage_seconds"] = timer.seconds
        summary["total_seconds"] = round(time.time() - jvm_started_epoch_seconds(spark), 3)
        write_summary(spark, args.summary_uri, summary, LOG)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
