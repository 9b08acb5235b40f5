#!/usr/bin/env bash
# GitHub Codespaces only: set the visibility of the forwarded service ports with the GitHub CLI
#   gh codespace ports visibility <port>:public ... -c "$CODESPACE_NAME"
#
#   ./configure-ports.sh                 # every HTTP service port from .env -> public
#   ./configure-ports.sh 8080 9001       # only these ports -> public
#   ./configure-ports.sh --private       # every HTTP service port -> back to private
#   ENV_FILE=/path/to/.env ./configure-ports.sh
#
# Outside Codespaces it changes nothing and says so (exit 0). In Codespaces without `gh`, or
# when `gh` fails, it says so and exits 1.
# Public means anyone with the URL: Elasticsearch, Kibana and the Spark UIs have no login in
# this development setup (Airflow and MinIO do), so make only what you need public.
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

if [ ${#ports[@]} -eq 0 ]; then
  [ -f "$ENV_FILE" ] || { echo "configure-ports: $ENV_FILE not found" >&2; exit 1; }
  # HTTP services only: Kafka's protocol cannot go through the HTTPS forwarding anyway.
  for name in AIRFLOW_PORT KIBANA_PORT MINIO_CONSOLE_PORT MINIO_PORT ELASTICSEARCH_PORT SPARK_MASTER_UI_PORT SPARK_WORKER_UI_PORT; do
    port=$(sed -n "s/^$name=//p" "$ENV_FILE" | tail -n 1)
    [ -n "$port" ] || { echo "configure-ports: $name is not set in $ENV_FILE" >&2; exit 1; }
    ports+=("$port")
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
  echo "configure-ports: anyone with the URL can reach them; Elasticsearch, Kibana and the Spark UIs have no login here (./configure-ports.sh --private reverts)."
fi
