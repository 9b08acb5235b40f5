#!/usr/bin/env bash
# /entrypoint of the Airflow stand-in: the official image's behaviour, written for this image.
#   * an arbitrary uid (docker run --user 1234:0) gets a passwd entry and HOME=/home/airflow;
#   * unless CONNECTION_CHECK_MAX_COUNT=0, Airflow commands wait for the metadata database
#     (`airflow db check`, CONNECTION_CHECK_MAX_COUNT tries, CONNECTION_CHECK_SLEEP_TIME apart);
#   * _AIRFLOW_DB_MIGRATE (or _AIRFLOW_DB_UPGRADE) non-empty: `airflow db migrate` first;
#   * _AIRFLOW_WWW_USER_CREATE non-empty: `airflow users create` from _AIRFLOW_WWW_USER_USERNAME
#     (admin), _PASSWORD, _FIRSTNAME, _LASTNAME, _EMAIL, _ROLE (Admin) (needs the FAB auth manager);
#   * _PIP_ADDITIONAL_REQUIREMENTS: pip-installed first (development only, as upstream warns);
#   * then `bash ...` and `python ...` run as given, `airflow <cmd>` and a bare `<cmd>` run as
#     `airflow <cmd>`, and any other program found on the PATH runs as given.
set -euo pipefail
umask 0002
: "${CONNECTION_CHECK_MAX_COUNT:=20}" "${CONNECTION_CHECK_SLEEP_TIME:=3}"
: "${AIRFLOW_USER_HOME_DIR:=/home/airflow}"

if ! whoami >/dev/null 2>&1; then
  if [ -w /etc/passwd ]; then
    echo "${USER_NAME:-default}:x:$(id -u):0:${USER_NAME:-default} user:${AIRFLOW_USER_HOME_DIR}:/sbin/nologin" >>/etc/passwd
  fi
  export HOME="$AIRFLOW_USER_HOME_DIR"
fi

command=${1:-}
if [ "$command" = airflow ]; then command=${2:-}; fi

wait_for_airflow_db() {
  local count=0
  while ! airflow db check >/dev/null 2>&1; do
    count=$((count + 1))
    if [ "$count" -ge "$CONNECTION_CHECK_MAX_COUNT" ]; then
      echo "entrypoint: the metadata database does not answer after $count tries:" >&2
      airflow db check >&2 || true
      exit 1
    fi
    echo "entrypoint: waiting for the metadata database ($count/$CONNECTION_CHECK_MAX_COUNT)" >&2
    sleep "$CONNECTION_CHECK_SLEEP_TIME"
  done
}

if [ -n "${_PIP_ADDITIONAL_REQUIREMENTS:-}" ]; then
  echo "entrypoint: installing _PIP_ADDITIONAL_REQUIREMENTS (development only: build an image instead)" >&2
  # shellcheck disable=SC2086
  pip install --no-cache-dir ${_PIP_ADDITIONAL_REQUIREMENTS}
fi

case "$command" in
  "" | version | info | cheat-sheet | config) ;;
  *) if [ "$CONNECTION_CHECK_MAX_COUNT" -gt 0 ] && [ "$command" != bash ] && [ "$command" != python ]; then wait_for_airflow_db; fi ;;
esac
if [ -n "${_AIRFLOW_DB_MIGRATE:-}" ] || [ -n "${_AIRFLOW_DB_UPGRADE:-}" ]; then
  wait_for_airflow_db
  airflow db migrate
fi
if [ -n "${_AIRFLOW_WWW_USER_CREATE:-}" ]; then
  [ -n "${_AIRFLOW_WWW_USER_PASSWORD:-}" ] || { echo "entrypoint: _AIRFLOW_WWW_USER_PASSWORD is not set" >&2; exit 1; }
  airflow users create \
    --username "${_AIRFLOW_WWW_USER_USERNAME:-admin}" --password "$_AIRFLOW_WWW_USER_PASSWORD" \
    --firstname "${_AIRFLOW_WWW_USER_FIRSTNAME:-Airflow}" --lastname "${_AIRFLOW_WWW_USER_LASTNAME:-Admin}" \
    --email "${_AIRFLOW_WWW_USER_EMAIL:-airflowadmin@example.com}" --role "${_AIRFLOW_WWW_USER_ROLE:-Admin}" || true
fi

case "${1:-}" in
  "") exec airflow ;;
  bash) shift; exec /bin/bash "$@" ;;
  python) shift; exec python "$@" ;;
  airflow) shift; exec airflow "$@" ;;
esac
if [[ "$1" == */* ]] || command -v "$1" >/dev/null 2>&1; then
  exec "$@"
fi
exec airflow "$@"
