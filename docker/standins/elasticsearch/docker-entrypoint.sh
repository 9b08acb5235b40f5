#!/bin/bash
# Entry point of the Elasticsearch stand-in, the part of the official image's contract that
# docker-compose files use: environment variables whose names look like settings (lower case,
# with dots: discovery.type, cluster.routing...) become -E options, ES_JAVA_OPTS reaches the
# JVM, ELASTIC_PASSWORD becomes the bootstrap password of `elastic` in the keystore, and it listens
# on every interface of the container (network.host=0.0.0.0).
# The integ-test-zip ships x-pack-security (on by default, as in the official image) but not the
# analysis-common module its .security index needs: `elastic` logs in with the bootstrap
# password, but users and roles cannot be created ("Unknown filter type [pattern_capture]"), so
# docker-compose.standin.yaml runs it with xpack.security.enabled=false behind nginx.
set -euo pipefail
if [ "${1:-eswrapper}" != eswrapper ] && [ "${1:-}" != elasticsearch ]; then exec "$@"; fi
[ $# -gt 0 ] && shift
settings=(-E network.host=0.0.0.0)
# Dotted names are not shell variables: read them from the environment block itself.
while IFS= read -r -d '' entry; do
  name=${entry%%=*} value=${entry#*=}
  [[ "$name" =~ ^[a-z0-9_]+\.[a-z0-9_.]+$ ]] || continue
  settings+=(-E "$name=$value")
done < <(env -0)
# The official image's ELASTIC_PASSWORD: the bootstrap password of `elastic`, kept in the keystore.
if [ -n "${ELASTIC_PASSWORD:-}" ]; then
  [ -f config/elasticsearch.keystore ] || bin/elasticsearch-keystore create >/dev/null
  if ! bin/elasticsearch-keystore list | grep -qx bootstrap.password; then
    printf '%s' "$ELASTIC_PASSWORD" | bin/elasticsearch-keystore add -x bootstrap.password
  fi
fi
exec /usr/share/elasticsearch/bin/elasticsearch "${settings[@]}" "$@"
