#!/usr/bin/env bash
# Source me (scripts/stack.sh does): the MinIO server (S3 data lake), built from source through
# the Go module proxy, since MinIO publishes no binaries for community releases any more.
#
# Post-start (idempotent, every `up`): the bucket MINIO_BUCKET, and the pipeline's own user
# MINIO_PIPELINE_USER with the policy `ecommerce-pipeline` (minio_pipeline_policy_json): objects
# of MINIO_BUCKET and of the sibling buckets MINIO_BUCKET-* (tests and benchmarks:
# MINIO_BUCKET-<purpose>-<uuid>) may be read, written, listed and deleted; buckets cannot be
# created or deleted and the admin API is refused. Compose's minio-init applies the same policy
# with `mc`; here there is no `mc`, so the admin API is called through the `minio` Python
# package's MinioAdmin (a native client of MinIO's admin API since 7.2, no `mc` needed).
#
# Needs: MINIO_VERSION (docs/versions.md, a Go pseudo-version), MINIO_PORT, MINIO_CONSOLE_PORT,
# MINIO_ROOT_USER, MINIO_ROOT_PASSWORD, MINIO_BUCKET, MINIO_PIPELINE_USER, MINIO_PIPELINE_PASSWORD
# (.env), scripts/provision_common.sh.

minio_binary() { printf '%s/minio/%s/minio\n' "$CACHE_DIR" "$MINIO_VERSION"; }

minio_provision() { stack_go_install minio "github.com/minio/minio@$MINIO_VERSION" "$(minio_binary)" "several minutes"; }

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

MINIO_PIPELINE_POLICY=ecommerce-pipeline

# The pipeline user's policy for bucket $1: the same JSON as Compose's minio-init writes
# (tests/deployment compares them).
minio_pipeline_policy_json() {
  cat <<EOF
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
      "Resource": ["arn:aws:s3:::$1", "arn:aws:s3:::$1-*"]
    },
    {
      "Effect": "Allow",
      "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
      "Resource": ["arn:aws:s3:::$1/*", "arn:aws:s3:::$1-*/*"]
    }
  ]
}
EOF
}

minio_post_start() {
  # Secrets travel in the environment (scripts/env.sh exports .env), never as arguments.
  python - "$(minio_url)" "$MINIO_BUCKET" "$MINIO_PIPELINE_POLICY" "$(minio_pipeline_policy_json "$MINIO_BUCKET")" <<'PY'
import json
import os
import sys
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from minio import MinioAdmin
from minio.credentials import StaticProvider
from minio.error import MinioAdminException

endpoint, bucket, policy_name, policy = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
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

user, password = os.environ.get("MINIO_PIPELINE_USER"), os.environ.get("MINIO_PIPELINE_PASSWORD")
if not user or not password:
    sys.exit("[stack] ERROR: minio: MINIO_PIPELINE_USER and MINIO_PIPELINE_PASSWORD must be set (.env)")
url = urlsplit(endpoint)
admin = MinioAdmin(endpoint=url.netloc, secure=url.scheme == "https",
                   credentials=StaticProvider(os.environ["MINIO_ROOT_USER"], os.environ["MINIO_ROOT_PASSWORD"]))
admin.policy_add(policy_name, policy=policy)  # creates or replaces
admin.user_add(user, password)                # creates, or resets the password of, the user
attached = json.loads(admin.user_info(user)).get("policyName") or ""
if policy_name not in attached.split(","):
    try:
        admin.attach_policy([policy_name], user=user)
    except MinioAdminException as error:
        if "already in effect" not in str(error):
            raise
print(f"[stack] minio: user {user} limited to the objects of {bucket} and {bucket}-* (policy {policy_name})",
      file=sys.stderr)
PY
}
