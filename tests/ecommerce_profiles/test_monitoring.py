"""The monitoring DAG's checks (core.monitoring) and its once-per-incident rule."""

from __future__ import annotations

from datetime import UTC, date, datetime

from ecommerce_profiles.core import monitoring as m

NOW = datetime(2026, 12, 6, 10, tzinfo=UTC)


def test_services_that_do_not_answer_are_findings():
    findings = m.check_services({"kafka": "KafkaException: timed out", "minio": None, "elasticsearch": None})
    assert [f.key for f in findings] == ["service_down:kafka"]
    assert findings[0].subject == "Kafka does not answer"


def test_an_old_or_missing_snapshot_is_stale():
    fresh = m.AliasObservation("p", "p-20261205-1", 10, "2026-12-05")
    old = m.AliasObservation("p", "p-20261201-1", 10, "2026-12-01")
    assert m.check_alias_age(fresh, date(2026, 12, 6), 2) == []
    [stale] = m.check_alias_age(old, date(2026, 12, 6), 2)
    assert stale.key == "alias_stale:p:p-20261201-1" and "5 days old" in stale.subject
    [missing] = m.check_alias_age(m.AliasObservation("p", None, None, None), date(2026, 12, 6), 2)
    assert missing.key == "alias_stale:p:(none)"


def test_a_publish_with_fewer_users_names_both_counts_and_indices():
    before = {"index": "p-20261204-1", "users": 4504}
    [shrank] = m.check_alias_users(before, m.AliasObservation("p", "p-20261205-2", 2594, "2026-12-05"))
    assert "4,504 in p-20261204-1 -> 2,594 in p-20261205-2" in shrank.subject
    assert m.check_alias_users(before, m.AliasObservation("p", "p-20261205-2", 4600, "2026-12-05")) == []
    assert m.check_alias_users(before, m.AliasObservation("p", "p-20261204-1", 10, "2026-12-04")) == []
    assert m.check_alias_users(None, m.AliasObservation("p", "p-20261205-2", 1, "2026-12-05")) == []


def runs(*fractions):
    return [m.RunRejects(f"2026-11-{day:02d}", f"run{day}", 1000, int(f * 1000)) for day, f in enumerate(fractions, 1)]


def test_a_reject_fraction_far_above_the_median_is_a_spike():
    settings = m.MonitorSettings()
    [spike] = m.check_reject_fraction(runs(0.01, 0.012, 0.009, 0.05), settings)
    assert spike.key == "reject_spike:run4" and "5.00%" in spike.subject and "1.00%" in spike.subject
    assert m.check_reject_fraction(runs(0.01, 0.012, 0.009, 0.02), settings) == []
    assert m.check_reject_fraction(runs(0.01, 0.05), settings) == []  # too little history
    assert m.check_reject_fraction(runs(0, 0, 0, 0.001), settings) == []  # the floor


def test_each_incident_mails_once_and_a_return_is_a_new_incident():
    down = m.check_services({"kafka": "down"})
    first = m.track_incidents({}, down, [m.SERVICE_DOWN], NOW)
    assert [f.key for f in first.new] == ["service_down:kafka"]
    second = m.track_incidents(first.open, down, [m.SERVICE_DOWN], NOW)
    assert second.new == [] and second.ongoing == ["service_down:kafka"]
    back = m.track_incidents(second.open, [], [m.SERVICE_DOWN], NOW)
    assert back.resolved == ["service_down:kafka"] and back.open == {}
    assert [f.key for f in m.track_incidents(back.open, down, [m.SERVICE_DOWN], NOW).new] == ["service_down:kafka"]


def test_an_incident_of_a_check_that_could_not_look_stays_open():
    stale = m.check_alias_age(m.AliasObservation("p", None, None, None), date(2026, 12, 6), 2)
    opened = m.track_incidents({}, stale, [m.ALIAS_STALE], NOW)
    kept = m.track_incidents(opened.open, [], [m.SERVICE_DOWN], NOW)  # Elasticsearch down: no alias check
    assert kept.resolved == [] and "alias_stale:p:(none)" in kept.open


def test_settings_come_from_the_environment():
    settings = m.settings_from_env({"MONITOR_MAX_SNAPSHOT_AGE_DAYS": "5", "MONITOR_REJECT_SPIKE_FACTOR": "4"})
    assert settings.max_snapshot_age_days == 5 and settings.reject_spike_factor == 4.0
