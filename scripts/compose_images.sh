#!/usr/bin/env bash
# Which images the Compose stack runs: the official ones, or stand-ins built here when no
# container registry answers (docker/standins/<name>/Dockerfile, docs/deployment.md).
#
#   scripts/compose_images.sh select        decide, build stand-ins if needed, write .stack/compose-images.env
#   scripts/compose_images.sh build [name]  build stand-in images (all, or the named ones)
#   scripts/compose_images.sh list          name -> official image -> stand-in tag
#
# `select` (what `make start STACK=compose` runs):
#   * COMPOSE_IMAGES=official: the official images, as docker-compose.yaml names them;
#   * COMPOSE_IMAGES=standin: stand-ins, always;
#   * unset (auto): `docker pull` of one official image (postgres, the smallest) with a short
#     timeout; when it works, the official images; when it fails, stand-ins, saying why.
# With stand-ins it writes .stack/compose-images.env: every *_IMAGE variable naming its stand-in
# and COMPOSE_FILE=docker-compose.yaml:docker-compose.standin.yaml (Compose reads both from that
# env file; mk/compose.mk passes it as a second --env-file). With official images it removes it.
# Stand-ins are built FROM the Debian base image of scripts/docker_engine.sh base-image, with
# BuildKit cache mounts (apt, pip, Maven, Go): a second build takes seconds.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
eval "$("$here/versions.sh")"
STACK_DIR=${STACK_DIR:-$root/.stack}
env_file="$STACK_DIR/compose-images.env"
standins="$root/docker/standins"
PULL_TIMEOUT=${PULL_TIMEOUT:-25}

log() { printf '[compose-images] %s\n' "$*" >&2; }
die() { printf '[compose-images] ERROR: %s\n' "$*" >&2; exit 1; }

# Debian 12 has PostgreSQL 15 only: the postgres stand-in is 15 (docs/deployment.md).
# name | variable | official image (docker-compose.yaml's default) | stand-in tag | build context | build args
# The MC_IMAGE stand-in is the MinIO one: like the official server image, it ships mc.
catalogue() {
  cat <<EOF
airflow|AIRFLOW_BASE_IMAGE|apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}|ecommerce-profiles-standin/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}|.|AIRFLOW_VERSION=${AIRFLOW_VERSION}
postgres|POSTGRES_IMAGE|postgres:${POSTGRES_VERSION}|ecommerce-profiles-standin/postgres:15|docker/standins/postgres|PG_MAJOR=15
kafka|KAFKA_IMAGE|apache/kafka:${KAFKA_VERSION}|ecommerce-profiles-standin/kafka:${KAFKA_VERSION}|docker/standins/kafka|KAFKA_VERSION=${KAFKA_VERSION}
minio|MINIO_IMAGE|quay.io/minio/minio:${MINIO_IMAGE_TAG}|ecommerce-profiles-standin/minio:${MINIO_IMAGE_TAG}|docker/standins/minio|MINIO_VERSION=${MINIO_VERSION}
mc|MC_IMAGE|quay.io/minio/minio:${MINIO_IMAGE_TAG}|ecommerce-profiles-standin/minio:${MINIO_IMAGE_TAG}||
spark|SPARK_IMAGE|apache/spark:${SPARK_VERSION}-scala${SCALA_BINARY_VERSION}-java${JAVA_VERSION}-python3-ubuntu|ecommerce-profiles-standin/spark:${SPARK_VERSION}|docker/standins/spark|SPARK_VERSION=${SPARK_VERSION}
maven|MAVEN_IMAGE|maven:${MAVEN_VERSION}-eclipse-temurin-${JAVA_VERSION}|ecommerce-profiles-standin/maven:${MAVEN_VERSION}|docker/standins/maven|MAVEN_VERSION=${MAVEN_VERSION}
elasticsearch|ELASTICSEARCH_IMAGE|docker.elastic.co/elasticsearch/elasticsearch:${ES_VERSION}|ecommerce-profiles-standin/elasticsearch:${ES_VERSION}|.|ES_VERSION=${ES_VERSION}
esproxy|ESPROXY_IMAGE||ecommerce-profiles-standin/esproxy:bookworm|docker/standins/esproxy|
mailpit|MAILPIT_IMAGE|axllent/mailpit:v${MAILPIT_VERSION#v}|ecommerce-profiles-standin/mailpit:v${MAILPIT_VERSION#v}|docker/standins/mailpit|MAILPIT_VERSION=v${MAILPIT_VERSION#v}
EOF
}

