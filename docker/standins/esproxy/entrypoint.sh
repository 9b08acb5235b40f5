#!/bin/bash
# nginx demanding HTTP basic auth in front of Elasticsearch, configured from the environment at
# every start (the local stack's esproxy, as a container):
#   ESPROXY_UPSTREAM         host:port of Elasticsearch (default elasticsearch-node:9200)
#   ELASTICSEARCH_USER / ELASTICSEARCH_PASSWORD   the pipeline's login (required)
#   ELASTIC_PASSWORD         optional: also let `elastic` in (set-up jobs, health checks, people)
# Passwords are hashed (apr1, openssl reads them on stdin) into a 0600 htpasswd that only the
# nginx workers' user can read; the Authorization header stops at the proxy.
set -euo pipefail
upstream=${ESPROXY_UPSTREAM:-elasticsearch-node:9200}
dir=/run/esproxy
umask 077
: >"$dir/htpasswd"
add_user() {
  case "$1" in '' | *:* | *[[:space:]]*) echo "esproxy: bad user name '$1'" >&2; exit 1 ;; esac
  [ -n "$2" ] || { echo "esproxy: no password for $1" >&2; exit 1; }
  printf '%s:%s\n' "$1" "$(printf '%s\n' "$2" | openssl passwd -apr1 -stdin)" >>"$dir/htpasswd"
}
add_user "${ELASTICSEARCH_USER:-}" "${ELASTICSEARCH_PASSWORD:-}"
[ -z "${ELASTIC_PASSWORD:-}" ] || add_user elastic "$ELASTIC_PASSWORD"
chown www-data:www-data "$dir/htpasswd"
cat >"$dir/nginx.conf" <<CONF
daemon off;
user www-data;
worker_processes 1;
pid $dir/nginx.pid;
error_log stderr warn;
events { worker_connections 512; }
http {
  map \$status \$esproxy_log_it { ~^[45] 1; default 0; }
  access_log /dev/stdout combined if=\$esproxy_log_it;
  server_tokens off;
  # Docker's DNS, asked at request time: the node may start later or come back with another address.
  resolver 127.0.0.11 valid=10s ipv6=off;
  server {
    listen 9200;
    auth_basic "elasticsearch";
    auth_basic_user_file $dir/htpasswd;
    client_max_body_size 100m;
    location / {
      set \$elasticsearch http://$upstream;
      proxy_pass \$elasticsearch;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header Authorization "";
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_read_timeout 300s;
      proxy_send_timeout 300s;
    }
  }
}
CONF
nginx -t -q -c "$dir/nginx.conf"
echo "esproxy: basic auth in front of http://$upstream for $(cut -d: -f1 "$dir/htpasswd" | paste -sd, -)"
exec nginx -c "$dir/nginx.conf"
