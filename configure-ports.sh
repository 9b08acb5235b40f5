#!/usr/bin/env bash
# GitHub Codespaces only: set the visibility of the forwarded service ports with the GitHub CLI
#   gh codespace ports visibility <port>:public ... -c "$CODESPACE_NAME"
#
#   ./configure-ports.sh                 # the UIs a person needs -> public: Airflow, Kibana
#   ./configure-ports.sh 8080 9001       # only these ports -> public (UIs with a login only)
#   ./configure-ports.sh --private       # every HTTP service port -> back to private
#   ENV_FILE=/path/to/.env ./configure-ports.sh
#
# Outside Codespaces it changes nothing and says so (exit 0). In Codespaces without `gh`, or
# when `gh` fails, it says so and exits 1.
# Public means anyone with the URL. Only the web UIs that have a login may become public:
# Airflow (AIRFLOW_PORT), Kibana (KIBANA_PORT, Elasticsearch security) and, if asked for by
# port, the MinIO console (MINIO_CONSOLE_PORT). The APIs (Elasticsearch, MinIO S3) and the Spark
# UIs (no login) are refused: reach them from inside the codespace, or forward them privately.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ENV_FILE=${ENV_FILE:-$here/.env}

visibility=public
ports=()
for arg in "$@"; do
  case "$arg" in
    --private) visibility=private ;;
    --public) visibility=public ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *[!0-9]*|'') echo "configure-ports: not a port number: $arg" >&2; exit 2 ;;
    *) ports+=("$arg") ;;
  esac
done

if [ "${CODESPACES:-}" != "true" ]; then
  echo "configure-ports: not in GitHub Codespaces (CODESPACES is not true): nothing to do; locally the services are on http://localhost:<port>/."
  exit 0
fi
if [ -z "${CODESPACE_NAME:-}" ]; then
  echo "configure-ports: CODESPACES=true but CODESPACE_NAME is not set: nothing done." >&2
  exit 1
fi
if ! command -v gh >/dev/null 2>&1; then
  echo "configure-ports: the GitHub CLI (gh) is not installed: nothing done. Set the visibility in the Ports tab instead." >&2
  exit 1
fi

[ -f "$ENV_FILE" ] || { echo "configure-ports: $ENV_FILE not found" >&2; exit 1; }
port_of() {
  local port
  port=$(sed -n "s/^$1=//p" "$ENV_FILE" | tail -n 1)
  [ -n "$port" ] || { echo "configure-ports: $1 is not set in $ENV_FILE" >&2; exit 1; }
  printf '%s' "$port"
}
# HTTP services only: Kafka's protocol cannot go through the HTTPS forwarding anyway.
default_public=(AIRFLOW_PORT KIBANA_PORT)
may_be_public=(AIRFLOW_PORT KIBANA_PORT MINIO_CONSOLE_PORT)
http_ports=(AIRFLOW_PORT KIBANA_PORT MINIO_CONSOLE_PORT MINIO_PORT ELASTICSEARCH_PORT ELASTICSEARCH_AUTH_PORT SPARK_MASTER_UI_PORT SPARK_WORKER_UI_PORT)
declare -A allowed=()
for name in "${may_be_public[@]}"; do allowed[$(port_of "$name")]=$name; done
if [ ${#ports[@]} -eq 0 ]; then
  if [ "$visibility" = private ]; then names=("${http_ports[@]}"); else names=("${default_public[@]}"); fi
  for name in "${names[@]}"; do
    port=$(sed -n "s/^$name=//p" "$ENV_FILE" | tail -n 1)
    [ -n "$port" ] && ports+=("$port")
  done
fi
if [ "$visibility" = public ]; then
  for port in "${ports[@]}"; do
    if [ -z "${allowed[$port]+set}" ]; then
      echo "configure-ports: refusing to make port $port public: only the Airflow, Kibana and MinIO console UIs (ports ${!allowed[*]}) have a login; APIs and the Spark UIs stay private." >&2
      exit 2
    fi
  done
fi

args=()
for port in "${ports[@]}"; do args+=("$port:$visibility"); done
if ! gh codespace ports visibility "${args[@]}" -c "$CODESPACE_NAME"; then
  echo "configure-ports: gh codespace ports visibility failed (is gh logged in? try: gh auth login)" >&2
  exit 1
fi
echo "configure-ports: made ports ${ports[*]} $visibility in codespace $CODESPACE_NAME."
if [ "$visibility" = public ]; then
  echo "configure-ports: anyone with the URL can reach their login pages; use passwords that are not DEV-ONLY (./setup-environment.sh --new-passwords; ./configure-ports.sh --private reverts)."
fi
