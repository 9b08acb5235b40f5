"""setup-environment.sh, configure-ports.sh and the seed's make targets, run for real with
simulated Codespaces/local environments against a temporary copy of .env.

`gh` cannot run here (no GitHub login, no codespace), so a fake `gh` on PATH stands in for it:
it records its arguments and enforces the contract of
`gh codespace ports visibility <port>:<public|private|org>... -c <codespace>`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODESPACE = {
    "CODESPACES": "true",
    "CODESPACE_NAME": "super-duper-waffle-pvqvvr74jxg3rx",
    "GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN": "app.github.dev",
}
HTTP_PORT_KEYS = [
    "AIRFLOW_PORT",
    "KIBANA_PORT",
    "MINIO_CONSOLE_PORT",
    "MINIO_PORT",
    "ELASTICSEARCH_PORT",
    "SPARK_MASTER_UI_PORT",
    "SPARK_WORKER_UI_PORT",
]

FAKE_GH = r'''#!{python}
"""Fake gh: records argv, enforces `gh codespace ports visibility <port>:<vis>... -c <name>`."""
import json, os, re, sys
args = sys.argv[1:]
with open(os.environ["FAKE_GH_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
def refuse(why):
    print("fake gh: " + why, file=sys.stderr)
    sys.exit(2)
if args[:3] != ["codespace", "ports", "visibility"]:
    refuse("only `gh codespace ports visibility` is expected")
rest = args[3:]
if rest.count("-c") != 1 or rest.index("-c") == len(rest) - 1:
    refuse("exactly one `-c <codespace>` is expected")
i = rest.index("-c")
if rest[i + 1] != os.environ.get("CODESPACE_NAME"):
    refuse("-c must name this codespace")
ports = rest[:i] + rest[i + 2:]
if not ports:
    refuse("no <port>:<visibility> argument")
for spec in ports:
    m = re.fullmatch(r"(\d+):(public|private|org)", spec)
    if not m or not 0 < int(m.group(1)) < 65536:
        refuse(f"bad port visibility {spec!r}")
if os.environ.get("FAKE_GH_FAIL"):
    print("error: not logged in", file=sys.stderr)
    sys.exit(1)
'''


@pytest.fixture
def env_copy(tmp_path) -> Path:
    path = tmp_path / ".env"
    shutil.copy(ROOT / ".env", path)
    return path


@pytest.fixture
def fake_gh(tmp_path) -> tuple[Path, Path]:
    """A bin dir with the fake gh, and the file it logs calls to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH.replace("{python}", sys.executable))
    gh.chmod(0o755)
    return bin_dir, tmp_path / "gh-calls.jsonl"


