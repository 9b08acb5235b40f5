#!/usr/bin/env bash
# The README's quick start on a fresh machine: a clone of this repository's HEAD in a new Debian 12
# (bookworm) container that holds only what the README says the user brings, then `make demo`.
#
#   tests/fresh_machine/make_demo_in_container.sh        (make test-fresh-machine runs it through pytest)
#
# * The machine: scripts/docker_engine.sh base-image (debootstrap --variant=minbase bookworm +
#   ca-certificates, this machine's extra CA files copied in one by one), plus `make` and `git`
#   (image FRESH_IMAGE, rebuilt when the base image changes). Nothing else: no Python, Java, Go,
#   Maven, curl; no pip, Maven or Go cache. Root, no systemd.
# * The repository: `git bundle` of HEAD, cloned inside with git (committed files only).
# * The host's registry settings go in as they are (pip/Go/proxy environment variables, pip.conf,
#   ~/.m2/settings.xml); variables that point at the host's CA bundle point at the container's,
#   which holds the same CAs.
# * Output: every line time-stamped in $STACK_DIR/fresh-machine/make-demo.log; the outcome in
#   $STACK_DIR/fresh-machine/result.json (status, seconds of the cold `make demo`, commit).
#   The container is removed afterwards (FRESH_MACHINE_KEEP=1 keeps it for a look inside).
#
# Env: FRESH_MACHINE_COMMAND (default `make demo`), FRESH_MACHINE_TIMEOUT (seconds, 2700),
#      FRESH_MACHINE_MEMORY (container memory limit, 12g).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
STACK_DIR=${STACK_DIR:-$root/.stack}
out_dir="$STACK_DIR/fresh-machine"
log_file="$out_dir/make-demo.log"
result_file="$out_dir/result.json"
command=${FRESH_MACHINE_COMMAND:-make demo}
timeout_seconds=${FRESH_MACHINE_TIMEOUT:-2700}
memory=${FRESH_MACHINE_MEMORY:-12g}
# What the README's Prerequisites say the user brings, besides Debian and ca-certificates.
USER_PACKAGES="make git"
FRESH_IMAGE=${FRESH_IMAGE:-ecommerce-profiles/fresh-machine:bookworm}
container="ecommerce-profiles-fresh-machine-$$"
workdir=/root/ecommerce-profiles

log() { printf '[fresh-machine] %s\n' "$*" >&2; }

