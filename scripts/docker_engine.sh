#!/usr/bin/env bash
# A Docker engine for the Compose stack on a machine that has none ready (no systemd, no Compose
# or buildx plugin, no reachable container registry). Where `docker info`, `docker compose` and
# `docker buildx` already work, every step below is a no-op and nothing is installed or started.
#
#   scripts/docker_engine.sh ensure       install (Debian's docker.io), start dockerd, plugins
#   scripts/docker_engine.sh install      only the docker.io package, when dockerd/docker is missing
#   scripts/docker_engine.sh engine       only: start dockerd in the background unless an engine answers
#   scripts/docker_engine.sh plugins      only: the compose and buildx CLI plugins, when missing
#   scripts/docker_engine.sh base-image   ensure, then a Debian bookworm image made with debootstrap
#                                         (cached tarball); prints its name on stdout
#   scripts/docker_engine.sh stop         stop dockerd if this project started it (else nothing)
#   scripts/docker_engine.sh status       engine, who started it, plugin versions, base image
#
# * docker.io comes from Debian's packages: installed with apt-get when run as root, otherwise
#   the exact command is printed and the script exits 1.
# * dockerd runs detached (setsid), log .stack/docker/dockerd.log, pid .stack/docker/dockerd.pid;
#   that pid file is the mark that the project started it, so `stop` (make stop STACK=compose)
#   stops only an engine it started.
# * The plugins are built from the Go module proxy at DOCKER_COMPOSE_VERSION / DOCKER_BUILDX_VERSION
#   (docs/versions.md) into .cache/docker-cli-plugins, then copied into
#   ${DOCKER_CONFIG:-~/.docker}/cli-plugins, where the docker CLI looks for them.
# * The base image (BASE_IMAGE below) is `debootstrap --variant=minbase bookworm` plus
#   ca-certificates, with this machine's extra CA files (/usr/local/share/ca-certificates/*.crt)
#   copied in first, so every image built from it trusts what this machine trusts (pip, Maven, Go
#   behind a TLS-inspecting proxy). The root filesystem is cached as .cache/docker-base/*.tar.gz.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
eval "$("$here/versions.sh")"
: "${DOCKER_COMPOSE_VERSION:?add the DOCKER_COMPOSE_VERSION row to docs/versions.md}"
: "${DOCKER_BUILDX_VERSION:?add the DOCKER_BUILDX_VERSION row to docs/versions.md}"

CACHE_DIR=${CACHE_DIR:-$root/.cache}
STACK_DIR=${STACK_DIR:-$root/.stack}
engine_dir="$STACK_DIR/docker"
pid_file="$engine_dir/dockerd.pid"
log_file="$engine_dir/dockerd.log"
plugin_cache="$CACHE_DIR/docker-cli-plugins"
plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
base_cache="$CACHE_DIR/docker-base"
BASE_SUITE=bookworm
BASE_IMAGE=${BASE_IMAGE:-ecommerce-profiles/debian:bookworm}
ENGINE_START_TIMEOUT=${ENGINE_START_TIMEOUT:-60}