def env_values(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", path.read_text(), re.M))


def run(
    script: str,
    env_file: Path,
    extra: dict[str, str] | None = None,
    path_prefix: Path | None = None,
    args: list[str] | None = None,
) -> subprocess.CompletedProcess:
    """Run a script with a clean environment: no Codespaces variables unless given."""
    env = {
        "PATH": f"{path_prefix}:/usr/bin:/bin" if path_prefix else "/usr/bin:/bin",
        "HOME": str(env_file.parent),
        "ENV_FILE": str(env_file),
        **(extra or {}),
    }
    return subprocess.run(["bash", str(ROOT / script), *(args or [])], capture_output=True, text=True, env=env)


def gh_calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


# --------------------------------------------------------------------- setup-environment.sh --
def test_local_environment_is_recorded_and_localhost_urls_printed(env_copy):
    env_copy.write_text(env_copy.read_text().replace("ENVIRONMENT=local", "ENVIRONMENT=codespaces"))
    result = run("setup-environment.sh", env_copy)
    assert result.returncode == 0, result.stderr
    values = env_values(env_copy)
    assert values["ENVIRONMENT"] == "local"
    for key in HTTP_PORT_KEYS:
        assert f"http://localhost:{values[key]}/" in result.stdout, key
    assert f"Kafka bootstrap        localhost:{values['KAFKA_PORT']}" in result.stdout
    assert "github.dev" not in result.stdout


def test_codespaces_environment_is_recorded_and_forwarded_urls_printed(env_copy):
    result = run("setup-environment.sh", env_copy, CODESPACE)
    assert result.returncode == 0, result.stderr
    values = env_values(env_copy)
    assert values["ENVIRONMENT"] == "codespaces"
    for key in HTTP_PORT_KEYS:
        assert f"https://super-duper-waffle-pvqvvr74jxg3rx-{values[key]}.app.github.dev/" in result.stdout, key
    assert "http://localhost" not in result.stdout
    # Kafka is not HTTP: no forwarded URL for it
    assert f"localhost:{values['KAFKA_PORT']} (inside the codespace only" in result.stdout


def test_urls_follow_the_ports_in_env(env_copy):
    env_copy.write_text(env_copy.read_text().replace("KIBANA_PORT=5601", "KIBANA_PORT=15601"))
    result = run("setup-environment.sh", env_copy, CODESPACE)
    assert "https://super-duper-waffle-pvqvvr74jxg3rx-15601.app.github.dev/" in result.stdout
    assert "-5601." not in result.stdout


def test_setup_is_idempotent_and_touches_only_the_environment_line(env_copy):
    original = env_copy.read_text()
    run("setup-environment.sh", env_copy, CODESPACE)
    once = env_copy.read_text()
    run("setup-environment.sh", env_copy, CODESPACE)
    assert env_copy.read_text() == once
    assert once.count("ENVIRONMENT=") == 1
    changed = [(a, b) for a, b in zip(original.splitlines(), once.splitlines()) if a != b]
    assert changed == [("ENVIRONMENT=local", "ENVIRONMENT=codespaces")]
    run("setup-environment.sh", env_copy)
    assert env_copy.read_text() == original


def test_codespaces_warns_about_dev_only_passwords(env_copy):
    result = run("setup-environment.sh", env_copy, CODESPACE)
    assert "WARNING: MINIO_ROOT_PASSWORD " in result.stdout and "Docker Compose refuses to start" in result.stdout
    assert "WARNING" not in run("setup-environment.sh", env_copy).stdout  # local: the DEV-ONLY values are fine


def test_new_passwords_replace_every_dev_only_value_consistently(env_copy, tmp_path):
    from . import deploy_checks as checks

    before = env_values(env_copy)
    result = run("setup-environment.sh", env_copy, CODESPACE, args=["--new-passwords"])
    assert result.returncode == 0, result.stderr
    assert "Replaced 7 DEV-ONLY password(s)" in result.stdout and "WARNING" not in result.stdout
    after_text = env_copy.read_text()
    assert re.findall(r"[A-Za-z0-9_.-]+-dev-only", after_text) == []
    after = checks.read_env_file(env_copy)
    passwords = [k for k in after if k.endswith("_PASSWORD")]
    assert len(passwords) == 7 and len({after[k] for k in passwords}) == 7
    assert all(after[k] != before[k] and re.fullmatch(r"[0-9a-f]{36}", after[k]) for k in passwords)
    # The connection JSON repeats the new values; Compose's preflight now lets a codespace start.
    assert checks.check_env_connections(after) == []
    (tmp_path / "docker-compose.yaml").write_text((ROOT / "docker-compose.yaml").read_text())
    preflight = checks.run_preflight(checks.load_compose_model(tmp_path / "docker-compose.yaml", env_copy))
    assert preflight.returncode == 0, preflight.stderr
    # Everything else is untouched.
    assert [
        k
        for k in before
        if before[k] != after.get(k, before[k]) and not k.endswith("_PASSWORD") and not k.startswith("AIRFLOW_CONN_")
    ] == ["ENVIRONMENT"]


def test_setup_appends_environment_when_missing(env_copy):
    env_copy.write_text(env_copy.read_text().replace("ENVIRONMENT=local\n", ""))
    run("setup-environment.sh", env_copy)
    assert env_copy.read_text().endswith("\nENVIRONMENT=local\n")
    assert env_values(env_copy)["ENVIRONMENT"] == "local"


def test_setup_refuses_a_half_configured_codespace_or_a_bad_port(env_copy):
    original = env_copy.read_text()
    result = run("setup-environment.sh", env_copy, {"CODESPACES": "true", "CODESPACE_NAME": "x"})
    assert result.returncode != 0 and "GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN" in result.stderr
    env_copy.write_text(original.replace("MINIO_PORT=9000", "MINIO_PORT=nine"))
    result = run("setup-environment.sh", env_copy)
    assert result.returncode != 0 and "MINIO_PORT=nine" in result.stderr
    # nothing was written before the failure
    assert env_values(env_copy)["ENVIRONMENT"] == "local"


# ------------------------------------------------------------------------ configure-ports.sh --
def test_codespaces_makes_only_the_airflow_and_kibana_uis_public(env_copy, fake_gh):
    bin_dir, log = fake_gh
    result = run("configure-ports.sh", env_copy, {**CODESPACE, "FAKE_GH_LOG": str(log)}, bin_dir)
    assert result.returncode == 0, result.stderr
    values = env_values(env_copy)
    expected_ports = [values["AIRFLOW_PORT"], values["KIBANA_PORT"]]
    assert gh_calls(log) == [
        [
            "codespace",
            "ports",
            "visibility",
            *[f"{p}:public" for p in expected_ports],
            "-c",
            CODESPACE["CODESPACE_NAME"],
        ]
    ]
    assert f"made ports {' '.join(expected_ports)} public in codespace {CODESPACE['CODESPACE_NAME']}" in result.stdout
    assert values["KAFKA_PORT"] not in expected_ports


def test_chosen_ports_and_private_visibility(env_copy, fake_gh):
    bin_dir, log = fake_gh
    extra = {**CODESPACE, "FAKE_GH_LOG": str(log)}
    assert run("configure-ports.sh", env_copy, extra, bin_dir, ["8080", "9001"]).returncode == 0
    assert run("configure-ports.sh", env_copy, extra, bin_dir, ["--private", "8080"]).returncode == 0
    assert gh_calls(log) == [
        ["codespace", "ports", "visibility", "8080:public", "9001:public", "-c", CODESPACE["CODESPACE_NAME"]],
        ["codespace", "ports", "visibility", "8080:private", "-c", CODESPACE["CODESPACE_NAME"]],
    ]
    bad = run("configure-ports.sh", env_copy, extra, bin_dir, ["http"])
    assert bad.returncode == 2 and "not a port number" in bad.stderr


@pytest.mark.parametrize(
    "key",
    [
        "ELASTICSEARCH_PORT",
        "ELASTICSEARCH_AUTH_PORT",
        "MINIO_PORT",
        "SPARK_MASTER_UI_PORT",
        "SPARK_WORKER_UI_PORT",
        "KAFKA_PORT",
    ],
)
def test_apis_and_uis_without_login_are_never_made_public(env_copy, fake_gh, key):
    bin_dir, log = fake_gh
    port = env_values(env_copy)[key]
    result = run("configure-ports.sh", env_copy, {**CODESPACE, "FAKE_GH_LOG": str(log)}, bin_dir, ["8080", port])
    assert result.returncode == 2 and f"refusing to make port {port} public" in result.stderr
    assert gh_calls(log) == []


def test_private_without_ports_reverts_every_http_port(env_copy, fake_gh):
    bin_dir, log = fake_gh
    result = run("configure-ports.sh", env_copy, {**CODESPACE, "FAKE_GH_LOG": str(log)}, bin_dir, ["--private"])
    assert result.returncode == 0, result.stderr
    values = env_values(env_copy)
    expected = [
        values[k]
        for k in (
            "AIRFLOW_PORT",
            "KIBANA_PORT",
            "MINIO_CONSOLE_PORT",
            "MINIO_PORT",
            "ELASTICSEARCH_PORT",
            "ELASTICSEARCH_AUTH_PORT",
            "SPARK_MASTER_UI_PORT",
            "SPARK_WORKER_UI_PORT",
        )
    ]
    assert gh_calls(log) == [
        ["codespace", "ports", "visibility", *[f"{p}:private" for p in expected], "-c", CODESPACE["CODESPACE_NAME"]]
    ]


def test_outside_codespaces_nothing_is_done(env_copy, fake_gh):
    bin_dir, log = fake_gh
    result = run("configure-ports.sh", env_copy, {"FAKE_GH_LOG": str(log)}, bin_dir)
    assert result.returncode == 0
    assert "not in GitHub Codespaces" in result.stdout and "nothing to do" in result.stdout
    assert gh_calls(log) == []


def test_in_codespaces_without_gh_it_says_so(env_copy):
    result = run("configure-ports.sh", env_copy, CODESPACE)
    assert result.returncode == 1
    assert "GitHub CLI (gh) is not installed: nothing done" in result.stderr


def test_a_failing_gh_is_reported(env_copy, fake_gh):
    bin_dir, log = fake_gh
    result = run("configure-ports.sh", env_copy, {**CODESPACE, "FAKE_GH_LOG": str(log), "FAKE_GH_FAIL": "1"}, bin_dir)
    assert result.returncode == 1
    assert "gh codespace ports visibility failed" in result.stderr
    assert "made ports" not in result.stdout


# ------------------------------------------------------------------------- make targets --
def make(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *args], capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env}
    )


