#!/usr/bin/env bash
# The local stack without Docker: the same real services as docker-compose.yaml, run as plain
# processes on this machine.
#
#   scripts/stack.sh up|status|down|clean|provision [service...]
#
#   provision  download/build every service into .cache (a fast no-op when already there)
#   up         provision, start every service that is not answering yet, wait until healthy,
#              then run its post-start step (topic, bucket, ...); a second `up` only re-checks
#   status     one line per service: name, up/down, URL; exits non-zero if any is down
#   down       stop the services (TERM, then KILL after a grace period), remove the pid files
#   clean      down, then delete the runtime data and logs under .stack (keeps .cache)
#
# Services (start order): kafka minio elasticsearch esproxy mailpit spark. mailpit receives the
# alert mails (SMTP + web UI, docs/operations.md). esproxy is nginx demanding
# basic auth in front of elasticsearch (the pipeline's authenticated endpoint). spark, a standalone cluster, is opt-in:
# a bare `up` starts it only with SPARK=cluster (make stack-up SPARK=cluster), a bare `status`
# lists it only while it has a pid file; `down`/`clean` cover it. Each is scripts/services/<name>.sh, which
# defines <name>_provision, _start, _healthy, _url and optionally _post_start, _health_timeout
# and _ports (ports that must be free before a start).
#
# As with Docker Compose, variables already exported by the caller win over .env, and so does
# STACK_DIR: `KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093 STACK_DIR=/tmp/s scripts/stack.sh up kafka`
# runs a second broker beside the first.
set -euo pipefail

