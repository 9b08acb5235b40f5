"""The local MinIO server (scripts/services/minio.sh): real S3 calls through boto3."""

from __future__ import annotations

import os
import uuid

import boto3
import pytest

from .stack_cli import assert_status_up, assert_up_refuses_taken_port


@pytest.fixture()
def s3(stack):
    return boto3.client(
        "s3",
        endpoint_url=stack["minio"],
        aws_access_key_id=os.environ["MINIO_ROOT_USER"],
        aws_secret_access_key=os.environ["MINIO_ROOT_PASSWORD"],
        region_name="us-east-1",
    )


def test_lake_bucket_exists(stack, s3):
    names = [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]]
    assert stack["bucket"] in names


def test_object_put_list_get_round_trip(stack, s3):
    prefix = f"tests/stack/{uuid.uuid4().hex}/"
    key = f"{prefix}event_date=2020-01-01/part-0.json"
    body = f'{{"user_id": 1, "marker": "{uuid.uuid4().hex}"}}\n'.encode()
    s3.put_object(Bucket=stack["bucket"], Key=key, Body=body)
    try:
        listed = s3.list_objects_v2(Bucket=stack["bucket"], Prefix=prefix)
        assert [(obj["Key"], obj["Size"]) for obj in listed.get("Contents", [])] == [(key, len(body))]
        assert s3.get_object(Bucket=stack["bucket"], Key=key)["Body"].read() == body
    finally:
        s3.delete_object(Bucket=stack["bucket"], Key=key)
    assert s3.list_objects_v2(Bucket=stack["bucket"], Prefix=prefix)["KeyCount"] == 0


def test_status_reports_minio_up_with_its_url(stack):
    assert_status_up("minio", stack["minio"])


def test_up_fails_clearly_when_the_minio_port_is_taken(tmp_path):
    assert_up_refuses_taken_port(tmp_path, "minio", "MINIO_PORT", "MINIO_CONSOLE_PORT", "http://localhost:{port}")