def test_check_data_accepts_the_event_schema_and_counts_rows():
    result = make("check-data", "DATA=tests/data/sample_events.csv")
    assert result.returncode == 0, result.stderr
    rows = sum(1 for _ in (ROOT / "tests/data/sample_events.csv").open()) - 1
    assert f"{rows:,} rows" in result.stdout


def test_check_data_rejects_a_missing_file_or_another_header(tmp_path):
    missing = make("check-data", f"DATA={tmp_path / 'nope.csv'}")
    assert missing.returncode != 0 and "no dataset" in missing.stderr
    other = tmp_path / "other.csv"
    other.write_text("time,type,product\n1,2,3\n")
    wrong = make("check-data", f"DATA={other}")
    assert wrong.returncode != 0 and "header is time,type,product" in wrong.stderr


def test_check_data_finds_the_seed_file_names(tmp_path):
    (tmp_path / "events.csv").write_text((ROOT / "tests/data/sample_events.csv").read_text())
    result = make("check-data", PIPELINE_DATA_DIR=str(tmp_path))
    # scripts/env.sh keeps a PIPELINE_DATA_DIR set by the caller
    assert result.returncode == 0 and str(tmp_path / "events.csv") in result.stdout


def test_ingest_and_process_split_the_dag_at_produce_events():
    # COMPOSE_IMAGES_ENV= : as on a machine that runs the official images (no stand-in env file)
    ingest = make(
        "-n", "ingest", "STACK=compose", "COMPOSE_IMAGES_ENV=", "DATA=data/electronics.csv", "DATE=2020-10-01"
    ).stdout
    assert (
        "docker compose exec -T airflow-scheduler airflow dags test ecommerce_customer_profiles 2020-10-01 "
        '-c \'{"input_path": "electronics.csv"}\''
    ) in ingest  # relative to the data directory
    pattern = re.search(r"--mark-success-pattern '([^']+)'", ingest).group(1)
    from airflow.models import DagBag  # the real DAG: every task belongs to ingest or to process

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["ecommerce_customer_profiles"]  # no metadata DB needed
    deferred = {t for t in dag.task_ids if re.search(pattern, t)}
    assert set(dag.task_ids) - deferred == {"plan_run", "wait_for_input", "validate_events", "produce_events"}
    process = make("-n", "process", "STACK=local").stdout
    order = re.search(r"for task in ([a-z_ ]+); do", process).group(1).split()
    assert set(order) == deferred
    # each process task runs after everything it depends on
    for position, task_id in enumerate(order):
        assert dag.get_task(task_id).upstream_task_ids <= set(order[:position]) | (set(dag.task_ids) - deferred), (
            task_id
        )
    assert "airflow tasks test ecommerce_customer_profiles $task 2020-10-01" in process
    # both Airflow commands exit 0 on a failed task: the targets check each task's state
    for recipe in (ingest, process):
        assert "tasks state ecommerce_customer_profiles $task 2020-10-01" in recipe
        assert "success|skipped) echo" in recipe


def test_an_unknown_stack_is_refused():
    result = make("ps", "STACK=kubernetes")
    assert result.returncode != 0 and "STACK must be compose or local" in result.stderr
