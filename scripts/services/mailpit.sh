#!/usr/bin/env bash
# Source me (scripts/stack.sh does): Mailpit, the mail server that receives the pipeline's alerts
# (docs/operations.md), built from source through the Go module proxy like MinIO.
#
#   SMTP     127.0.0.1:$MAILPIT_SMTP_PORT   what Airflow's smtp_default connection sends to (no auth, no TLS)
#   web UI   http://localhost:$MAILPIT_UI_PORT   where a person reads the alerts; the same port
#            serves the HTTP API the tests read (/api/v1/messages, /api/v1/search)
#
# Messages are kept in $STACK_DIR/data/mailpit/mailpit.db (the newest MAILPIT_MAX_MESSAGES).
#
# Needs: MAILPIT_VERSION (docs/versions.md), MAILPIT_SMTP_PORT, MAILPIT_UI_PORT (.env), Go, and
# the helpers of scripts/provision_common.sh.

mailpit_binary() { printf '%s/mailpit/%s/mailpit\n' "$CACHE_DIR" "$MAILPIT_VERSION"; }

mailpit_provision() { stack_go_install mailpit "github.com/axllent/mailpit@$MAILPIT_VERSION" "$(mailpit_binary)" "a few minutes"; }

mailpit_url() { printf 'http://localhost:%s (SMTP localhost:%s)\n' "$MAILPIT_UI_PORT" "$MAILPIT_SMTP_PORT"; }

mailpit_ports() { printf '%s\n' "$MAILPIT_SMTP_PORT" "$MAILPIT_UI_PORT"; }

mailpit_health_timeout() { printf '30\n'; }

mailpit_healthy() {
  curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:${MAILPIT_UI_PORT}/readyz" 2>/dev/null
}

mailpit_start() {
  local data_dir
  data_dir=$(stack_data_dir mailpit)
  mkdir -p "$data_dir"
  stack_spawn mailpit "$(mailpit_binary)" \
    --smtp "127.0.0.1:${MAILPIT_SMTP_PORT}" --listen "127.0.0.1:${MAILPIT_UI_PORT}" \
    --database "$data_dir/mailpit.db" --max "${MAILPIT_MAX_MESSAGES:-5000}" \
    --disable-version-check
}
