"""The local MinIO server (scripts/services/minio.sh): real S3 calls through boto3, as the root
account (set-up, tests) and as the pipeline's own user (least privilege)."""

from __future__ import annotations

import json
import os
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from ecommerce_profiles.connections import lake_admin_settings_from_env, lake_settings_from_env

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


@pytest.fixture()
def pipeline_s3(stack):
    settings = lake_settings_from_env()
    assert settings.access_key == os.environ["MINIO_PIPELINE_USER"] != os.environ["MINIO_ROOT_USER"]
    return settings.boto3_client()


@pytest.fixture()
def root_bucket(s3):
    """Creates buckets with the root account (as tests and benchmarks do) and empties and deletes them afterwards."""
    created: list[str] = []

    def make(name: str) -> str:
        s3.create_bucket(Bucket=name)
        created.append(name)
        return name

    yield make
    for name in created:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                s3.delete_object(Bucket=name, Key=item["Key"])
        s3.delete_bucket(Bucket=name)


def _denied(call) -> None:
    with pytest.raises(ClientError) as raised:
        call()
    assert raised.value.response["Error"]["Code"] == "AccessDenied", raised.value.response


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


# ---------------------------------------------------------------- the pipeline user (least privilege) --
def test_airflow_connection_logs_in_as_the_pipeline_user_not_root():
    conn = json.loads(os.environ["AIRFLOW_CONN_MINIO_DEFAULT"])
    assert (conn["login"], conn["password"]) == (
        os.environ["MINIO_PIPELINE_USER"],
        os.environ["MINIO_PIPELINE_PASSWORD"],
    )
    assert conn["login"] != os.environ["MINIO_ROOT_USER"]


def test_pipeline_user_reads_writes_lists_and_deletes_in_its_bucket_and_a_sibling(stack, pipeline_s3, root_bucket):
    # Tests and benchmarks run the pipeline on sibling buckets <MINIO_BUCKET>-<purpose>-<uuid>.
    sibling = root_bucket(f"{stack['bucket']}-test-{uuid.uuid4().hex[:12]}")
    for bucket in (stack["bucket"], sibling):
        key = f"tests/stack/{uuid.uuid4().hex}/part-0.json"
        body = f'{{"marker": "{uuid.uuid4().hex}"}}'.encode()
        pipeline_s3.put_object(Bucket=bucket, Key=key, Body=body)
        assert pipeline_s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
        listed = pipeline_s3.list_objects_v2(Bucket=bucket, Prefix=key.rsplit("/", 1)[0] + "/")
        assert [o["Key"] for o in listed.get("Contents", [])] == [key]
        pipeline_s3.delete_object(Bucket=bucket, Key=key)
        assert pipeline_s3.list_objects_v2(Bucket=bucket, Prefix=key)["KeyCount"] == 0


def test_pipeline_user_is_denied_other_buckets_bucket_creation_and_admin(stack, s3, pipeline_s3, root_bucket):
    other = root_bucket(f"other-{uuid.uuid4().hex[:12]}")
    s3.put_object(Bucket=other, Key="secret.txt", Body=b"not for the pipeline")
    _denied(lambda: pipeline_s3.put_object(Bucket=other, Key="x", Body=b"x"))
    _denied(lambda: pipeline_s3.get_object(Bucket=other, Key="secret.txt"))
    _denied(lambda: pipeline_s3.list_objects_v2(Bucket=other))
    _denied(lambda: pipeline_s3.delete_object(Bucket=other, Key="secret.txt"))
    # No bucket creation, not even of a name its policy covers, and no bucket deletion.
    sibling_name = f"{stack['bucket']}-new-{uuid.uuid4().hex[:12]}"
    _denied(lambda: pipeline_s3.create_bucket(Bucket=sibling_name))
    assert sibling_name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    empty_sibling = root_bucket(f"{stack['bucket']}-test-{uuid.uuid4().hex[:12]}")
    _denied(lambda: pipeline_s3.delete_bucket(Bucket=empty_sibling))
    # MinIO lists only the buckets a user may use.
    assert other not in [b["Name"] for b in pipeline_s3.list_buckets()["Buckets"]]
    assert s3.get_object(Bucket=other, Key="secret.txt")["Body"].read() == b"not for the pipeline"


def test_pipeline_user_cannot_use_the_admin_api(stack):
    from urllib.parse import urlsplit

    from minio import MinioAdmin
    from minio.credentials import StaticProvider
    from minio.error import MinioAdminException

    settings, url = lake_settings_from_env(), urlsplit(stack["minio"])
    admin = MinioAdmin(
        endpoint=url.netloc, secure=False, credentials=StaticProvider(settings.access_key, settings.secret_key)
    )
    with pytest.raises(MinioAdminException) as raised:
        admin.user_list()
    assert "AccessDenied" in str(raised.value)
    root = lake_admin_settings_from_env()
    root_admin = MinioAdmin(
        endpoint=url.netloc, secure=False, credentials=StaticProvider(root.access_key, root.secret_key)
    )
    assert json.loads(root_admin.user_info(settings.access_key))["policyName"] == "ecommerce-pipeline"