ALL_SERVICES=(kafka minio elasticsearch esproxy mailpit spark)
STOP_GRACE_SECONDS=30
DEFAULT_HEALTH_TIMEOUT=60

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Remember the caller's values of the .env variables (and STACK_DIR) before env.sh loads .env.
declare -A caller_env=()
for key in $(sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' "$script_dir/../.env") STACK_DIR; do
  if [ -n "${!key+set}" ]; then caller_env[$key]=${!key}; fi
done
# shellcheck source=env.sh
source "$script_dir/env.sh"
for key in "${!caller_env[@]}"; do export "$key=${caller_env[$key]}"; done
export STACK_LOG_DIR="$STACK_DIR/logs"

eval "$("$script_dir/versions.sh")"
# shellcheck source=provision_common.sh
source "$script_dir/provision_common.sh"

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ $# -ge 1 ] || usage
command=$1; shift
services=("$@")
[ ${#services[@]} -gt 0 ] || services=("${ALL_SERVICES[@]}")
if [ $# -eq 0 ] && [ "${SPARK:-}" != cluster ] && { [ "$command" = up ] || { [ "$command" = status ] && [ ! -s "$STACK_DIR/pids/spark.pid" ]; }; }; then
  mapfile -t services < <(printf '%s\n' "${services[@]}" | grep -vx spark)
fi
for service in "${services[@]}"; do
  [[ " ${ALL_SERVICES[*]} " == *" $service "* ]] || { stack_fail "unknown service '$service' (known: ${ALL_SERVICES[*]})"; exit 2; }
  service_file="$script_dir/services/$service.sh"
  [ -f "$service_file" ] || { stack_fail "$service: $service_file is missing"; exit 1; }
  # shellcheck source=/dev/null
  source "$service_file"
done

has_function() { declare -F "$1" >/dev/null; }

print_log_tail() {
  local log_file
  log_file=$(stack_log_file "$1")
  if [ -s "$log_file" ]; then
    printf '[stack] ----- last 30 lines of %s -----\n' "$log_file" >&2
    tail -n 30 "$log_file" >&2
    printf '[stack] -----\n' >&2
  else
    printf '[stack] (%s has no log at %s)\n' "$1" "$log_file" >&2
  fi
}

# Stop one service: TERM to its whole process group, wait, then KILL what is left.
stop_service() {
  local name=$1 pid pid_file waited=0
  pid_file=$(stack_pid_file "$name")
  if pid=$(stack_running_pid "$name"); then
    stack_say "$name: stopping (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt "$STOP_GRACE_SECONDS" ]; do
      sleep 1; waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      stack_say "$name: still running after ${STOP_GRACE_SECONDS}s, killing it"
    fi
    # Also sweeps up any child left in the group after the main process exited.
    kill -KILL -- "-$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    stack_say "$name: stopped"
  fi
  rm -f "$pid_file"
}

# Why a service cannot start: a port held by a process that is not this service.
busy_port() {
  local name=$1 port
  has_function "${name}_ports" || return 1
  for port in $("${name}_ports"); do
    if stack_port_in_use "$port"; then printf '%s\n' "$port"; return 0; fi
  done
  return 1
}

fail_service() {
  local name=$1; shift
  stack_fail "$name ($("${name}_url")): $*"
  print_log_tail "$name"
}

declare -A answering=()   # services found healthy before `up` started anything

# Start one service if it is not answering yet. Returns 1 with a message when it cannot.
start_service() {
  local name=$1 port pid owner
  if "${name}_healthy"; then
    answering[$name]=1
    if pid=$(stack_running_pid "$name"); then
      stack_say "$name: already up at $("${name}_url") (pid $pid)"
    else
      stack_say "$name: already answering at $("${name}_url") (not started by this stack)"
    fi
    return 0
  fi
  if pid=$(stack_running_pid "$name"); then
    stack_say "$name: process $pid is running but not healthy yet, waiting for it"
    return 0
  fi
  if port=$(busy_port "$name"); then
    owner=$(stack_port_owner "$port")
    fail_service "$name" "port $port is already taken by ${owner:-another process}; stop it or set another port in .env"
    return 1
  fi
  stack_say "$name: starting"
  "${name}_start" || { fail_service "$name" "start command failed"; return 1; }
}

# Wait until a started service answers its health check, its process dies, or time runs out.
wait_healthy() {
  local name=$1 timeout=$DEFAULT_HEALTH_TIMEOUT started=$SECONDS pid
  [ -n "${answering[$name]+set}" ] && return 0
  has_function "${name}_health_timeout" && timeout=$("${name}_health_timeout")
  until "${name}_healthy"; do
    if ! pid=$(stack_running_pid "$name"); then
      fail_service "$name" "its process exited before it became healthy"
      return 1
    fi
    if [ $((SECONDS - started)) -ge "$timeout" ]; then
      fail_service "$name" "not healthy after ${timeout}s; stopping it"
      stop_service "$name"
      return 1
    fi
    sleep 1
  done
  stack_say "$name: up at $("${name}_url") after $((SECONDS - started))s"
}

cmd_provision() {
  local name
  for name in "${services[@]}"; do
    "${name}_provision" || { stack_fail "$name: provisioning failed"; return 1; }
  done
}

cmd_up() {
  local name failed=() startable=()
  cmd_provision
  mkdir -p "$STACK_DIR/data" "$STACK_DIR/pids" "$STACK_LOG_DIR"
  # Start them all first, then wait: the JVMs boot side by side.
  for name in "${services[@]}"; do
    if start_service "$name"; then startable+=("$name"); else failed+=("$name"); fi
  done
  for name in "${startable[@]}"; do
    if ! wait_healthy "$name"; then failed+=("$name"); continue; fi
    if has_function "${name}_post_start" && ! "${name}_post_start"; then
      fail_service "$name" "post-start step failed"
      failed+=("$name")
    fi
  done
  if [ ${#failed[@]} -gt 0 ]; then
    stack_fail "not up: ${failed[*]} (logs in $STACK_LOG_DIR)"
    return 1
  fi
  stack_say "up: ${services[*]}"
}

cmd_status() {
  local name state down=0
  for name in "${services[@]}"; do
    if "${name}_healthy"; then state=up; else state=down; down=1; fi
    printf '%-14s %-5s %s\n' "$name" "$state" "$("${name}_url")"
  done
  return "$down"
}

cmd_down() {
  local index
  # Reverse start order: consumers of a service go before it.
  for ((index = ${#services[@]} - 1; index >= 0; index--)); do
    stop_service "${services[index]}"
  done
}

cmd_clean() {
  local name
  cmd_down
  if [ ${#services[@]} -eq ${#ALL_SERVICES[@]} ]; then
    rm -rf "$STACK_DIR/data" "$STACK_LOG_DIR"
  else
    for name in "${services[@]}"; do
      rm -rf "$(stack_data_dir "$name")" "$(stack_log_file "$name")"
    done
  fi
  stack_say "removed runtime data and logs of: ${services[*]}"
}

# Several test sessions may run `up` at once: one stack.sh at a time changes the stack (the
# others wait, then find it up). stack_spawn closes this descriptor for the services.
take_lock() {
  mkdir -p "$STACK_DIR"
  exec {STACK_LOCK_FD}>"$STACK_DIR/stack.lock"
  if ! flock -n "$STACK_LOCK_FD"; then
    stack_say "waiting for another scripts/stack.sh to finish"
    flock "$STACK_LOCK_FD"
  fi
}

case "$command" in
  provision | up | down | clean) take_lock ;;
esac
case "$command" in
  provision) cmd_provision ;;
  up) cmd_up ;;
  status) cmd_status ;;
  down) cmd_down ;;
  clean) cmd_clean ;;
  -h | --help | help) usage ;;
  *) stack_fail "unknown command '$command'"; usage ;;
esac
