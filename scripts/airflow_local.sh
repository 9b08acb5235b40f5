#!/usr/bin/env bash
# make airflow: the Airflow UI, scheduler, dag-processor and triggerer against the local stack
# (`airflow standalone`), with this repo's DAGs and the connections from .env.
set -euo pipefail
bash "$PROJECT_ROOT/scripts/airflow_db.sh"
export AIRFLOW__API__PORT="$AIRFLOW_PORT"
# standalone creates an `admin` user and prints its generated password; it is also saved here:
echo "Airflow UI: http://localhost:$AIRFLOW_PORT/ (user admin, password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)"
exec airflow standalone