mkdir -p "$out_dir"
rm -f "$result_file"
tmp=$(mktemp -d)
cleanup() {
  rm -rf "$tmp"
  if [ "${FRESH_MACHINE_KEEP:-}" = 1 ]; then
    log "container $container kept (docker exec -it $container bash; docker rm -f $container)"
  else
    docker rm -f "$container" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

prep_started=$(date +%s)
# ---- the machine ------------------------------------------------------------------------------
base=$(bash "$root/scripts/docker_engine.sh" base-image)
base_id=$(docker image inspect --format '{{.Id}}' "$base")
stamp="$base_id + $USER_PACKAGES v1"
if [ "$(docker image inspect --format '{{index .Config.Labels "org.ecommerce-profiles.fresh-machine"}}' "$FRESH_IMAGE" 2>/dev/null)" != "$stamp" ]; then
  log "image $FRESH_IMAGE: $base + $USER_PACKAGES"
  docker rm -f "$container-build" >/dev/null 2>&1 || true
  # shellcheck disable=SC2086
  docker run --name "$container-build" "$base" sh -c \
    "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $USER_PACKAGES >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*" >&2
  docker commit --change 'CMD ["bash"]' --change 'WORKDIR /root' \
    --change "LABEL org.ecommerce-profiles.fresh-machine=\"$stamp\"" "$container-build" "$FRESH_IMAGE" >/dev/null
  docker rm "$container-build" >/dev/null
fi

# ---- the host's registry settings ---------------------------------------------------------------
env_args=()
container_ca=/etc/ssl/certs/ca-certificates.crt
for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_DEFAULT_TIMEOUT PIP_DISABLE_PIP_VERSION_CHECK \
           GOPROXY GOSUMDB GONOSUMDB GOPRIVATE GONOPROXY GOINSECURE \
           HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy MAVEN_OPTS; do
  [ -n "${!var:-}" ] && env_args+=(-e "$var=${!var}")
done
# Go settings kept in go's own env file rather than the environment.
if command -v go >/dev/null; then
  for var in GOPROXY GOSUMDB GONOSUMDB GOPRIVATE; do
    [ -z "${!var:-}" ] || continue
    value=$(go env "$var" 2>/dev/null || true)
    [ -n "$value" ] && env_args+=(-e "$var=$value")
  done
fi
# CA bundle variables: the same setting, pointing at the container's bundle (same CAs, see above).
for var in PIP_CERT REQUESTS_CA_BUNDLE SSL_CERT_FILE CURL_CA_BUNDLE GIT_SSL_CAINFO AWS_CA_BUNDLE NODE_EXTRA_CA_CERTS; do
  [ -n "${!var:-}" ] && env_args+=(-e "$var=$container_ca")
done

# ---- the repository: a clone of HEAD -------------------------------------------------------------
commit=$(git -C "$root" rev-parse HEAD)
git -C "$root" bundle create "$tmp/repo.bundle" HEAD 2>/dev/null
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  log "note: uncommitted changes in $root are not part of the test (it clones HEAD, $commit)"
fi

docker run -d --init --name "$container" --hostname fresh-machine --memory "$memory" \
  "${env_args[@]}" "$FRESH_IMAGE" sleep infinity >/dev/null
tar -C "$tmp" -c repo.bundle | docker cp - "$container:/root/"
for conf in /etc/pip.conf "$HOME/.config/pip/pip.conf" "$HOME/.pip/pip.conf" "$HOME/.m2/settings.xml"; do
  [ -f "$conf" ] || continue
  target=$conf
  case "$conf" in "$HOME"/*) target="/root/${conf#"$HOME"/}" ;; esac
  docker exec "$container" mkdir -p "$(dirname "$target")"
  docker cp "$conf" "$container:$target"
done
docker exec "$container" git -c advice.detachedHead=false clone -q /root/repo.bundle "$workdir"
prep_seconds=$(( $(date +%s) - prep_started ))
log "container $container: Debian $(docker exec "$container" cat /etc/debian_version), clone of $commit in $workdir (ready after ${prep_seconds}s)"

# ---- the command, cold --------------------------------------------------------------------------
log "running '$command' in it (cold: every download and build happens now; log $log_file)"
started=$(date +%s)
status=0
{
  timeout "$timeout_seconds" docker exec "$container" bash -c "cd $workdir && $command" 2>&1 || echo "__exit_status__ $?"
} | while IFS= read -r line; do
  printf '%(%H:%M:%S)T %s\n' -1 "$line"
done | tee "$log_file" | grep --line-buffered -vE '^[0-9:]+ __exit_status__' >&2 || true
seconds=$(( $(date +%s) - started ))
if last=$(grep -E '^[0-9:]+ __exit_status__ ' "$log_file"); then status=${last##* }; fi
[ "$status" = 124 ] && log "'$command' did not finish within ${timeout_seconds}s"

cat >"$result_file" <<EOF
{"command": "$command", "status": $status, "seconds": $seconds, "prep_seconds": $prep_seconds,
 "commit": "$commit", "finished": "$(date -u +%FT%TZ)", "cores": $(nproc), "image": "$FRESH_IMAGE"}
EOF
log "'$command' on a fresh Debian 12 container: exit status $status after ${seconds}s ($(( seconds / 60 )) min $(( seconds % 60 )) s; machine and clone ready ${prep_seconds}s before)"
exit "$status"
