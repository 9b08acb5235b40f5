#!/usr/bin/env bash
# Prepare the local Airflow metadata database (SQLite under .stack/airflow); fast when current.
set -euo pipefail
mkdir -p "$AIRFLOW_HOME"
marker="$AIRFLOW_HOME/.migrated-$(airflow version 2>/dev/null)"
if [ ! -f "$marker" ]; then
  echo "Preparing the Airflow database in $AIRFLOW_HOME ..."
  airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || { tail -30 "$AIRFLOW_HOME/db-migrate.log"; exit 1; }
  touch "$marker"
fi
