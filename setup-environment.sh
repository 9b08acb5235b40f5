#!/usr/bin/env bash
# Detect where this checkout runs (GitHub Codespaces or a local machine), record it in .env as
# ENVIRONMENT=codespaces|local, and print the URL of every service.
#
#   ./setup-environment.sh                  # uses ./.env
#   ./setup-environment.sh --new-passwords  # also replaces every DEV-ONLY password with a random one
#   ENV_FILE=/path/to/.env ./setup-environment.sh
#
# Codespaces (CODESPACES=true, CODESPACE_NAME, GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN set by
# GitHub) forwards port P as https://<codespace-name>-P.<forwarding-domain>/; elsewhere the
# services are on http://localhost:P/. Ports are read from .env, so changing one there changes
# the printed URL. Safe to run again: it only rewrites the ENVIRONMENT line (and, with
# --new-passwords, every value ending in `-dev-only`, wherever .env repeats it: the AIRFLOW_CONN_*
# JSON too). Docker Compose refuses DEV-ONLY passwords unless ENVIRONMENT=local (service
# `preflight`), so a codespace needs --new-passwords once, before the first `docker compose up`
# (passwords are stored in the volumes then: after a change, `make clean STACK=compose`).
set -euo pipefail

new_passwords=false
for arg in "$@"; do
  case "$arg" in
    --new-passwords) new_passwords=true ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup-environment: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ENV_FILE=${ENV_FILE:-$here/.env}
[ -f "$ENV_FILE" ] || { echo "setup-environment: $ENV_FILE not found" >&2; exit 1; }

# Read one variable from the env file (last definition wins, quotes stripped), without sourcing
# it: the file also holds JSON connection strings.
env_value() {
  local value
  value=$(sed -n "s/^$1=//p" "$ENV_FILE" | tail -n 1)
  value=${value%\"}; value=${value#\"}; value=${value%\'}; value=${value#\'}
  [ -n "$value" ] || { echo "setup-environment: $1 is not set in $ENV_FILE" >&2; exit 1; }
  printf '%s' "$value"
}

if [ "${CODESPACES:-}" = "true" ]; then
  : "${CODESPACE_NAME:?CODESPACES=true but CODESPACE_NAME is not set}"
  : "${GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN:?CODESPACES=true but GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN is not set}"
  environment=codespaces
else
  environment=local
fi

port_value() {
  local value
  value=$(env_value "$1") || exit 1
  [[ "$value" =~ ^[0-9]+$ ]] || { echo "setup-environment: $1=$value in $ENV_FILE is not a port number" >&2; exit 1; }
  printf '%s' "$value"
}

# Read every port before touching .env; plain assignments, so a bad one stops the script (set -e).
airflow_port=$(port_value AIRFLOW_PORT)
kibana_port=$(port_value KIBANA_PORT)
minio_console_port=$(port_value MINIO_CONSOLE_PORT)
minio_port=$(port_value MINIO_PORT)
elasticsearch_port=$(port_value ELASTICSEARCH_PORT)
spark_master_ui_port=$(port_value SPARK_MASTER_UI_PORT)
spark_worker_ui_port=$(port_value SPARK_WORKER_UI_PORT)
kafka_port=$(port_value KAFKA_PORT)
bind_address=$(sed -n 's/^BIND_ADDRESS=//p' "$ENV_FILE" | tail -n 1)

# Rewrite ENVIRONMENT=... in place (append it when missing); everything else stays byte for byte.
tmp=$(mktemp "$ENV_FILE.XXXXXX")
trap 'rm -f "$tmp"' EXIT
if grep -q '^ENVIRONMENT=' "$ENV_FILE"; then
  sed "s/^ENVIRONMENT=.*/ENVIRONMENT=$environment/" "$ENV_FILE" > "$tmp"
else
  cp "$ENV_FILE" "$tmp"
  [ -z "$(tail -c 1 "$ENV_FILE")" ] || echo >> "$tmp"
  echo "ENVIRONMENT=$environment" >> "$tmp"
fi
# DEV-ONLY values: whole values ending in -dev-only (also in commented-out examples); longest
# first, so a value that ends another one is never replaced inside it.
dev_only_values() { grep -oE '[A-Za-z0-9_.-]+-dev-only' "$1" | sort -u | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-; }
if $new_passwords; then
  replaced=0
  while IFS= read -r old; do
    [ -n "$old" ] || continue
    new=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
    sed -i "s/${old//./\\.}/$new/g" "$tmp"
    replaced=$((replaced + 1))
  done < <(dev_only_values "$tmp")
  echo "Replaced $replaced DEV-ONLY password(s) in $ENV_FILE with random ones."
fi
if cmp -s "$tmp" "$ENV_FILE"; then
  rm -f "$tmp"
else
  cat "$tmp" > "$ENV_FILE"   # keeps the file's owner and mode
fi
echo "Environment: $environment (ENVIRONMENT=$environment in $ENV_FILE)"
still_dev_only=$(sed -n 's/^\([A-Z_]*PASSWORD\)=.*-dev-only.*/\1/p' "$ENV_FILE" | tr '\n' ' ')
if [ "$environment" != local ] && [ -n "$still_dev_only" ]; then
  echo "WARNING: ${still_dev_only}still have DEV-ONLY values: Docker Compose refuses to start with them when"
  echo "         ENVIRONMENT=$environment. Run ./setup-environment.sh --new-passwords (or set them yourself)."
fi

url() {
  if [ "$environment" = codespaces ]; then
    printf 'https://%s-%s.%s/' "$CODESPACE_NAME" "$1" "$GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN"
  else
    printf 'http://localhost:%s/' "$1"
  fi
}

row() { printf '  %-22s %s\n' "$1" "$2"; }


echo
echo "Service URLs:"
row "Airflow"            "$(url "$airflow_port")"
row "Kibana"             "$(url "$kibana_port")"
row "MinIO console"      "$(url "$minio_console_port")"
row "MinIO API"          "$(url "$minio_port")"
row "Elasticsearch"      "$(url "$elasticsearch_port")"
row "Spark master UI"    "$(url "$spark_master_ui_port")"
row "Spark worker UI"    "$(url "$spark_worker_ui_port")"
if [ "$environment" = codespaces ]; then
  # Port forwarding speaks HTTP(S); the Kafka protocol only works from inside the codespace.
  row "Kafka bootstrap" "localhost:$kafka_port (inside the codespace only; not an HTTP service)"
else
  row "Kafka bootstrap" "localhost:$kafka_port"
fi
echo
echo "Kibana and the Spark UIs exist in the Docker Compose stack only (docker compose up -d)."
echo "Every port is published on ${bind_address:-127.0.0.1} only (BIND_ADDRESS). Logins: Airflow AIRFLOW_ADMIN_USER, Kibana and"
echo "Elasticsearch \`elastic\` / ELASTIC_PASSWORD (Compose), MinIO console MINIO_ROOT_USER (all in $ENV_FILE)."
if [ "$environment" = codespaces ]; then
  echo "Forwarded ports are private to you by default; ./configure-ports.sh makes the Airflow and Kibana UIs public."
fi
airflow_uid=$(sed -n 's/^AIRFLOW_UID=//p' "$ENV_FILE" | tail -n 1)
if [ "$(uname -s)" = Linux ] && [ "$(id -u)" != 0 ] && [ "$airflow_uid" != "$(id -u)" ]; then
  echo "Hint: on Linux set AIRFLOW_UID=$(id -u) in $ENV_FILE so files the Airflow containers write stay yours."
fi
