#!/bin/bash
# Entry point of the Elasticsearch stand-in, the part of the official image's contract that
# docker-compose files use: environment variables whose names look like settings (lower case,
# with dots: discovery.type, cluster.routing...) become -E options, ES_JAVA_OPTS reaches the
# JVM, and it listens on every interface of the container (network.host=0.0.0.0).
# The integ-test-zip has no x-pack: xpack.* settings are ignored with a warning (it would refuse
# them as unknown), and ELASTIC_PASSWORD means nothing to it.
set -euo pipefail
if [ "${1:-eswrapper}" != eswrapper ] && [ "${1:-}" != elasticsearch ]; then exec "$@"; fi
[ $# -gt 0 ] && shift
settings=(-E network.host=0.0.0.0)
while IFS= read -r name; do
  case "$name" in
    xpack.*) echo "elasticsearch stand-in: ignoring $name (this distribution has no x-pack)" >&2 ;;
    *) settings+=(-E "$name=${!name}") ;;
  esac
done < <(env | sed -n 's/^\([a-z0-9_]\{1,\}\.[a-z0-9_.]\{1,\}\)=.*/\1/p' | sort -u)
if [ -n "${ELASTIC_PASSWORD:-}" ]; then
  echo "elasticsearch stand-in: ELASTIC_PASSWORD is set, but this distribution has no security (the authenticating proxy in front checks logins)" >&2
fi
exec /usr/share/elasticsearch/bin/elasticsearch "${settings[@]}" "$@"
