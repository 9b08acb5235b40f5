"""What every DAG of the project shares: retries, their delay, an execution timeout per task, and
the alert mail of a task that failed its last try (ecommerce_profiles.notifications).

PIPELINE_RETRY_DELAY_SECONDS (default 60) sets the delay between tries (tests shorten it)."""

from __future__ import annotations

import os
from datetime import timedelta

from ecommerce_profiles.notifications import task_failure_notifier

DEFAULT_ARGS = {
    "owner": "data-engineering",
    "retries": 2,
    "retry_delay": timedelta(seconds=float(os.environ.get("PIPELINE_RETRY_DELAY_SECONDS") or 60)),
    # Runs once the task has no try left (a retry calls on_retry_callback instead).
    "on_failure_callback": [task_failure_notifier()],
    # No task of this project runs for hours; a hung one must fail and retry, not block a slot.
    "execution_timeout": timedelta(hours=2),
}
