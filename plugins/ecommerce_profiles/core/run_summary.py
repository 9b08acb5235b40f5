"""The run's closing check, its evidence record and the short human summary at the end of the log.

Pure: takes the tasks' results (XCom dicts) and an Elasticsearch client; returns the summary
and raises ``CountMismatch`` when the numbers do not add up. Every input row is accounted for:
rows read = accepted + quarantined; accepted = produced = Kafka records read by Spark;
records = duplicates in the run + events already archived by another batch + events archived.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ecommerce_profiles.core import lake

log = logging.getLogger(__name__)


class CountMismatch(RuntimeError):
    """Two stages disagree about how many rows/events/profiles there are."""


def check_counts(
    *, validation: Mapping[str, Any], produced: Mapping[str, Any], spark: Mapping[str, Any], behind_alias: int | None
) -> None:
    problems = []
    if validation["rows_read"] != validation["rows_accepted"] + validation["rows_quarantined"]:
        problems.append(
            f"rows read {validation['rows_read']} != accepted {validation['rows_accepted']} "
            f"+ quarantined {validation['rows_quarantined']}"
        )
    if produced["delivered"] != validation["rows_accepted"]:
        problems.append(f"Kafka delivered {produced['delivered']} of {validation['rows_accepted']} accepted events")
    if spark["kafka_records"] != produced["delivered"]:
        problems.append(f"Spark read {spark['kafka_records']} records of {produced['delivered']} produced")
    accounted = spark["duplicates_dropped"] + spark["already_archived_by_other_batches"] + spark["events_archived"]
    if accounted != spark["kafka_records"]:
        problems.append(f"Spark accounted for {accounted} of {spark['kafka_records']} records")
    if spark["profiles"] != spark["distinct_users"]:
        problems.append(f"{spark['profiles']} profiles for {spark['distinct_users']} distinct users")
    if behind_alias is not None and behind_alias != spark["profiles"]:
        problems.append(f"{behind_alias} documents behind the alias, {spark['profiles']} profiles in the snapshot")
    if problems:
        raise CountMismatch("Count mismatch: " + "; ".join(problems))


def summarise(
    *,
    plan: Mapping[str, Any],
    bucket: str,
    alias: str,
    validation: Mapping[str, Any],
    produced: Mapping[str, Any],
    published: Mapping[str, Any],
    behind_alias: int | None,
    kibana_dashboard_url: str | None,
    alias_now_on: list[str] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Check every count, then the summary dict (also written to the run's evidence).

    ``published`` is the publish result (or, for a run whose publish was superseded by a later
    build of the same snapshot date, that record: ``superseded_by`` names the index serving the
    date instead); ``behind_alias`` is compared with the profiles when given and the alias moved.
    """
    spark = published["spark"]
    check_counts(
        validation=validation,
        produced=produced,
        spark=spark,
        behind_alias=behind_alias if published["alias_moved"] else None,
    )
    snapshot = spark["snapshot_date"]
    return {
        "run_id": plan["run_id"],
        "mode": plan["mode"],
        "run_date": plan["run_date"],
        "batch_id": plan["batch_id"],
        "finished_at": (now or datetime.now(UTC)).isoformat(),
        "rows_read": validation["rows_read"],
        "rows_quarantined": validation["rows_quarantined"],
        "rows_accepted": validation["rows_accepted"],
        "events_produced": produced["delivered"],
        "duplicates_in_run": spark["duplicates_dropped"],
        "already_archived": spark["already_archived_by_other_batches"],
        "events_archived": spark["events_archived"],
        "archive_events_total": spark["archive_events_total"],
        "profiles": spark["profiles"],
        "snapshot_date": snapshot,
        "elasticsearch_index": published["index"],
        "elasticsearch_alias": alias if published["alias_moved"] else None,
        "superseded_by": published.get("superseded_by"),
        "superseded_by_run": published.get("superseded_by_run"),
        "alias_now_on": alias_now_on,
        "lake_archive": lake.s3_uri(bucket, lake.archive_key()),
        "lake_profiles": lake.s3_uri(bucket, lake.snapshot_key(snapshot)),
        "evidence": lake.s3_uri(bucket, plan["evidence_prefix"]),
        "quarantine": validation.get("quarantine_uri"),
        "validation_report": validation.get("report_uri"),
        "kibana_dashboard": kibana_dashboard_url,
    }


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    alias = summary["elasticsearch_alias"]
    if summary.get("superseded_by"):
        served = (
            f" not published: {summary['superseded_by']} (run {summary['superseded_by_run']}), a later build of "
            "the same snapshot date that read this run's batch too, is served instead"
        )
    elif alias:
        served = f" behind alias {alias}"
    else:
        served = " (the alias stays on a newer snapshot)"
    return [
        "=" * 72,
        f"Customer profiles as of {summary['snapshot_date']} ({summary['mode']} run {summary['run_id']})",
        f"  rows read {summary['rows_read']:,} | quarantined {summary['rows_quarantined']:,} | "
        f"produced to Kafka {summary['events_produced']:,} | archived {summary['events_archived']:,} new "
        f"(+{summary['already_archived']:,} already archived, {summary['duplicates_in_run']:,} duplicates) | "
        f"profiles {summary['profiles']:,} from {summary['archive_events_total']:,} events",
        f"  Elasticsearch: index {summary['elasticsearch_index']}" + served,
        f"  Lake: {summary['lake_archive']} (batch {summary['batch_id']}) and {summary['lake_profiles']}",
        f"  Evidence: {summary['evidence']} (quarantine, validation report, Spark summary)",
        f"  Kibana: {summary['kibana_dashboard'] or 'not configured (set AIRFLOW_CONN_KIBANA_DEFAULT)'}",
        "=" * 72,
    ]


def log_summary(summary: Mapping[str, Any], logger: logging.Logger | Any = log) -> None:
    for line in summary_lines(summary):
        logger.info(line)
