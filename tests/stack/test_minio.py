"""The local MinIO server (scripts/services/minio.sh): real S3 calls through boto3."""

from __future__ import annotations

import os
import re
import socket
import uuid

import boto3
import pytest

from .stack_cli import run_stack, unused_port


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
    result = run_stack("status", "minio")
    assert result.returncode == 0, result.stderr
    assert re.search(rf"^minio\s+up\s+{re.escape(stack['minio'])}$", result.stdout, re.MULTILINE), result.stdout


def test_up_fails_clearly_when_the_minio_port_is_taken(tmp_path):
    """A dummy listener on the S3 port: `up` must refuse and name the service and port."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken_port = squatter.getsockname()[1]
        result = run_stack(
            "up",
            "minio",
            env={
                "STACK_DIR": str(tmp_path / "stack"),
                "MINIO_PORT": str(taken_port),
                "MINIO_CONSOLE_PORT": str(unused_port()),
            },
        )
    assert result.returncode != 0
    assert f"minio (http://localhost:{taken_port})" in result.stderr
    assert f"port {taken_port} is already taken" in result.stderr
    assert not (tmp_path / "stack" / "pids" / "minio.pid").exists(), "nothing may have been started"
