"""The Dockerfile, checked statically: BuildKit's Dockerfile checks (offline), the build context,
and the paths the image bakes in versus what docker-compose.yaml expects."""

from __future__ import annotations

import pytest

from . import deploy_checks as checks

ROOT = checks.ROOT
DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def model() -> dict:
    return checks.load_compose_model(ROOT / "docker-compose.yaml", ROOT / ".env")


def test_dockerfile_passes_buildkit_checks():
    assert checks.check_dockerfile_lint(DOCKERFILE) == []


def test_dockerfile_asks_buildkit_to_fail_on_check_warnings():
    # `docker build` then refuses a Dockerfile with warnings, not only this test.
    assert "# check=error=true" in DOCKERFILE.read_text().splitlines()[:3]


def test_final_image_runs_as_airflow():
    assert checks.check_dockerfile_user(DOCKERFILE.read_text()) == []
    text = DOCKERFILE.read_text() + "USER root\n"
    assert checks.check_dockerfile_user(text) == ["the final image runs as 'root', not airflow"]


def test_build_context_has_every_copied_file():
    assert checks.check_copy_sources(DOCKERFILE, ROOT) == []


def test_a_copy_of_a_missing_or_ignored_file_is_reported(tmp_path):
    context = tmp_path / "context"
    context.mkdir()
    (context / "requirements.txt").write_text("pyspark==3.5.7\n")
    (context / "dags").mkdir()
    (context / "dags" / "dag.py").write_text("")
    (context / ".dockerignore").write_text("dags\n")
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(
        "FROM python:3.11\nCOPY requirements.txt /r.txt\nCOPY dags/ /dags/\nCOPY spark_jobs/ /jobs/\n"
    )
    assert checks.check_copy_sources(dockerfile, context) == [
        "COPY dags/: excluded by .dockerignore",
        "COPY spark_jobs/: not in the build context",
    ]


def test_dockerignore_keeps_secrets_and_data_out_but_the_build_inputs_in():
    patterns = checks.read_dockerignore(ROOT / ".dockerignore")
    for path in (
        ".env",
        "data/electronics.csv",
        ".cache/venv/bin/python",
        ".stack/logs/kafka.log",
        "plugins/ecommerce_profiles/__pycache__/x.pyc",
        "tests/conftest.py",
        "docs/deployment.md",
    ):
        assert checks.dockerignored(path, patterns), path
    for path in (
        "docs/versions.md",
        "scripts/spark_jars.sh",
        "requirements.txt",
        "plugins/ecommerce_profiles/kibana.py",
    ):
        assert not checks.dockerignored(path, patterns), path


def test_image_paths_match_the_compose_environment(model):
    assert checks.check_image_matches_compose(DOCKERFILE.read_text(), model) == []
    text = DOCKERFILE.read_text().replace(
        "SPARK_JARS_DIR=/opt/spark-jars \\\n    PIPELINE_PROJECT_DIR",
        "SPARK_JARS_DIR=/opt/jars \\\n    PIPELINE_PROJECT_DIR",
    )
    assert any(
        "SPARK_JARS_DIR=/opt/spark-jars but the image sets /opt/jars" in p
        for p in checks.check_image_matches_compose(text, model)
    )


def test_connector_jars_are_resolved_at_build_time_by_the_shared_script():
    stages = checks.dockerfile_stages(DOCKERFILE.read_text())
    jar_stage = next(s for s in stages if s["name"] == "spark-jars")
    runs = " ".join(a for w, a in jar_stage["instructions"] if w == "RUN")
    assert "scripts/spark_jars.sh" in runs
    final = stages[-1]["instructions"]
    assert ("COPY", "--from=spark-jars /opt/spark-jars /opt/spark-jars") in final
    pip = next(a for w, a in final if w == "RUN" and "pip install" in a)
    assert '"apache-airflow==${AIRFLOW_VERSION}" -r /requirements.txt' in pip and "--no-cache-dir" in pip


def test_dockerfile_parser_joins_continuations_and_skips_comments():
    text = "# c\nFROM a:1 AS b\nRUN x \\\n  # inner comment\n  && y\nENV A=1 \\\n    B=2\n"
    stages = checks.dockerfile_stages(text)
    assert stages[1]["name"] == "b"
    assert stages[1]["instructions"] == [("RUN", "x && y"), ("ENV", "A=1 B=2")]
    assert checks.dockerfile_env(stages[1]) == {"A": "1", "B": "2"}
