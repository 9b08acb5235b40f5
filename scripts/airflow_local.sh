#!/usr/bin/env bash
# make airflow: the Airflow UI, scheduler, dag-processor and triggerer against the local stack
# (`airflow standalone`), with this repo's DAGs and the connections from .env.
#
#   scripts/airflow_local.sh [start]   run it in the foreground (its output also goes to
#                                      $STACK_LOG_DIR/airflow.log); Ctrl-C stops all of it
#   scripts/airflow_local.sh stop      stop the one started from another terminal (make airflow-stop)
#
# Sized for a laptop: LocalExecutor forks `parallelism` worker processes at start (standalone's
# default of 32 is 40 processes and ~1 GB of PSS while idle); here 2 per core, at most 8
# (AIRFLOW__CORE__PARALLELISM, if you export it, wins). The API server listens on 127.0.0.1 only.
#
# Clean stop: standalone runs in a session of its own, its pid (= session id) in
# $AIRFLOW_HOME/standalone.pid. A TERM to standalone alone kills it at once and orphans every
# component; a TERM to the whole group leaves the scheduler waiting forever for LocalExecutor
# workers that ignore TERM (they inherit the scheduler's handler). Standalone's own shutdown path
# is SIGINT: it stops each component and waits for it. So `stop` sends SIGINT to standalone,
# waits up to $AIRFLOW_STOP_GRACE_SECONDS for every process of its session to end, then KILLs
# what is left of that session (a running task included).
set -euo pipefail
# shellcheck source=provision_common.sh
source "$PROJECT_ROOT/scripts/provision_common.sh"  # stack_port_in_use, stack_port_owner

pid_file="$AIRFLOW_HOME/standalone.pid"
log_file="$STACK_LOG_DIR/airflow.log"
password_file="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
grace=${AIRFLOW_STOP_GRACE_SECONDS:-30}

say() { printf '[airflow] %s\n' "$*" >&2; }

# The recorded standalone pid, if that process is alive.
running_pid() {
  local pid
  [ -s "$pid_file" ] || return 1
  pid=$(<"$pid_file")
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

# Every process in session $1 (standalone, its components, executor workers, tasks, spark-submit),
# provided one of them is Airflow's (a stale pid file must not name someone else's session).
session_pids() {
  ps -eo pid=,sid=,args= | awk -v sid="$1" '
    $2 == sid { pids = pids " " $1; if ($0 ~ /airflow/) ours = 1 }
    END { if (ours) print pids }'
}

stop_airflow() {
  local pid started=$SECONDS left
  # The session may outlive standalone itself (killed alone, or crashed): sweep it all the same.
  pid=$(cat "$pid_file" 2>/dev/null || true)
  if ! [[ "$pid" =~ ^[0-9]+$ ]] || [ -z "$(session_pids "$pid")" ]; then
    rm -f "$pid_file"
    say "not running"
    return 0
  fi
  say "stopping (standalone pid $pid)"
  kill -INT "$pid" 2>/dev/null || true
  while left=$(session_pids "$pid") && [ -n "$left" ] && [ $((SECONDS - started)) -lt "$grace" ]; do
    sleep 0.5
  done
  if [ -n "$left" ]; then
    say "still running after ${grace}s: $(wc -w <<<"$left") processes, killing them"
    # shellcheck disable=SC2086  # one pid per word
    kill -KILL $left 2>/dev/null || true
  fi
  rm -f "$pid_file"
  say "stopped after $((SECONDS - started))s"
}

start_airflow() {
  local pid cores port_owner status=0
  if pid=$(running_pid); then
    say "already running (pid $pid): http://localhost:$AIRFLOW_PORT/ (stop it with: make airflow-stop)"
    return 1
  fi
  if stack_port_in_use "$AIRFLOW_PORT"; then
    port_owner=$(stack_port_owner "$AIRFLOW_PORT")
    say "port $AIRFLOW_PORT is already taken by ${port_owner:-another process}; stop it or set AIRFLOW_PORT in .env"
    return 1
  fi
  bash "$PROJECT_ROOT/scripts/airflow_db.sh"

  cores=$(nproc 2>/dev/null || echo 2)
  export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-$((cores * 2 < 8 ? cores * 2 : 8))}"
  export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
  export AIRFLOW__API__PORT="$AIRFLOW_PORT"
  # Tasks call the Execution API; its default URL assumes port 8080 whatever the API port is.
  export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://127.0.0.1:$AIRFLOW_PORT/execution/}"
  # One API server process on SQLite shares the laptop with Spark and the stack: under load its
  # answers to a starting task can take longer than the default 5 s, and the task is then killed
  # before its first line ("Executor reported ... failed, but the task instance's state is queued").
  export AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT="${AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT:-30}"
  # SQLite (the default here): writers wait up to 20 s for each other instead of Python's 5 s,
  # after which a UI action failed with HTTP 500 "database is locked" (ecommerce_profiles/local_airflow.py).
  if [ -z "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-}" ]; then
    export AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS:-ecommerce_profiles.local_airflow.SQLITE_CONNECT_ARGS}"
  fi

  mkdir -p "$STACK_LOG_DIR"
  printf '\n===== %s starting airflow standalone =====\n' "$(date -u +%FT%TZ)" >>"$log_file"
  # Not a job-control shell: the child is no group leader, so setsid execs in place and $! is
  # standalone's pid, its process group and its session; a Ctrl-C in the terminal reaches only
  # this script, which then stops it the clean way. A non-interactive shell starts background
  # commands with SIGINT ignored, and Python then never raises KeyboardInterrupt, i.e. standalone
  # would ignore the SIGINT that stops it: `env --default-signal=INT` restores it.
  setsid env --default-signal=INT airflow standalone >>"$log_file" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$pid_file"
  trap 'stop_airflow; exit 130' INT TERM HUP
  say "starting with parallelism $AIRFLOW__CORE__PARALLELISM (pid $pid, log $log_file)"
  tail -n 0 -f --pid="$pid" "$log_file" &

  # Sign-in details once the API answers.
  until curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "UI: http://localhost:$AIRFLOW_PORT/  user: admin  password: $(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["admin"])' "$password_file" 2>/dev/null || echo "see $password_file")"
    say "(the password is kept in $password_file; Ctrl-C or make airflow-stop stops Airflow)"
  fi
  wait "$pid" || status=$?
  # standalone ended on its own (a component failed to start, ...): leave nothing behind.
  say "standalone exited with status $status"
  stop_airflow
  return "$status"
}

case "${1:-start}" in
  start) start_airflow ;;
  stop) stop_airflow ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