log() { printf '[docker-engine] %s\n' "$*" >&2; }
die() { printf '[docker-engine] ERROR: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }
engine_answers() { command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; }

# The dockerd this project started, if it is still alive.
our_dockerd_pid() {
  local pid
  [ -s "$pid_file" ] || return 1
  pid=$(<"$pid_file")
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

# One engine change at a time (several make targets or test sessions may call ensure at once).
take_lock() {
  mkdir -p "$engine_dir"
  exec {lock_fd}>"$engine_dir/engine.lock"
  flock "$lock_fd"
}

cmd_install() {
  local missing=()
  command -v docker >/dev/null || missing+=(docker.io)
  # Only the daemon is needed when another engine answers (e.g. a remote DOCKER_HOST).
  if ! command -v dockerd >/dev/null && ! engine_answers; then missing+=(docker.io); fi
  [ ${#missing[@]} -eq 0 ] && return 0
  if is_root && command -v apt-get >/dev/null; then
    log "installing Debian's docker.io (dockerd, containerd, runc, docker CLI)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >&2
  else
    log "no Docker engine here. Install Debian's one as root, then run this again:"
    log "  sudo apt-get update && sudo apt-get install -y docker.io"
    exit 1
  fi
}

cmd_engine() {
  local pid waited=0
  engine_answers && { log "engine: answering ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"; return 0; }
  command -v dockerd >/dev/null || cmd_install
  if pid=$(our_dockerd_pid); then
    log "engine: dockerd (pid $pid) started earlier is not answering yet; waiting"
  else
    if ! is_root; then
      log "no Docker engine answers and dockerd needs root. Start one, e.g.:"
      log "  sudo sh -c 'setsid dockerd >/var/log/dockerd.log 2>&1 &'"
      exit 1
    fi
    # Another dockerd (not ours) holding the socket but not answering: do not start a second one.
    if [ -S /var/run/docker.sock ] && pgrep -x dockerd >/dev/null 2>&1; then
      die "a dockerd runs (pid $(pgrep -x dockerd | tr '\n' ' ')) but does not answer 'docker info'; see its log"
    fi
    mkdir -p "$engine_dir"
    log "engine: starting dockerd in the background (no systemd here); log $log_file"
    printf '\n===== %s dockerd starting =====\n' "$(date -u +%FT%TZ)" >>"$log_file"
    # Detached in its own session, without the lock descriptor; dockerd starts its own containerd.
    setsid dockerd >>"$log_file" 2>&1 </dev/null {lock_fd}>&- &
    printf '%s\n' "$!" >"$pid_file"
  fi
  until engine_answers; do
    if ! our_dockerd_pid >/dev/null; then
      tail -n 20 "$log_file" >&2 || true
      rm -f "$pid_file"
      die "dockerd exited before it answered (log above, whole log in $log_file)"
    fi
    [ "$waited" -lt "$ENGINE_START_TIMEOUT" ] || die "dockerd does not answer after ${ENGINE_START_TIMEOUT}s (log: $log_file)"
    sleep 1; waited=$((waited + 1))
  done
  log "engine: dockerd $(docker version --format '{{.Server.Version}}') up after ${waited}s (pid $(<"$pid_file"), started by this project: make stop STACK=compose stops it)"
}

# Build one CLI plugin from its Go module into the cache (a no-op when the stamp matches).
# Usage: build_plugin <binary name> <module> <version> <package dir> <ldflags>
build_plugin() {
  local name=$1 module=$2 version=$3 package=$4 ldflags=$5
  local stamp="$module@$version $(go env GOOS)/$(go env GOARCH)" module_dir work started
  if [ -x "$plugin_cache/$name" ] && [ "$(cat "$plugin_cache/$name.stamp" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  mkdir -p "$plugin_cache"
  # The compose CLI tests/deployment builds (scripts/provision_tools.sh) is the same binary.
  if [ "$name" = docker-compose ] && [ -x "$CACHE_DIR/tools/bin/docker-compose" ] \
     && grep -q "compose v$version " "$CACHE_DIR/tools/bin/docker-compose.stamp" 2>/dev/null; then
    cp "$CACHE_DIR/tools/bin/docker-compose" "$plugin_cache/$name"
    echo "$stamp" >"$plugin_cache/$name.stamp"
    log "plugins: $name v$version copied from .cache/tools/bin"
    return 0
  fi
  command -v go >/dev/null || die "go is needed to build $name (scripts/install_prereqs.sh installs it)"
  started=$(date +%s)
  log "plugins: building $name from $module@v$version (Go module proxy; a few minutes on 2 cores)"
  # Shared with scripts/provision_tools.sh: one module download and build cache under .cache/tools.
  export GOPATH="$CACHE_DIR/tools/gopath" GOMODCACHE="$CACHE_DIR/tools/gopath/pkg/mod" GOCACHE="$CACHE_DIR/tools/gocache"
  export GOTOOLCHAIN=${GOTOOLCHAIN:-auto} GOFLAGS=-buildvcs=false CGO_ENABLED=0
  mkdir -p "$CACHE_DIR/tools"
  module_dir=$(cd "$CACHE_DIR/tools" && go mod download -json "$module@v$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$module_dir" ] || die "go mod download $module@v$version failed"
  # `go install module@version` refuses modules whose go.mod has exclude/replace directives:
  # build inside a writable copy of the module instead.
  work=$(mktemp -d "${TMPDIR:-/tmp}/$name-src.XXXXXX")
  cp -r "$module_dir/." "$work/"
  chmod -R u+w "$work"
  if ! (cd "$work" && go build -trimpath -ldflags "-s -w $ldflags" -o "$plugin_cache/$name.new" "$package"); then
    rm -rf "$work"
    die "building $name failed"
  fi
  rm -rf "$work"
  mv "$plugin_cache/$name.new" "$plugin_cache/$name"
  echo "$stamp" >"$plugin_cache/$name.stamp"
  log "plugins: $name v$version built in $(( $(date +%s) - started ))s"
}

install_plugin() {
  local name=$1
  mkdir -p "$plugin_dir"
  if ! cmp -s "$plugin_cache/$name" "$plugin_dir/$name"; then
    cp "$plugin_cache/$name" "$plugin_dir/$name.new"
    chmod 755 "$plugin_dir/$name.new"
    mv "$plugin_dir/$name.new" "$plugin_dir/$name"
    log "plugins: installed $plugin_dir/$name"
  fi
}

cmd_plugins() {
  local compose=${DOCKER_COMPOSE_VERSION#v} buildx=${DOCKER_BUILDX_VERSION#v}
  command -v docker >/dev/null || cmd_install
  # A plugin the user already has (Docker Desktop, docker-ce's packages) is left alone, unless it
  # is the one this script installed earlier at another version.
  if docker compose version >/dev/null 2>&1 && ! { [ -f "$plugin_cache/docker-compose.stamp" ] && ! docker compose version 2>/dev/null | grep -q "v$compose"; }; then
    log "plugins: $(docker compose version 2>/dev/null | head -n 1)"
  else
    build_plugin docker-compose github.com/docker/compose/v5 "$compose" ./cmd \
      "-X github.com/docker/compose/v5/internal.Version=v$compose"
    install_plugin docker-compose
    log "plugins: $(docker compose version | head -n 1)"
  fi
  if docker buildx version >/dev/null 2>&1 && ! { [ -f "$plugin_cache/docker-buildx.stamp" ] && ! docker buildx version 2>/dev/null | grep -q "v$buildx"; }; then
    log "plugins: $(docker buildx version 2>/dev/null | head -n 1)"
  else
    build_plugin docker-buildx github.com/docker/buildx "$buildx" ./cmd/buildx \
      "-X github.com/docker/buildx/version.Version=v$buildx -X github.com/docker/buildx/version.Package=github.com/docker/buildx"
    install_plugin docker-buildx
    log "plugins: $(docker buildx version | head -n 1)"
  fi
}

cmd_ensure() {
  cmd_install
  cmd_engine
  cmd_plugins
}

# The Debian mirror this machine's apt uses (the base image's apt uses it too).
debian_mirror() {
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | sed -n -e 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)\/\{0,1\}$/\1/p' \
             -e 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\/debian\)\/\{0,1\}[[:space:]].*/\2/p' | head -n 1)
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# The extra CA files this machine trusts, each a separate .crt (copied one by one).
host_ca_files() {
  local file
  for file in /usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt; do
    [ -f "$file" ] && printf '%s\n' "$file"
  done
  return 0
}

cmd_base_image() {
  local mirror arch stamp tarball rootfs started file ca_sum
  # An engine is enough: the base image is a debootstrap tarball through `docker import`, and
  # nothing here needs the compose or buildx plugins (their cold Go build is ~11 minutes).
  cmd_install
  cmd_engine
  mirror=$(debian_mirror)
  arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
  ca_sum=$(host_ca_files | xargs -r cat | sha256sum | cut -c1-12)
  stamp="debootstrap minbase $BASE_SUITE $arch $mirror ca-certificates ca:$ca_sum v1"
  tarball="$base_cache/debian-$BASE_SUITE-minbase-$arch.tar.gz"
  if [ "$(docker image inspect --format '{{index .Config.Labels "org.ecommerce-profiles.base"}}' "$BASE_IMAGE" 2>/dev/null)" = "$stamp" ]; then
    log "base image: $BASE_IMAGE is current"
    printf '%s\n' "$BASE_IMAGE"
    return 0
  fi
  if [ ! -s "$tarball" ] || [ "$(cat "$tarball.stamp" 2>/dev/null)" != "$stamp" ]; then
    is_root || die "debootstrap needs root (sudo $0 base-image)"
    command -v debootstrap >/dev/null || {
      log "installing debootstrap from Debian's packages"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
    }
    started=$(date +%s)
    mkdir -p "$base_cache"
    rootfs=$(mktemp -d "$base_cache/rootfs.XXXXXX")
    log "base image: debootstrap --variant=minbase $BASE_SUITE from $mirror (about a minute)"
    if ! debootstrap --variant=minbase --arch="$arch" "$BASE_SUITE" "$rootfs" "$mirror" >"$base_cache/debootstrap.log" 2>&1; then
      tail -n 20 "$base_cache/debootstrap.log" >&2
      rm -rf "$rootfs"
      die "debootstrap failed (log: $base_cache/debootstrap.log)"
    fi
    # This machine's extra CAs, one file each, before ca-certificates installs: its hook adds
    # them to /etc/ssl/certs/ca-certificates.crt (and later a JDK's hook to Java's cacerts).
    mkdir -p "$rootfs/usr/local/share/ca-certificates"
    while IFS= read -r file; do
      cp "$file" "$rootfs/usr/local/share/ca-certificates/$(basename "$file")"
    done < <(host_ca_files)
    cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $BASE_SUITE main
deb $mirror $BASE_SUITE-updates main
deb ${mirror%/debian}/debian-security $BASE_SUITE-security main
EOF
    # Lean images: no recommends, no apt caches (what Docker's official Debian images do).
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/90no-recommends"
    # Keep the archives: stand-in Dockerfiles mount /var/cache/apt as a BuildKit cache.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/90excludes" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    # JDK/JRE postinst scripts expect the man1 folder even when man pages are excluded.
    mkdir -p "$rootfs/usr/share/man/man1"
    if ! chroot "$rootfs" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ca-certificates && apt-get clean && rm -rf /var/lib/apt/lists/*' >>"$base_cache/debootstrap.log" 2>&1; then
      tail -n 20 "$base_cache/debootstrap.log" >&2
      rm -rf "$rootfs"
      die "installing ca-certificates in the root filesystem failed (log: $base_cache/debootstrap.log)"
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log "$rootfs"/tmp/*
    tar --numeric-owner -C "$rootfs" -czf "$tarball.new" .
    rm -rf "$rootfs"
    mv "$tarball.new" "$tarball"
    echo "$stamp" >"$tarball.stamp"
    log "base image: root filesystem $(du -h "$tarball" | cut -f1) in $(( $(date +%s) - started ))s ($tarball)"
  fi
  docker import \
    --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL org.ecommerce-profiles.base=\"$stamp\"" \
    "$tarball" "$BASE_IMAGE" >/dev/null
  log "base image: imported $BASE_IMAGE"
  printf '%s\n' "$BASE_IMAGE"
}

cmd_stop() {
  local pid waited=0
  if ! pid=$(our_dockerd_pid); then
    rm -f "$pid_file"
    log "engine: not started by this project; left as it is"
    return 0
  fi
  # Another Compose project (a second checkout, make test-compose) may still run on it.
  local running
  running=$(docker ps -q 2>/dev/null | wc -l)
  if [ "$running" -gt 0 ] && [ "${FORCE_ENGINE_STOP:-0}" != 1 ]; then
    log "engine: $running container(s) still running on dockerd (pid $pid): left running (docker ps lists them; FORCE_ENGINE_STOP=1 stops it anyway)"
    return 0
  fi
  log "engine: stopping dockerd (pid $pid, started by this project)"
  kill -TERM "$pid" 2>/dev/null || true
  # dockerd stops its containers (15 s each at most) and its own containerd before it exits.
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 60 ]; do sleep 1; waited=$((waited + 1)); done
  if kill -0 "$pid" 2>/dev/null; then
    log "engine: dockerd still running after 60s, killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pid_file"
  log "engine: stopped"
}

cmd_status() {
  local pid rc=0
  if engine_answers; then
    if pid=$(our_dockerd_pid); then
      echo "engine   up    dockerd $(docker version --format '{{.Server.Version}}') (pid $pid, started by this project; log $log_file)"
    else
      echo "engine   up    $(docker version --format '{{.Server.Version}}' 2>/dev/null) (not started by this project)"
    fi
  else
    echo "engine   down"; rc=1
  fi
  echo "compose  $(docker compose version 2>/dev/null | head -n 1 || echo missing)"
  echo "buildx   $(docker buildx version 2>/dev/null | head -n 1 || echo missing)"
  if [ "$rc" = 0 ] && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "base     $BASE_IMAGE"
  else
    echo "base     $BASE_IMAGE not built (scripts/docker_engine.sh base-image)"
  fi
  return "$rc"
}

command=${1:-}
case "$command" in
  install) take_lock; cmd_install ;;
  engine) take_lock; cmd_engine ;;
  plugins) take_lock; cmd_plugins ;;
  ensure) take_lock; cmd_ensure ;;
  base-image) take_lock; cmd_base_image ;;
  stop) take_lock; cmd_stop ;;
  status) cmd_status ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
