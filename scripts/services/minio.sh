#!/usr/bin/env bash
# Source me (scripts/stack.sh does): the MinIO server (S3 data lake), built from source through
# the Go module proxy, since MinIO publishes no binaries for community releases any more.
# Needs: MINIO_VERSION (docs/versions.md, a Go pseudo-version), MINIO_PORT, MINIO_CONSOLE_PORT,
# MINIO_ROOT_USER, MINIO_ROOT_PASSWORD, MINIO_BUCKET (.env), scripts/provision_common.sh.

minio_binary() { printf '%s/minio/%s/minio\n' "$CACHE_DIR" "$MINIO_VERSION"; }

minio_provision() {
  local binary
  binary=$(minio_binary)
  [ -x "$binary" ] && return 0
  mkdir -p "$(dirname "$binary")"
  stack_say "minio: building github.com/minio/minio@$MINIO_VERSION with $(go env GOVERSION) (several minutes on 2 cores; cached in $CACHE_DIR/minio)"
  # Module and build caches live in the project cache, so a rebuild after a version bump only
  # downloads and compiles what changed. GOTOOLCHAIN=local: never fetch another Go by surprise
  # (a caller may still export GOTOOLCHAIN to pick one).
  (
    export GOPATH="$CACHE_DIR/minio/gopath"
    export GOMODCACHE="$CACHE_DIR/minio/gopath/pkg/mod"
    export GOCACHE="$CACHE_DIR/minio/gocache"
    export GOBIN
    GOBIN=$(dirname "$binary")
    export CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOFLAGS=-buildvcs=false
    go install -trimpath -ldflags "-s -w" "github.com/minio/minio@$MINIO_VERSION"
  ) >"$CACHE_DIR/minio/build.log" 2>&1 || {
    tail -n 30 "$CACHE_DIR/minio/build.log" >&2
    stack_fail "minio: go install failed (full log: $CACHE_DIR/minio/build.log)"
    return 1
  }
}

minio_url() { printf 'http://localhost:%s\n' "$MINIO_PORT"; }

minio_ports() { printf '%s\n' "$MINIO_PORT" "$MINIO_CONSOLE_PORT"; }

minio_health_timeout() { printf '60\n'; }

minio_healthy() {
  curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:${MINIO_PORT}/minio/health/live" 2>/dev/null
}

minio_start() {
  local data_dir
  data_dir=$(stack_data_dir minio)
  mkdir -p "$data_dir"
  stack_spawn minio env \
    MINIO_ROOT_USER="$MINIO_ROOT_USER" MINIO_ROOT_PASSWORD="$MINIO_ROOT_PASSWORD" MINIO_UPDATE=off \
    "$(minio_binary)" server "$data_dir" \
    --address "127.0.0.1:${MINIO_PORT}" --console-address "127.0.0.1:${MINIO_CONSOLE_PORT}"
}

minio_post_start() {
  python - "$(minio_url)" "$MINIO_BUCKET" <<'PY'
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id=os.environ["MINIO_ROOT_USER"],
    aws_secret_access_key=os.environ["MINIO_ROOT_PASSWORD"],
    region_name="us-east-1",
    # Right after start MinIO may still answer 503 while it initialises: retry that.
    config=Config(retries={"mode": "standard", "max_attempts": 10}),
)
try:
    s3.head_bucket(Bucket=bucket)
except ClientError as error:
    if error.response["Error"]["Code"] not in ("404", "NoSuchBucket"):
        raise
    s3.create_bucket(Bucket=bucket)
    print(f"[stack] minio: created bucket {bucket}", file=sys.stderr)
PY
}
