#!/usr/bin/env bash
# Build the two tools tests/deployment uses to check the Compose deployment without a Docker
# engine, into .cache/tools/bin (make setup calls this; a fast no-op when they are current):
#
#   docker-compose   the Docker Compose CLI (github.com/docker/compose/v5, from the Go module
#                    proxy): `docker-compose config` loads, interpolates and validates
#                    docker-compose.yaml against the Compose specification; no engine needed.
#   dockerfile-lint  scripts/dockerfile_lint: BuildKit's Dockerfile checks (the rules of
#                    `docker build --check`) run offline.
#
# Versions come from docs/versions.md (DOCKER_COMPOSE_VERSION, BUILDKIT_VERSION); the linter's
# go.mod/go.sum pin BuildKit and must agree (tests/deployment checks it).
# Needs Go >= the `go` line of the modules (1.26.8 today); an older Go >= 1.21 fetches that
# toolchain from the Go module proxy by itself (GOTOOLCHAIN=auto).
#
# Usage: scripts/provision_tools.sh [--force]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
eval "$("$here/versions.sh")"
: "${DOCKER_COMPOSE_VERSION:?add the DOCKER_COMPOSE_VERSION row to docs/versions.md}"
: "${BUILDKIT_VERSION:?add the BUILDKIT_VERSION row to docs/versions.md}"

force=${1:-}
case "$force" in ""|--force) ;; *) echo "usage: $0 [--force]" >&2; exit 2 ;; esac

log() { echo "[deploy-tools] $*" >&2; }

CACHE_DIR=${CACHE_DIR:-$root/.cache}
tools_dir="$CACHE_DIR/tools"
bin_dir="$tools_dir/bin"
mkdir -p "$bin_dir"
# Own module and build caches under .cache, so a CI cache of .cache makes this a no-op.
export GOPATH="$tools_dir/gopath" GOMODCACHE="$tools_dir/gopath/pkg/mod" GOCACHE="$tools_dir/gocache"
export GOTOOLCHAIN=auto GOFLAGS=-buildvcs=false CGO_ENABLED=0

command -v go >/dev/null || { log "go not found (scripts/install_prereqs.sh installs it)"; exit 1; }

lint_src="$here/dockerfile_lint"
grep -q "github.com/moby/buildkit v${BUILDKIT_VERSION#v}\$" "$lint_src/go.mod" || {
  log "scripts/dockerfile_lint/go.mod does not require github.com/moby/buildkit v${BUILDKIT_VERSION#v} (docs/versions.md)"
  exit 1
}

# A stamp per tool: rebuild when the version or (for the linter) its source changes.
compose_stamp="compose v${DOCKER_COMPOSE_VERSION#v} $(go env GOOS)/$(go env GOARCH)"
lint_stamp="lint $(cat "$lint_src"/go.mod "$lint_src"/go.sum "$lint_src"/*.go | sha256sum | cut -c1-16)"

current() { [ "$force" != "--force" ] && [ -x "$bin_dir/$1" ] && [ "$(cat "$bin_dir/$1.stamp" 2>/dev/null)" = "$2" ]; }

if current docker-compose "$compose_stamp"; then
  log "docker-compose v${DOCKER_COMPOSE_VERSION#v}: up to date"
else
  started=$(date +%s)
  module="github.com/docker/compose/v5@v${DOCKER_COMPOSE_VERSION#v}"
  log "building docker-compose from $module (a few minutes on 2 cores)"
  # `go install module@version` refuses modules whose go.mod has exclude/replace directives
  # (compose's does), so build inside a copy of the module instead.
  module_dir=$(cd "$tools_dir" && go mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$module_dir" ] || { log "go mod download $module failed"; exit 1; }
  work=$(mktemp -d "${TMPDIR:-/tmp}/compose-src.XXXXXX")
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
  cp -r "$module_dir/." "$work/"
  chmod -R u+w "$work"
  (cd "$work" && go build -trimpath \
      -ldflags "-s -w -X github.com/docker/compose/v5/internal.Version=v${DOCKER_COMPOSE_VERSION#v}" \
      -o "$bin_dir/docker-compose.new" ./cmd)
  mv "$bin_dir/docker-compose.new" "$bin_dir/docker-compose"
  echo "$compose_stamp" > "$bin_dir/docker-compose.stamp"
  log "docker-compose built in $(( $(date +%s) - started ))s: $("$bin_dir/docker-compose" version)"
fi

if current dockerfile-lint "$lint_stamp"; then
  log "dockerfile-lint (BuildKit v${BUILDKIT_VERSION#v}): up to date"
else
  started=$(date +%s)
  log "building dockerfile-lint (BuildKit v${BUILDKIT_VERSION#v})"
  (cd "$lint_src" && go build -mod=readonly -trimpath -ldflags "-s -w" -o "$bin_dir/dockerfile-lint.new" .)
  mv "$bin_dir/dockerfile-lint.new" "$bin_dir/dockerfile-lint"
  echo "$lint_stamp" > "$bin_dir/dockerfile-lint.stamp"
  log "dockerfile-lint built in $(( $(date +%s) - started ))s"
fi
