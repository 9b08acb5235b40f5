"""Thin Airflow adapters of the monitoring DAG (checks: ecommerce_profiles.core.monitoring).

``check_pipeline_health`` reads what the checks need (is each service answering, what the
alias serves, the recent runs' reject counts from the lake), keeps the open incidents and the
last alias seen in the Airflow Variable ``MONITOR_STATE_VARIABLE``, and mails each new incident
once through the SMTP provider's ``SmtpNotifier`` (ecommerce_profiles.notifications).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from datetime import UTC, datetime
from typing import Any
from urllib.request import urlopen

from ecommerce_profiles.connections import (
    ELASTICSEARCH_CONN_ID,
    KAFKA_CONN_ID,
    LAKE_CONN_ID,
    _airflow_connection,
    kafka_config,
    lake_settings,
    pipeline_names,
)
from ecommerce_profiles.core import alerts, lake, monitoring
from ecommerce_profiles.core.profile_index import snapshot_of

log = logging.getLogger(__name__)

MONITOR_STATE_VARIABLE = "ecommerce_monitoring_state"
PROBE_TIMEOUT_SECONDS = 10


# ------------------------------------------------------------------------------ observe --
def probe_kafka(conn_id: str = KAFKA_CONN_ID) -> str | None:
    from confluent_kafka.admin import AdminClient

    try:
        config = {**kafka_config(conn_id), "socket.timeout.ms": PROBE_TIMEOUT_SECONDS * 1000}
        AdminClient(config).list_topics(timeout=PROBE_TIMEOUT_SECONDS)
    except Exception as err:  # a broker that does not answer raises KafkaException
        return alerts.error_first_line(err)
    return None


def probe_minio(conn_id: str = LAKE_CONN_ID) -> str | None:
    """MinIO's unauthenticated liveness endpoint at the connection's endpoint_url."""
    try:
        endpoint = _airflow_connection(conn_id).extra_dejson["endpoint_url"]
        with urlopen(f"{endpoint.rstrip('/')}/minio/health/live", timeout=PROBE_TIMEOUT_SECONDS) as response:
            response.read()
    except Exception as err:
        return alerts.error_first_line(err)
    return None


def elasticsearch(conn_id: str):
    from ecommerce_profiles.operators.profile_index import elasticsearch_client

    return elasticsearch_client(conn_id).options(request_timeout=PROBE_TIMEOUT_SECONDS)


def probe_elasticsearch(conn_id: str = ELASTICSEARCH_CONN_ID) -> str | None:
    try:
        elasticsearch(conn_id).cluster.health()
    except Exception as err:
        return alerts.error_first_line(err)
    return None


def observe_alias(conn_id: str, alias: str) -> monitoring.AliasObservation:
    from elasticsearch import NotFoundError

    es = elasticsearch(conn_id)
    try:
        indices = sorted(es.indices.get_alias(name=alias))
    except NotFoundError:
        return monitoring.AliasObservation(alias, None, None, None)
    index = indices[-1]
    users = int(es.count(index=alias)["count"])
    stamp = snapshot_of(index, alias)
    snapshot = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:]}" if stamp else None
    return monitoring.AliasObservation(alias, index, users, snapshot)


def observe_runs(conn_id: str, bucket: str, limit: int) -> list[monitoring.RunRejects]:
    """The last finished run of each of the newest ``limit`` run dates (runs/run_date=*/latest.json)."""
    s3 = lake_settings(conn_id).boto3_client()
    dates: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{lake.RUNS_PREFIX}/run_date=", Delimiter="/"
    ):
        dates += [p["Prefix"].rstrip("/").split("=", 1)[1] for p in page.get("CommonPrefixes", [])]
    runs = []
    for run_date in sorted(dates)[-limit:]:
        try:
            body = s3.get_object(Bucket=bucket, Key=lake.latest_run_key(run_date))["Body"].read()
        except s3.exceptions.NoSuchKey:
            continue  # a date whose runs all failed has no latest.json
        runs.append(monitoring.run_rejects_from_summary(json.loads(body)))
    return runs


# ------------------------------------------------------------------------------ state --
def load_state() -> dict[str, Any]:
    from airflow.sdk import Variable

    return Variable.get(MONITOR_STATE_VARIABLE, default={"open": {}, "alias": None}, deserialize_json=True)


def save_state(state: dict[str, Any]) -> None:
    from airflow.sdk import Variable

    Variable.set(MONITOR_STATE_VARIABLE, state, serialize_json=True)


# ------------------------------------------------------------------------------ the task --
def send_finding(finding: monitoring.Finding, context: Any) -> None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    from ecommerce_profiles.notifications import RECIPIENTS_ENV, SMTP_CONN_ID, recipients, ui_base_url

    ti = context["ti"]
    message = alerts.AlertMessage(
        kind=finding.kind,
        subject=f"{alerts.SUBJECT_PREFIX} {finding.subject}",
        lines=(
            ("DAG", ti.dag_id),
            ("Run", ti.run_id),
            ("Task", ti.task_id),
            ("Incident", finding.key),
            *finding.details,
            ("Log", alerts.task_log_url(ui_base_url(), ti.dag_id, ti.run_id, ti.task_id, ti.try_number)),
        ),
    )
    to = recipients()
    if not to:
        log.warning("Alert not sent, %s is empty: %s", RECIPIENTS_ENV, message.text)
        return
    SmtpNotifier(to=to, subject=message.subject, html_content=message.html, smtp_conn_id=SMTP_CONN_ID).notify(context)
    log.info("Sent %s alert to %s: %s", finding.kind, ", ".join(to), message.subject)


def check_pipeline_health(
    context: Any,
    *,
    kafka_conn_id: str = KAFKA_CONN_ID,
    lake_conn_id: str = LAKE_CONN_ID,
    es_conn_id: str = ELASTICSEARCH_CONN_ID,
    max_snapshot_age_days: int | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Every check; each new incident mailed once; returns what was found (the task's XCom).

    ``max_snapshot_age_days`` overrides MONITOR_MAX_SNAPSHOT_AGE_DAYS for this run."""
    now = now or datetime.now(UTC)
    settings = monitoring.settings_from_env(os.environ)
    if max_snapshot_age_days is not None:
        settings = dataclasses.replace(settings, max_snapshot_age_days=int(max_snapshot_age_days))
    names = pipeline_names()
    errors = {
        "kafka": probe_kafka(kafka_conn_id),
        "minio": probe_minio(lake_conn_id),
        "elasticsearch": probe_elasticsearch(es_conn_id),
    }
    findings = monitoring.check_services(errors)
    checked = [monitoring.SERVICE_DOWN]
    state = load_state()
    observed = None
    if errors["elasticsearch"] is None:
        observed = observe_alias(es_conn_id, names.alias)
        findings += monitoring.check_alias_age(observed, now.date(), settings.max_snapshot_age_days)
        findings += monitoring.check_alias_users(state.get("alias"), observed)
        checked += [monitoring.ALIAS_STALE, monitoring.ALIAS_SHRANK]
    if errors["minio"] is None:
        runs = observe_runs(lake_conn_id, names.bucket, settings.reject_history_runs + 1)
        findings += monitoring.check_reject_fraction(runs, settings)
        checked.append(monitoring.REJECT_SPIKE)
    update = monitoring.track_incidents(state.get("open", {}), findings, checked, now)
    for key in update.ongoing:
        log.info("Still open, already alerted: %s (since %s)", key, update.open[key]["since"])
    for key in update.resolved:
        log.info("Resolved: %s", key)
    sent: list[str] = []
    open_now: dict[str, dict[str, Any]] = dict(update.open)
    new_state: dict[str, Any] = {"open": open_now, "alias": state.get("alias")}
    if observed is not None and observed.index is not None:
        new_state["alias"] = observed.as_state()
    try:
        for finding in update.new:
            send_finding(finding, context)
            sent.append(finding.key)
    finally:
        # A mail that failed is not recorded as open: the task's retry sends it.
        unsent = {f.key for f in update.new} - set(sent)
        new_state["open"] = {k: v for k, v in open_now.items() if k not in unsent}
        if any(key.startswith(monitoring.ALIAS_SHRANK) for key in unsent):
            new_state["alias"] = state.get("alias")  # so the retry compares with the same index
        save_state(new_state)
    return {
        "services": errors,
        "alias": observed.as_state() if observed else None,
        "alerted": sent,
        "ongoing": update.ongoing,
        "resolved": update.resolved,
    }
