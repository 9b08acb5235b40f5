"""docs/versions.md is the single source of versions: docker-compose.yaml, the Dockerfile,
requirements.in/.txt and the deployment tools must say the same."""

from __future__ import annotations

import pytest

from . import deploy_checks as checks

ROOT = checks.ROOT


@pytest.fixture(scope="module")
def versions() -> dict[str, str]:
    return checks.read_versions()


@pytest.fixture(scope="module")
def model() -> dict:
    return checks.load_compose_model(ROOT / "docker-compose.yaml", ROOT / ".env")


def test_compose_images_match_the_version_matrix(model, versions):
    assert checks.check_compose_versions(model, versions) == []


def test_dockerfile_matches_the_version_matrix(model, versions):
    assert checks.check_dockerfile_versions((ROOT / "Dockerfile").read_text(), model, versions) == []


@pytest.mark.parametrize("name", ["requirements.in", "requirements.txt"])
def test_python_pins_match_the_version_matrix(versions, name):
    assert checks.check_requirement_versions((ROOT / name).read_text(), versions, name) == []


def test_version_matrix_is_self_consistent(versions):
    assert checks.check_matrix_consistency(versions) == []


def test_deployment_tools_match_the_version_matrix(versions):
    assert checks.check_tool_versions(versions) == []


# ------------------------------------------------------------- each check can fail --
def test_a_compose_image_behind_the_matrix_is_reported(model, versions):
    bumped = {**versions, "KAFKA_VERSION": "9.9.9"}
    assert checks.check_compose_versions(model, bumped) == [
        "kafka: apache/kafka:4.1.1 but docs/versions.md KAFKA_VERSION says 9.9.9",
        "kafka-init: apache/kafka:4.1.1 but docs/versions.md KAFKA_VERSION says 9.9.9",
    ]


def test_a_spark_cluster_at_another_version_than_pyspark_is_reported(model, versions):
    bumped = {**versions, "SPARK_VERSION": "3.5.8"}
    problems = checks.check_compose_versions(model, bumped)
    assert sorted(p.split(":")[0] for p in problems) == ["spark-master", "spark-worker"]
    assert "3.5.8-scala2.12-java17-python3-ubuntu" in problems[0]


def test_an_unset_minio_release_is_reported(model, versions):
    pending = {k: v for k, v in versions.items() if k != "MINIO_IMAGE_TAG"} | {"MINIO_VERSION": "TBD"}
    problems = checks.check_compose_versions(model, pending)
    assert problems and all("not a MinIO RELEASE tag" in p for p in problems)


def test_an_image_without_a_version_rule_is_reported(model, versions):
    extra = {**model, "services": {**model["services"], "redis": {"image": "redis:7.2-bookworm", "healthcheck": {}}}}
    assert checks.check_compose_versions(extra, versions) == [
        "redis: image redis:7.2-bookworm has no version rule (add a row to docs/versions.md and to expected_images)"
    ]


def test_airflow_build_args_behind_the_matrix_are_reported(model, versions):
    bumped = {**versions, "AIRFLOW_VERSION": "3.4.0"}
    problems = checks.check_compose_versions(model, bumped)
    assert any("build arg AIRFLOW_VERSION=3.3.2 but docs/versions.md says 3.4.0" in p for p in problems)
    assert any(
        "ecommerce-profiles-airflow:3.3.2 but docs/versions.md AIRFLOW_VERSION says 3.4.0" in p for p in problems
    )


def test_a_dockerfile_behind_the_matrix_is_reported(model, versions):
    text = (ROOT / "Dockerfile").read_text().replace("ARG AIRFLOW_VERSION=3.3.2", "ARG AIRFLOW_VERSION=3.3.1")
    problems = checks.check_dockerfile_versions(text, model, versions)
    assert any("Dockerfile ARG AIRFLOW_VERSION=3.3.1" in p for p in problems)
    java = checks.check_dockerfile_versions(
        (ROOT / "Dockerfile").read_text(), model, {**versions, "JAVA_VERSION": "21"}
    )
    assert any("openjdk-21-jre-headless" in p for p in java)


def test_a_requirement_pin_behind_the_matrix_is_reported(versions):
    text = (ROOT / "requirements.in").read_text().replace("pyspark==3.5.7", "pyspark==3.5.6")
    assert checks.check_requirement_versions(text, versions, "requirements.in") == [
        f"requirements.in: pyspark==3.5.6 but docs/versions.md SPARK_VERSION says {versions['SPARK_VERSION']}"
    ]
    text = (
        (ROOT / "requirements.in")
        .read_text()
        .replace("apache-airflow-providers-http==", "apache-airflow-providers-http>=")
    )
    assert checks.check_requirement_versions(text, versions, "requirements.in") == [
        f"requirements.in: apache-airflow-providers-http==None but docs/versions.md AIRFLOW_PROVIDER_HTTP says {versions['AIRFLOW_PROVIDER_HTTP']}"
    ]


def test_every_provider_row_maps_to_its_package(versions):
    pins = checks.expected_pins(versions)
    assert pins["apache-airflow-providers-apache-spark"] == (
        versions["AIRFLOW_PROVIDER_APACHE_SPARK"],
        "AIRFLOW_PROVIDER_APACHE_SPARK",
    )
    assert pins["apache-airflow-providers-elasticsearch"][1] == "AIRFLOW_PROVIDER_ELASTICSEARCH"


def test_inconsistent_matrix_rows_are_reported(versions):
    assert checks.check_matrix_consistency({**versions, "KIBANA_VERSION": "8.19.20"}) == [
        "KIBANA_VERSION must equal ES_VERSION"
    ]
    other_release = {
        **versions,
        "MINIO_VERSION": "v0.0.0-20251015172955-9e49d5e7a648",
        "MINIO_IMAGE_TAG": "RELEASE.2025-09-07T16-13-09Z",
    }
    assert checks.check_matrix_consistency(other_release) == [
        "MINIO_VERSION v0.0.0-20251015172955-9e49d5e7a648 and MINIO_IMAGE_TAG RELEASE.2025-09-07T16-13-09Z are different releases"
    ]


def test_a_tool_built_at_another_version_is_reported(versions):
    problems = checks.check_tool_versions({**versions, "DOCKER_COMPOSE_VERSION": "5.5.1", "BUILDKIT_VERSION": "0.34.2"})
    assert any("buildkit v0.33.1 but docs/versions.md says 0.34.2" in p for p in problems)
    assert any("docs/versions.md says 5.5.1: rerun scripts/provision_tools.sh" in p for p in problems)
