"""The run's closing check and the short human summary at the end of the log."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from airflow.exceptions import AirflowException

log = logging.getLogger(__name__)


def check_and_summarise(*, es, alias: str, bucket: str, validation: Mapping[str, Any],
                        produced: Mapping[str, Any], published: Mapping[str, Any],
                        kibana_dashboard_url: str | None) -> dict[str, Any]:
    """Assert documents behind the alias = profiles in the snapshot = distinct users; log a summary."""
    spark = published["spark"]
    if published["alias_moved"]:
        behind_alias = es.count(index=alias)["count"]
        if not behind_alias == spark["profiles"] == spark["distinct_users"]:
            raise AirflowException(
                f"Count mismatch: {behind_alias} documents behind alias {alias}, "
                f"{spark['profiles']} profiles in the snapshot, {spark['distinct_users']} distinct users"
            )
    if produced["delivered"] != validation["rows_accepted"]:
        raise AirflowException(f"Kafka delivered {produced['delivered']} of {validation['rows_accepted']} accepted events")

    summary = {
        "rows_read": validation["rows_read"],
        "rows_quarantined": validation["rows_quarantined"],
        "rows_accepted": validation["rows_accepted"],
        "events_produced": produced["delivered"],
        "events_archived": spark["events_archived"],
        "duplicates_dropped": spark.get("duplicates_dropped"),
        "profiles": spark["profiles"],
        "snapshot_date": spark["snapshot_date"],
        "elasticsearch_index": published["index"],
        "elasticsearch_alias": alias if published["alias_moved"] else None,
        "lake_archive": f"s3://{bucket}/raw/events/",
        "lake_profiles": f"s3://{bucket}/profiles/snapshot_date={spark['snapshot_date']}/",
        "quarantine": validation.get("quarantine_uri"),
        "validation_report": validation.get("report_uri"),
        "kibana_dashboard": kibana_dashboard_url,
    }
    lines = [
        "=" * 72,
        f"Customer profiles as of {summary['snapshot_date']}",
        f"  rows read {summary['rows_read']:,} | quarantined {summary['rows_quarantined']:,} | "
        f"produced to Kafka {summary['events_produced']:,} | archived {summary['events_archived']:,} | "
        f"profiles {summary['profiles']:,}",
        f"  Elasticsearch: index {published['index']}"
        + (f" behind alias {alias}" if published["alias_moved"] else f" (alias {alias} kept on a newer snapshot)"),
        f"  Lake: {summary['lake_archive']} and {summary['lake_profiles']}",
        f"  Quarantine: {summary['quarantine']} (report {summary['validation_report']})",
        f"  Kibana: {kibana_dashboard_url or 'not configured (set AIRFLOW_CONN_KIBANA_DEFAULT)'}",
        "=" * 72,
    ]
    for line in lines:
        log.info(line)
    return summary
