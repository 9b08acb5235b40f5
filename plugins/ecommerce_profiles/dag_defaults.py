"""What every DAG of the project shares: retries, their delay and an execution timeout per task."""

from __future__ import annotations

from datetime import timedelta

DEFAULT_ARGS = {
    "owner": "data-engineering",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    # No task of this project runs for hours; a hung one must fail and retry, not block a slot.
    "execution_timeout": timedelta(hours=2),
}
