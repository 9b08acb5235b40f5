#!/usr/bin/env bash
# Source me (scripts/stack.sh does): small helpers shared by scripts/services/<name>.sh.
# Everything here works on paths under $CACHE_DIR and $STACK_DIR, which scripts/env.sh sets.

# A progress line on stderr, so functions that echo a value (<name>_url) stay clean.
stack_say() { printf '[stack] %s\n' "$*" >&2; }

stack_fail() { printf '[stack] ERROR: %s\n' "$*" >&2; return 1; }

stack_pid_file() { printf '%s/pids/%s.pid\n' "$STACK_DIR" "$1"; }
stack_log_file() { printf '%s/%s.log\n' "$STACK_LOG_DIR" "$1"; }
stack_data_dir() { printf '%s/data/%s\n' "$STACK_DIR" "$1"; }

# The pid recorded for a service, if that process is still alive.
stack_running_pid() {
  local pid_file pid
  pid_file=$(stack_pid_file "$1")
  [ -s "$pid_file" ] || return 1
  pid=$(<"$pid_file")
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

# True when something accepts TCP connections on 127.0.0.1:$1.
stack_port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Who listens on 127.0.0.1:$1, e.g. `java (pid 123)`, when `ss` can tell; nothing otherwise.
stack_port_owner() {
  command -v ss >/dev/null || return 0
  ss -ltnpH "sport = :$1" 2>/dev/null \
    | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 (pid \2)/p' | head -n 1
}

# Start a service command in the background, detached in its own session and process group
# (so `down` can signal the whole group and a Ctrl-C elsewhere does not reach it), with its
# output appended to the service log and its pid in the pid file.
# Usage: stack_spawn <name> <command> [args...]
stack_spawn() {
  local name=$1; shift
  local log_file pid_file
  log_file=$(stack_log_file "$name")
  pid_file=$(stack_pid_file "$name")
  mkdir -p "$(dirname "$log_file")" "$(dirname "$pid_file")"
  printf '\n===== %s starting %s =====\n' "$(date -u +%FT%TZ)" "$name" >>"$log_file"
  # Not a job-control shell, so the child is not a group leader and setsid execs in place:
  # $! is the service's own pid.
  # The service must not inherit stack.sh's lock (it would hold it for its whole life).
  if [ -n "${STACK_LOCK_FD:-}" ]; then
    setsid "$@" >>"$log_file" 2>&1 </dev/null {STACK_LOCK_FD}>&- &
  else
    setsid "$@" >>"$log_file" 2>&1 </dev/null &
  fi
  printf '%s\n' "$!" >"$pid_file"
}

# Download one Maven artifact with its runtime dependencies into a folder of jars.
# Usage: stack_maven_copy_dependencies <work dir> <output dir> <group:artifact:version>...
# Uses a generated throw-away pom so only Maven Central and the local ~/.m2 repository are involved.
stack_maven_copy_dependencies() {
  local work_dir=$1 out_dir=$2; shift 2
  local deps="" coordinate group artifact version
  for coordinate in "$@"; do
    IFS=: read -r group artifact version <<<"$coordinate"
    deps+="<dependency><groupId>$group</groupId><artifactId>$artifact</artifactId><version>$version</version></dependency>"
  done
  mkdir -p "$work_dir" "$out_dir"
  cat >"$work_dir/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.stack</groupId>
  <artifactId>$(basename "$work_dir")</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>$deps</dependencies>
</project>
EOF
  mvn -B -q -f "$work_dir/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$out_dir" >"$work_dir/mvn.log" 2>&1 || {
    tail -n 30 "$work_dir/mvn.log" >&2
    stack_fail "maven could not resolve $* (full log: $work_dir/mvn.log)"
  }
}

# stack_go_install <name> <module@version> <binary path> <how long, for the message>
# Builds a Go program from the Go module proxy into the directory of <binary path> (a no-op when
# it is there). Module and build caches live in $CACHE_DIR/<name>, so a rebuild after a version
# bump only downloads and compiles what changed; CGO off, reproducible paths. GOTOOLCHAIN=local:
# never fetch another Go by surprise (a caller may still export GOTOOLCHAIN to pick one).
stack_go_install() {
  local name=$1 module=$2 binary=$3 duration=$4
  local cache="$CACHE_DIR/$name"
  [ -x "$binary" ] && return 0
  mkdir -p "$(dirname "$binary")" "$cache"
  stack_say "$name: building $module with $(go env GOVERSION) ($duration on 2 cores; cached in $cache)"
  (
    export GOPATH="$cache/gopath" GOMODCACHE="$cache/gopath/pkg/mod" GOCACHE="$cache/gocache"
    export GOBIN
    GOBIN=$(dirname "$binary")
    export CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOFLAGS=-buildvcs=false
    go install -trimpath -ldflags "-s -w" "$module"
  ) >"$cache/build.log" 2>&1 || {
    tail -n 30 "$cache/build.log" >&2
    stack_fail "$name: go install failed (full log: $cache/build.log)"
    return 1
  }
}
