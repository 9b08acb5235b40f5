#!/bin/sh
# Entry point of the MinIO stand-in, as the official image's: a command that is not `minio`
# (server, ...) gets `minio` in front of it; anything else that is a program runs as given.
set -e
if [ "$1" != minio ] && [ -n "$1" ] && ! command -v "$1" >/dev/null 2>&1; then
  set -- minio "$@"
fi
exec "$@"
