"""ValidateEventsOperator: the validation core on the run's input, evidence into the lake."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.exceptions import AirflowException
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.sdk import BaseOperator

from ecommerce_profiles.connections import LAKE_CONN_ID, pipeline_names
from ecommerce_profiles.core import lake
from ecommerce_profiles.core.inputs import InputError, resolve_input_files
from ecommerce_profiles.core.paths import data_dir
from ecommerce_profiles.core.validation import (
    DEFAULT_MAX_REJECT_FRACTION,
    STAGING_FILE_NAME,
    HeaderError,
    reject_threshold_problem,
    validate_files,
)


class ValidateEventsOperator(BaseOperator):
    """Validate the run's input, stage accepted events, keep quarantine + report as run evidence.

    :param input_target: the one-shot file or the daily drop folder, already confined to the
        data directory by ``plan_run`` (templated; re-checked here).
    :param staging_dir: local folder for the producer's ``messages.tsv`` (templated).
    :param evidence_prefix: the run's own prefix in the bucket (``lake.run_evidence_prefix``);
        the quarantine CSV and the report go there, so two runs never overwrite each other.
    :param max_reject_fraction: fail when invalid rows / rows read exceeds it (duplicates are
        exempt); the evidence is uploaded before failing.
    :param max_event_time: latest accepted event time, ISO-8601 (templated; default now + 1 day).
    """

    template_fields: Sequence[str] = (
        "input_target",
        "staging_dir",
        "evidence_prefix",
        "bucket",
        "max_reject_fraction",
        "max_event_time",
    )

    def __init__(
        self,
        *,
        input_target: str,
        staging_dir: str,
        evidence_prefix: str,
        bucket: str | None = None,
        lake_conn_id: str = LAKE_CONN_ID,
        max_reject_fraction: float | str = DEFAULT_MAX_REJECT_FRACTION,
        max_event_time: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_target, self.staging_dir, self.evidence_prefix = input_target, staging_dir, evidence_prefix
        self.bucket, self.lake_conn_id = bucket, lake_conn_id
        self.max_reject_fraction, self.max_event_time = max_reject_fraction, max_event_time

    def execute(self, context: Any) -> dict[str, Any]:
        bucket = self.bucket or pipeline_names().bucket
        try:
            files = resolve_input_files(Path(self.input_target), data_dir())
        except InputError as err:
            raise AirflowException(str(err)) from err
        staging = Path(self.staging_dir)
        self.log.info("Validating %d file(s): %s", len(files), ", ".join(map(str, files)))
        max_event_time = datetime.fromisoformat(str(self.max_event_time)) if self.max_event_time else None
        try:
            result = validate_files(
                files, staging / STAGING_FILE_NAME, staging / lake.QUARANTINE_FILE, max_event_time=max_event_time
            )
        except HeaderError as err:
            raise AirflowException(str(err)) from err

        max_fraction = float(self.max_reject_fraction)
        quarantine_key = f"{self.evidence_prefix}/{lake.QUARANTINE_FILE}"
        report_key = f"{self.evidence_prefix}/{lake.VALIDATION_REPORT_FILE}"
        problem = reject_threshold_problem(result, max_fraction)
        report = result.report(
            status="failed" if problem else "passed",
            failure=problem,
            max_reject_fraction=max_fraction,
            quarantine_uri=lake.s3_uri(bucket, quarantine_key),
        )
        s3 = S3Hook(aws_conn_id=self.lake_conn_id)
        s3.load_file(result.quarantine_path, key=quarantine_key, bucket_name=bucket, replace=True)
        s3.load_string(json.dumps(report, indent=2), key=report_key, bucket_name=bucket, replace=True)
        self.log.info(
            "Read %d rows in %.1fs: %d accepted, %d quarantined %s -> %s",
            result.rows_read,
            result.seconds,
            result.rows_accepted,
            result.rows_quarantined,
            {r: n for r, n in result.rejects_by_rule.items() if n},
            lake.s3_uri(bucket, quarantine_key),
        )
        if problem:
            raise AirflowException(problem)
        return {
            "files": result.files,
            "rows_read": result.rows_read,
            "rows_accepted": result.rows_accepted,
            "rows_quarantined": result.rows_quarantined,
            "rejects_by_rule": result.rejects_by_rule,
            "staging_path": result.staging_path,
            "min_event_date": result.min_event_date,
            "max_event_date": result.max_event_date,
            "distinct_event_dates": len(result.events_by_date),
            "quarantine_uri": lake.s3_uri(bucket, quarantine_key),
            "report_uri": lake.s3_uri(bucket, report_key),
        }