field() { catalogue | awk -F'|' -v n="$1" -v f="$2" '$1 == n { print $f }'; }
names() { catalogue | cut -d'|' -f1; }

build_one() {
  local name=$1 tag context args dockerfile started
  local -a build_args=()
  tag=$(field "$name" 4); context=$(field "$name" 5); args=$(field "$name" 6)
  [ -n "$context" ] || return 0   # shares another stand-in's image
  dockerfile="$standins/$name/Dockerfile"
  [ -f "$dockerfile" ] || die "$dockerfile is missing"
  build_args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
  for arg in $args; do build_args+=(--build-arg "$arg"); done
  started=$(date +%s)
  log "$name: building $tag"
  (cd "$root" && docker build --progress=plain -f "$dockerfile" "${build_args[@]}" -t "$tag" "$context") \
    >"$STACK_DIR/standin-build-$name.log" 2>&1 || {
    tail -n 40 "$STACK_DIR/standin-build-$name.log" >&2
    die "$name: build failed (whole log: $STACK_DIR/standin-build-$name.log)"
  }
  log "$name: $tag built in $(( $(date +%s) - started ))s"
}

cmd_build() {
  local name
  mkdir -p "$STACK_DIR"
  # The Debian base image every stand-in starts from (made once, then reused).
  BASE_IMAGE=$(bash "$here/docker_engine.sh" base-image)
  if [ $# -eq 0 ]; then set -- $(names); fi
  for name in "$@"; do
    [ -n "$(field "$name" 1)" ] || die "unknown stand-in '$name' (known: $(names | tr '\n' ' '))"
    build_one "$name"
  done
}

# Can this engine pull the official images? One small image decides (a registry that serves one
# serves them all here; a machine behind a registry mirror answers the same way).
registry_answers() {
  local probe
  probe=$(field postgres 3)
  docker image inspect "$probe" >/dev/null 2>&1 && return 0
  timeout "$PULL_TIMEOUT" docker pull -q "$probe" >"$STACK_DIR/registry-probe.log" 2>&1
}

cmd_select() {
  local mode=${COMPOSE_IMAGES:-auto} name variable
  mkdir -p "$STACK_DIR"
  case "$mode" in
    official) log "COMPOSE_IMAGES=official: the official images" ;;
    standin) log "COMPOSE_IMAGES=standin: stand-in images built here" ;;
    auto)
      if registry_answers; then
        mode=official
        log "the official images can be pulled: using them unchanged"
      else
        mode=standin
        log "docker pull $(field postgres 3) failed within ${PULL_TIMEOUT}s ($(tail -n 1 "$STACK_DIR/registry-probe.log" 2>/dev/null | cut -c1-160)):"
        log "no container registry answers, so the stand-ins of docker/standins/ are built here (COMPOSE_IMAGES=official to insist)"
      fi ;;
    *) die "COMPOSE_IMAGES must be official, standin or auto, not '$mode'" ;;
  esac
  if [ "$mode" = official ]; then
    rm -f "$env_file"
    return 0
  fi
  cmd_build
  {
    echo "# Written by scripts/compose_images.sh select: no container registry answered, so stand-ins."
    echo "COMPOSE_FILE=docker-compose.yaml:docker-compose.standin.yaml"
    while IFS='|' read -r name variable _ tag _; do
      echo "$variable=$tag"
    done < <(catalogue)
  } >"$env_file.new"
  mv "$env_file.new" "$env_file"
  log "images (stand-in <- official):"
  while IFS='|' read -r name variable official tag _; do
    log "  $variable=$tag  <- ${official:-(none: the Elasticsearch zip has no security; nginx demands the logins)}"
  done < <(catalogue)
  log "written to $env_file"
}

cmd_list() {
  printf '%-14s %-20s %-70s %s\n' NAME VARIABLE OFFICIAL STAND-IN
  catalogue | awk -F'|' '{ printf "%-14s %-20s %-70s %s\n", $1, $2, ($3 == "" ? "-" : $3), $4 }'
}

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
  select) cmd_select ;;
  build) cmd_build "$@" ;;
  list) cmd_list ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
