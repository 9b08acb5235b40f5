"""The image variables of docker-compose.yaml and the stand-ins behind them, checked without a
Docker engine: every image is chosen through a variable whose default is the official image
(so a machine with registry access runs them unchanged), scripts/compose_images.sh knows the same
official image and a stand-in for each variable, and each stand-in's Dockerfile exists, builds
only from the local base image and never asks for a frontend image."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from . import deploy_checks as checks

ROOT = checks.ROOT
STANDINS = ROOT / "docker" / "standins"
IMAGE_VARIABLE = re.compile(r"^\$\{([A-Z][A-Z0-9_]*_IMAGE):-([^}]+)\}$")
# The image Compose builds from ./Dockerfile is the project's own, not chosen by a variable.
BUILT_IMAGE = "ecommerce-profiles-airflow:"


def compose(name: str = "docker-compose.yaml") -> dict:
    return yaml.safe_load((ROOT / name).read_text())


class _Tagged(yaml.SafeLoader):
    """Reads Compose's !reset / !override tags as plain values."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_scalar(node)


_Tagged.add_multi_constructor("!", _tagged)


@pytest.fixture(scope="module")
def catalogue() -> dict[str, dict[str, str]]:
    """variable -> {name, official, standin} from `scripts/compose_images.sh list`."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    out = subprocess.run(
        ["bash", str(ROOT / "scripts/compose_images.sh"), "list"], capture_output=True, text=True, check=True, env=env
    ).stdout
    rows = {}
    for line in out.splitlines()[1:]:
        name, variable, official, standin = line.split()
        rows[variable] = {"name": name, "official": official, "standin": standin}
    return rows


def image_variables(model: dict) -> dict[str, tuple[str, str]]:
    """service -> (variable, default) for every image given as ${VAR:-default}."""
    found = {}
    for service, spec in model["services"].items():
        image = spec.get("image") or ""
        if image.startswith(BUILT_IMAGE):
            continue
        match = IMAGE_VARIABLE.match(image)
        assert match, f"{service}: image {image!r} is not chosen through a ${{..._IMAGE:-official}} variable"
        found[service] = (match.group(1), match.group(2))
    return found


def test_every_image_is_a_variable_defaulting_to_the_official_image(catalogue):
    variables = image_variables(compose())
    assert {v for v, _ in variables.values()} >= {
        "POSTGRES_IMAGE",
        "KAFKA_IMAGE",
        "MINIO_IMAGE",
        "MC_IMAGE",
        "SPARK_IMAGE",
        "ELASTICSEARCH_IMAGE",
        "KIBANA_IMAGE",
        "MAILPIT_IMAGE",
    }
    for service, (variable, default) in variables.items():
        if variable == "KIBANA_IMAGE":  # no stand-in: left out by the override
            assert default == f"docker.elastic.co/kibana/kibana:{checks.read_versions()['KIBANA_VERSION']}"
            continue
        assert variable in catalogue, f"{service}: {variable} is unknown to scripts/compose_images.sh"
        assert default == catalogue[variable]["official"], (service, variable)


def test_the_defaults_are_the_versions_of_docs_versions_md():
    v = checks.read_versions()
    defaults = {var: default for var, default in image_variables(compose()).values()}
    assert defaults["POSTGRES_IMAGE"] == f"postgres:{v['POSTGRES_VERSION']}"
    assert defaults["KAFKA_IMAGE"] == f"apache/kafka:{v['KAFKA_VERSION']}"
    assert defaults["MINIO_IMAGE"] == defaults["MC_IMAGE"] == f"quay.io/minio/minio:{v['MINIO_IMAGE_TAG']}"
    assert defaults["SPARK_IMAGE"] == f"apache/spark:{checks.spark_image_tag(v)}"
    assert defaults["ELASTICSEARCH_IMAGE"] == f"docker.elastic.co/elasticsearch/elasticsearch:{v['ES_VERSION']}"
    assert defaults["MAILPIT_IMAGE"] == f"axllent/mailpit:{v['MAILPIT_VERSION']}"


def test_the_dockerfile_base_images_are_build_args_with_the_official_defaults(catalogue):
    args = checks.dockerfile_args((ROOT / "Dockerfile").read_text())
    build_args = compose()["x-airflow-common"]["build"]["args"]
    v = checks.read_versions()
    assert args["AIRFLOW_BASE_IMAGE"] == "apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}"
    assert build_args["AIRFLOW_BASE_IMAGE"] == (
        f"${{AIRFLOW_BASE_IMAGE:-apache/airflow:{v['AIRFLOW_VERSION']}-python{v['PYTHON_VERSION']}}}"
    )
    for variable in ("SPARK_IMAGE", "MAVEN_IMAGE"):
        assert build_args[variable] == f"${{{variable}:-{args[variable]}}}"
        assert args[variable] == catalogue[variable]["official"]
    assert catalogue["AIRFLOW_BASE_IMAGE"]["official"] == (
        f"apache/airflow:{v['AIRFLOW_VERSION']}-python{v['PYTHON_VERSION']}"
    )
    stages = checks.dockerfile_stages((ROOT / "Dockerfile").read_text())
    assert stages[-1]["base"] == "${AIRFLOW_BASE_IMAGE}"


def test_every_variable_has_a_standin_dockerfile(catalogue):
    for variable, row in catalogue.items():
        name = "minio" if row["name"] == "mc" else row["name"]  # the server image ships mc
        dockerfile = STANDINS / name / "Dockerfile"
        assert dockerfile.is_file(), f"{variable}: {dockerfile.relative_to(ROOT)} is missing"
        assert row["standin"].startswith("ecommerce-profiles-standin/"), row
    assert {p.name for p in STANDINS.iterdir() if p.is_dir()} == {
        "airflow",
        "postgres",
        "kafka",
        "minio",
        "spark",
        "maven",
        "elasticsearch",
        "esproxy",
        "mailpit",
    }


def _copied_files(dockerfile: Path) -> list[Path]:
    """Local files a stand-in COPYs (not --from), relative to its build context."""
    context = ROOT if dockerfile.parent.name in ("airflow", "elasticsearch") else dockerfile.parent
    files = []
    for word, args in checks.dockerfile_instructions(dockerfile.read_text()):
        if word == "COPY" and "--from=" not in args:
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            files += [context / s for s in sources]
    return files


@pytest.mark.parametrize("dockerfile", sorted(STANDINS.glob("*/Dockerfile")), ids=lambda p: p.parent.name)
def test_standin_dockerfiles_build_from_the_local_base_only(dockerfile):
    text = dockerfile.read_text()
    # A `# syntax=` line makes BuildKit pull a frontend image from a registry.
    assert not re.search(r"^#\s*syntax\s*=", text, re.M | re.I)
    bases = [stage["base"] for stage in checks.dockerfile_stages(text)[1:]]
    assert bases and set(bases) == {"${BASE_IMAGE}"}, bases
    assert checks.dockerfile_args(text)["BASE_IMAGE"] == "ecommerce-profiles/debian:bookworm"
    for path in _copied_files(dockerfile):
        assert path.exists(), f"{dockerfile.relative_to(ROOT)}: COPY source {path.relative_to(ROOT)} is missing"
        if (
            path.is_file()
            and path.suffix != ".properties"
            and path.name != "requirements.txt"
            and "scripts" not in path.parts
        ):
            assert os.access(path, os.X_OK), f"{path.relative_to(ROOT)} is not executable"


def test_the_project_dockerfile_has_no_syntax_line():
    assert not re.search(r"^#\s*syntax\s*=", (ROOT / "Dockerfile").read_text(), re.M | re.I)


def test_standin_override_leaves_out_kibana_and_fronts_elasticsearch_with_the_proxy():
    override = yaml.load((ROOT / "docker-compose.standin.yaml").read_text(), Loader=_Tagged)
    services = override["services"]
    assert services["kibana"]["profiles"] == ["kibana"]
    assert services["elasticsearch"]["image"].startswith("${ESPROXY_IMAGE:-")
    assert services["elasticsearch"]["environment"]["ESPROXY_UPSTREAM"] == "elasticsearch-node:9200"
    # The node is reachable inside the Compose network only; the proxy keeps the published port.
    assert "ports" not in services["elasticsearch-node"]
    assert "kibana" not in services["airflow-scheduler"]["depends_on"]
    for name in (
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    ):
        assert "AIRFLOW_CONN_KIBANA_DEFAULT" in services[name]["environment"], name
    # Every other service of the real file keeps its definition.
    assert set(services) == {
        "kibana",
        "elasticsearch",
        "elasticsearch-node",
        "es-init",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    }


def test_every_published_port_is_loopback_by_default():
    for name in ("docker-compose.yaml", "docker-compose.standin.yaml"):
        model = yaml.load((ROOT / name).read_text(), Loader=_Tagged)
        for service, spec in model["services"].items():
            for port in spec.get("ports") or []:
                assert str(port).startswith("${BIND_ADDRESS:-127.0.0.1}:"), (name, service, port)


@pytest.mark.parametrize("dockerfile", sorted(STANDINS.glob("*/Dockerfile")), ids=lambda p: p.parent.name)
def test_standin_dockerfiles_pass_buildkit_checks(dockerfile):
    assert checks.check_dockerfile_lint(dockerfile) == []
