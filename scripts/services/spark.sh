#!/usr/bin/env bash
# Source me (scripts/stack.sh does): a Spark standalone cluster, one master and one worker, like
# the Compose stack's spark-master/spark-worker, run from the pyspark distribution in the venv
# (its bin/spark-class; no separate Spark download). Opt-in: a bare `scripts/stack.sh up` does not
# start it; `scripts/stack.sh up spark` or `make stack-up SPARK=cluster` does.
#
# Submit to it in client mode: spark-submit --master spark://127.0.0.1:$SPARK_MASTER_PORT, with the
# connector jars in spark.jars (ecommerce_profiles.spark_submit_conf.job_conf does that for a
# non-local master): the driver serves them to the executors, as it does for the Compose workers.
# Executors call the driver back on its spark.driver.host (127.0.0.1 here, from SPARK_LOCAL_IP).
#
# Everything listens on 127.0.0.1: RPC by --host, the web UIs by SPARK_LOCAL_IP (Spark 3.5 binds
# them there, else on 0.0.0.0). Master UI $SPARK_MASTER_UI_PORT, worker UI $SPARK_WORKER_UI_PORT
# (the Compose host ports). Both daemons run under one small supervisor shell (the service's pid):
# if either JVM exits, the supervisor stops the other and exits, so `up` and `status` see it down.
#
# Needs: SPARK_WORKER_CORES, SPARK_WORKER_MEMORY, SPARK_MASTER_UI_PORT, SPARK_WORKER_UI_PORT (.env),
# optionally SPARK_MASTER_PORT (default 7077) and SPARK_DAEMON_MEMORY (default 512m, as in Compose);
# VENV and JAVA_HOME (scripts/env.sh), the helpers of scripts/provision_common.sh.

spark_master_port() { printf '%s\n' "${SPARK_MASTER_PORT:-7077}"; }

# The pyspark package is a complete Spark distribution (bin/, jars/).
spark_home() {
  local dir
  for dir in "$VENV"/lib/python3*/site-packages/pyspark; do
    [ -x "$dir/bin/spark-class" ] && { printf '%s\n' "$dir"; return 0; }
  done
  return 1
}

spark_provision() {
  spark_home >/dev/null || { stack_fail "spark: pyspark is not installed in $VENV (make venv)"; return 1; }
  [ -x "$JAVA_HOME/bin/java" ] || { stack_fail "spark: no Java in JAVA_HOME=$JAVA_HOME"; return 1; }
}

spark_url() { printf 'spark://127.0.0.1:%s\n' "$(spark_master_port)"; }

spark_ports() { printf '%s\n' "$(spark_master_port)" "$SPARK_MASTER_UI_PORT" "$SPARK_WORKER_UI_PORT"; }

spark_health_timeout() { printf '90\n'; }

# Healthy = the master is ALIVE and a worker with cores has registered with it.
spark_healthy() {
  curl -fsS --max-time 2 "http://127.0.0.1:${SPARK_MASTER_UI_PORT}/json/" 2>/dev/null | python -c '
import json, sys
state = json.load(sys.stdin)
workers = [w for w in state.get("workers", []) if w.get("state") == "ALIVE" and w.get("cores", 0) > 0]
sys.exit(0 if state.get("status") == "ALIVE" and workers else 1)' 2>/dev/null
}

# The supervisor: master first, the worker once the master listens (it then registers at once
# instead of backing off), then wait. TERM/INT (stack.sh down signals the whole group, JVMs
# included) make it wait for both JVMs, so `down` sees the service gone only when they are.
_spark_supervisor() {
  cat <<'SH'
master_port=$1 master_ui=$2 worker_ui=$3 cores=$4 memory=$5 work_dir=$6
trap 'kill -TERM $pids 2>/dev/null; wait; exit 143' TERM INT
"$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master \
  --host 127.0.0.1 --port "$master_port" --webui-port "$master_ui" &
pids=$!
until (exec 3<>"/dev/tcp/127.0.0.1/$master_port") 2>/dev/null; do
  kill -0 "$pids" 2>/dev/null || exit 1
  sleep 0.5
done
"$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker \
  --host 127.0.0.1 --webui-port "$worker_ui" --cores "$cores" --memory "$memory" \
  --work-dir "$work_dir" "spark://127.0.0.1:$master_port" &
pids="$pids $!"
wait -n
status=$?
echo "[spark supervisor] a Spark daemon exited (status $status): stopping the other" >&2
kill -TERM $pids 2>/dev/null
wait
exit "$status"
SH
}

spark_start() {
  local home data_dir
  home=$(spark_home) || { stack_fail "spark: not provisioned"; return 1; }
  # Executors' working dirs (their stdout/stderr and the jars they fetched) and scratch space;
  # `stack.sh clean spark` deletes both. Finished applications' dirs go after an hour.
  data_dir=$(stack_data_dir spark)
  mkdir -p "$data_dir/work" "$data_dir/local"
  # The worker's own clean-up only runs while it is up, so the folders of applications from
  # earlier starts stay (each holds a copy of the connector jars, ~280 MB: 22 of them filled
  # 6 GB here). No application runs before the master starts: they all go.
  rm -rf "$data_dir/work"/app-* "$data_dir/work"/driver-*
  SPARK_HOME="$home" SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_DIRS="$data_dir/local" \
    SPARK_DAEMON_MEMORY="${SPARK_DAEMON_MEMORY:-512m}" \
    SPARK_WORKER_OPTS="-Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.interval=600 -Dspark.worker.cleanup.appDataTtl=3600" \
    stack_spawn spark bash -c "$(_spark_supervisor)" spark-supervisor \
    "$(spark_master_port)" "$SPARK_MASTER_UI_PORT" "$SPARK_WORKER_UI_PORT" \
    "$SPARK_WORKER_CORES" "$SPARK_WORKER_MEMORY" "$data_dir/work"
}
