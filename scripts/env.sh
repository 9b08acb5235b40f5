#!/usr/bin/env bash
# Source me: the environment every local command runs in (make targets, tests, the local Airflow).
# Loads .env (the same file Docker Compose reads), then adds what only the local route needs.
PROJECT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PROJECT_ROOT
set -a
# shellcheck disable=SC1091
. "$PROJECT_ROOT/.env"
set +a
export CACHE_DIR="$PROJECT_ROOT/.cache"        # downloads and builds, reused between runs
export STACK_DIR="$PROJECT_ROOT/.stack"        # runtime data, logs and pids of the local stack
export STACK_LOG_DIR="$STACK_DIR/logs"
export VENV="$CACHE_DIR/venv"
export PATH="$VENV/bin:$PATH"
# Relative paths in .env are relative to the project root.
case "$SPARK_JARS_DIR" in /*) ;; *) export SPARK_JARS_DIR="$PROJECT_ROOT/$SPARK_JARS_DIR" ;; esac
if [ -z "${JAVA_HOME:-}" ] || [ ! -x "${JAVA_HOME}/bin/java" ]; then
  for candidate in /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-arm64 /usr/lib/jvm/temurin-17-jdk-amd64; do
    [ -x "$candidate/bin/java" ] && { export JAVA_HOME="$candidate"; break; }
  done
fi
# Airflow, local route: SQLite metadata under .stack, this repo's folders, no examples.
export AIRFLOW_HOME="$STACK_DIR/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$PROJECT_ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$PROJECT_ROOT/plugins"  # as in Compose: ./plugins is Airflow's plugins folder
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export PIPELINE_DATA_DIR="${PIPELINE_DATA_DIR:-$PROJECT_ROOT/data}"
export PYSPARK_PYTHON="$VENV/bin/python"
export PYSPARK_DRIVER_PYTHON="$VENV/bin/python"
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"  # Spark 3.5 binds its web UIs (:4040, master, worker) to it, else to 0.0.0.0
