"""The lake's layout in the bucket: every key and partition the pipeline writes, in one place.

    raw/events/event_date=<D>/batch=<B>/part-*.parquet   the event archive (Hive partitions)
    profiles/snapshot_date=<S>/part-*.parquet            one profile snapshot per date
    training_sets/snapshot_date=<S>/part-*.parquet       features as of S + labels after S
    runs/run_date=<D>/run=<K>/...                        evidence of one DAG run (quarantine,
                                                         validation report, Spark summary,
                                                         run summary)
    runs/run_date=<D>/latest.json                        which run of that date finished last

The archive is partitioned by the events' own date and, inside it, by the *ingest batch* that
delivered them: the daily drop of a date (``drop-<date>``) or a one-shot file
(``file-<name>-<hash>``). A run replaces only its own batch, so a rerun or a backfill never
touches what other drops delivered, and late events land in their event date beside the
earlier ones. An event already archived by another batch is not written again (see the Spark
job): every distinct event is stored exactly once.

Everything here is plain string work (no Airflow, no Spark), so the DAG, the operators, the
Spark job, the benchmark and the tests all import it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

ARCHIVE_PREFIX = "raw/events"
PROFILES_PREFIX = "profiles"
TRAINING_SETS_PREFIX = "training_sets"
RUNS_PREFIX = "runs"

EVENT_DATE_PARTITION = "event_date"
BATCH_PARTITION = "batch"
SNAPSHOT_PARTITION = "snapshot_date"

QUARANTINE_FILE = "quarantine.csv"
VALIDATION_REPORT_FILE = "validation_report.json"
SPARK_SUMMARY_FILE = "spark_summary.json"
RUN_SUMMARY_FILE = "run_summary.json"
LATEST_RUN_FILE = "latest.json"

_UNSAFE = re.compile(r"[^0-9A-Za-z._-]+")


def safe_token(text: str, max_length: int = 80) -> str:
    """A path- and partition-safe rendering of ``text`` (run ids hold ':' and '+')."""
    token = _UNSAFE.sub("_", text).strip("._-")
    return token[:max_length] or "_"


def daily_batch_id(run_date: str) -> str:
    """The batch of a date's daily drop: every run of that date (rerun, backfill) owns it."""
    return f"drop-{run_date}"


def file_batch_id(relative_path: str) -> str:
    """The batch of a one-shot file, named after its path inside the data directory.

    A readable stem plus a hash of the whole relative path, so two files with the same name in
    different folders are different batches and rerunning the same file replaces its batch.
    """
    digest = hashlib.sha256(relative_path.encode("utf-8")).hexdigest()[:10]
    stem = safe_token(relative_path.rsplit("/", 1)[-1].split(".", 1)[0], 40)
    return f"file-{stem}-{digest}"


def s3_uri(bucket: str, key: str = "", scheme: str = "s3") -> str:
    """``s3://bucket/key`` (``scheme="s3a"`` for Spark's Hadoop filesystem)."""
    return f"{scheme}://{bucket}/{key}".rstrip("/")


def archive_key() -> str:
    return ARCHIVE_PREFIX


_ARCHIVE_FILE = re.compile(rf"^{EVENT_DATE_PARTITION}=(\d{{4}}-\d{{2}}-\d{{2}})/{BATCH_PARTITION}=([^/]+)/[^/._][^/]*$")


def archive_file_partition(relative_path: str) -> tuple[str, str] | None:
    """(event_date, batch) of an archive data file given relative to the archive root
    (``event_date=D/batch=B/part-...``); None for anything else (Spark's hidden staging
    folders, markers)."""
    match = _ARCHIVE_FILE.match(relative_path)
    return (match.group(1), match.group(2)) if match else None


def archive_event_dates(relative_paths: Iterable[str]) -> list[str]:
    """Sorted distinct event dates (ISO) of the archive data files among ``relative_paths``
    (relative to the archive root). A date folder without a data file is no date."""
    return sorted({key[0] for key in map(archive_file_partition, relative_paths) if key})


def snapshot_key(snapshot_date: str) -> str:
    return f"{PROFILES_PREFIX}/{SNAPSHOT_PARTITION}={snapshot_date}"


def profile_manifests_key() -> str:
    """Where each snapshot's manifest (ecommerce_profiles.core.profile_manifest) lives: beside the
    snapshot partitions, hidden from readers of them by the leading underscore."""
    return f"{PROFILES_PREFIX}/_manifests"


def profile_manifest_key(snapshot_date: str) -> str:
    return f"{profile_manifests_key()}/{SNAPSHOT_PARTITION}={snapshot_date}.json"


def training_set_key(snapshot_date: str) -> str:
    return f"{TRAINING_SETS_PREFIX}/{SNAPSHOT_PARTITION}={snapshot_date}"


def training_summary_key(snapshot_date: str) -> str:
    """The training-set job's summary, beside (not inside) the training-set partitions."""
    return f"{TRAINING_SETS_PREFIX}/_summaries/{SNAPSHOT_PARTITION}={snapshot_date}.json"


def run_evidence_prefix(run_date: str, run_key: str) -> str:
    """Where one DAG run keeps its quarantine, reports and summaries (never shared by two runs)."""
    return f"{RUNS_PREFIX}/run_date={run_date}/run={run_key}"


def latest_run_key(run_date: str) -> str:
    """The pointer to the last finished run of a date: {"run_id", "evidence_prefix", ...}."""
    return f"{RUNS_PREFIX}/run_date={run_date}/{LATEST_RUN_FILE}"
