"""Settings of the local route's Airflow (scripts/airflow_local.sh, `make airflow`), which keeps
its metadata in SQLite; Compose uses PostgreSQL and none of this.

SQLite lets one writer in at a time and makes the others wait ``timeout`` seconds (Python's
default: 5) before "database is locked". With the scheduler, the API server and running tasks
writing at once on a loaded laptop, 5 s was too short: a user's unpause in the UI (PATCH
/api/v2/dags/<id>) failed with HTTP 500 after exactly 5 s. Airflow reads this dict through
``[database] sql_alchemy_connect_args`` (an import path).
"""

from __future__ import annotations

SQLITE_CONNECT_ARGS: dict[str, object] = {"timeout": 20}
