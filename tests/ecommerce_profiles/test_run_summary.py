"""The closing check: every count of a run must add up, or the run fails naming the mismatch."""

from __future__ import annotations

import pytest

from ecommerce_profiles.core.run_summary import CountMismatch, check_counts, summarise, summary_lines

VALIDATION = {
    "rows_read": 105,
    "rows_accepted": 100,
    "rows_quarantined": 5,
    "quarantine_uri": "s3://b/q.csv",
    "report_uri": "s3://b/r.json",
}
PRODUCED = {"delivered": 100}
SPARK = {
    "kafka_records": 100,
    "duplicates_dropped": 0,
    "already_archived_by_other_batches": 7,
    "events_archived": 93,
    "profiles": 40,
    "distinct_users": 40,
    "snapshot_date": "2020-11-17",
    "archive_events_total": 500,
}
PLAN = {
    "run_id": "manual__x",
    "mode": "daily",
    "run_date": "2020-11-17",
    "batch_id": "drop-2020-11-17",
    "evidence_prefix": "runs/run_date=2020-11-17/run=manual__x",
}


def test_consistent_counts_pass_and_the_summary_says_where_everything_is():
    check_counts(validation=VALIDATION, produced=PRODUCED, spark=SPARK, behind_alias=40)
    summary = summarise(
        plan=PLAN,
        bucket="lake",
        alias="profiles",
        validation=VALIDATION,
        produced=PRODUCED,
        published={"spark": SPARK, "alias_moved": True, "index": "profiles-20201117-1"},
        behind_alias=40,
        kibana_dashboard_url=None,
    )
    assert summary["evidence"] == "s3://lake/runs/run_date=2020-11-17/run=manual__x"
    assert summary["lake_profiles"] == "s3://lake/profiles/snapshot_date=2020-11-17"
    text = "\n".join(summary_lines(summary))
    assert "Customer profiles as of 2020-11-17" in text and "+7 already archived" in text


@pytest.mark.parametrize(
    "where, change, message",
    [
        ("validation", {"rows_quarantined": 4}, "rows read 105"),
        ("produced", {"delivered": 99}, "Kafka delivered 99"),
        ("spark", {"kafka_records": 101}, "Spark read 101"),
        ("spark", {"events_archived": 92}, "accounted for 99"),
        ("spark", {"distinct_users": 41}, "40 profiles for 41"),
    ],
)
def test_each_kind_of_mismatch_is_named(where, change, message):
    parts = {"validation": dict(VALIDATION), "produced": dict(PRODUCED), "spark": dict(SPARK)}
    parts[where].update(change)
    with pytest.raises(CountMismatch, match=message):
        check_counts(**parts, behind_alias=None)


def test_documents_behind_the_alias_must_equal_the_profiles():
    with pytest.raises(CountMismatch, match="39 documents behind the alias"):
        check_counts(validation=VALIDATION, produced=PRODUCED, spark=SPARK, behind_alias=39)


def test_a_superseded_publish_is_summarised_naming_the_index_and_run_serving_the_date():
    superseded = {
        "spark": SPARK,
        "alias_moved": False,
        "index": "profiles-20201117-1",
        "superseded_by": "profiles-20201117-2",
        "superseded_by_run": "manual__y",
    }
    summary = summarise(
        plan=PLAN,
        bucket="lake",
        alias="profiles",
        validation=VALIDATION,
        produced=PRODUCED,
        published=superseded,
        behind_alias=None,
        alias_now_on=["profiles-20201117-2"],
        kibana_dashboard_url=None,
    )
    assert summary["elasticsearch_alias"] is None and summary["superseded_by_run"] == "manual__y"
    text = "\n".join(summary_lines(summary))
    assert "not published: profiles-20201117-2 (run manual__y), a later build of the same snapshot date" in text
