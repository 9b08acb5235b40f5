#!/bin/bash
# Entry point of the PostgreSQL stand-in, the official image's contract as docker-compose files
# use it: started as root it fixes the ownership of PGDATA and re-runs itself as `postgres`; an
# empty PGDATA is initialised with POSTGRES_USER (default postgres) as superuser, its password
# POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), password logins from any
# host (scram-sha-256), the database POSTGRES_DB (default: the user's name) and the scripts of
# /docker-entrypoint-initdb.d; then the server runs in the foreground, listening on every address.
set -euo pipefail
if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi
if [ "$1" != postgres ]; then exec "$@"; fi
: "${PGDATA:=/var/lib/postgresql/data}"
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  user=${POSTGRES_USER:-postgres}
  db=${POSTGRES_DB:-$user}
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo "postgres: Database is uninitialized and superuser password is not specified (POSTGRES_PASSWORD; or POSTGRES_HOST_AUTH_METHOD=trust)" >&2
    exit 1
  fi
  echo "postgres: initialising $PGDATA (superuser $user, database $db)"
  pwfile=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
  # shellcheck disable=SC2086
  initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host="$auth" \
    --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  # A private server (unix socket only) while the database and the init scripts are set up.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  export PGUSER=$user PGHOST=/var/run/postgresql
  if [ "$db" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --dbname postgres -q -c "CREATE DATABASE \"$db\""
  fi
  for script in /docker-entrypoint-initdb.d/*; do
    case "$script" in
      *.sh) echo "postgres: running $script"; . "$script" ;;
      *.sql) echo "postgres: running $script"; psql -v ON_ERROR_STOP=1 --dbname "$db" -f "$script" ;;
      *.sql.gz) echo "postgres: running $script"; gunzip -c "$script" | psql -v ON_ERROR_STOP=1 --dbname "$db" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  unset PGUSER PGHOST
  echo "postgres: initialised"
fi
exec "$@"
