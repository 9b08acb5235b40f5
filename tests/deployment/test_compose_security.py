"""docker-compose.yaml's security rules, checked without a Docker engine: loopback-only ports, the
`preflight` guard against DEV-ONLY passwords (its script is run here with the resolved
configuration), least privilege (MinIO and Elasticsearch users of the pipeline), Elasticsearch
security with Kibana's kibana_system. The init jobs' shell scripts run here against fake `curl` and
`mc` that record what the containers would send."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from . import deploy_checks as checks
from .test_compose import COMPOSE, ENV_FILE, ROOT, broken_copy, broken_model

PASSWORD_KEYS = [
    "AIRFLOW_ADMIN_PASSWORD",
    "ELASTICSEARCH_PASSWORD",
    "ELASTIC_PASSWORD",
    "KIBANA_SYSTEM_PASSWORD",
    "MINIO_PIPELINE_PASSWORD",
    "MINIO_ROOT_PASSWORD",
    "POSTGRES_PASSWORD",
]


@pytest.fixture(scope="module")
def model() -> dict:
    return checks.load_compose_model(COMPOSE, ENV_FILE)


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return checks.read_env_file(ENV_FILE)


def model_with_env(tmp_path: Path, old: str, new: str) -> dict:
    compose, env_file = broken_copy(tmp_path, env_replace=(old, new))
    return checks.load_compose_model(compose, env_file)


# ------------------------------------------------------------------------------------ ports --
def test_every_port_is_published_on_loopback_by_default(model, env):
    assert checks.check_ports_loopback(COMPOSE.read_text(), model, env) == []
    assert env["BIND_ADDRESS"] == "127.0.0.1"
    bound = {(name, p["host_ip"]) for name, s in model["services"].items() for p in s.get("ports") or []}
    assert {ip for _, ip in bound} == {"127.0.0.1"} and len({n for n, _ in bound}) == 9


def test_a_port_published_on_every_address_is_reported(tmp_path, env):
    text = COMPOSE.read_text().replace('"${BIND_ADDRESS:-127.0.0.1}:${KIBANA_PORT}:5601"', '"${KIBANA_PORT}:5601"')
    compose = tmp_path / "docker-compose.yaml"
    compose.write_text(text)
    (tmp_path / ".env").write_text(ENV_FILE.read_text())
    broken = checks.load_compose_model(compose, tmp_path / ".env")
    problems = checks.check_ports_loopback(text, broken, env)
    assert problems == [
        "kibana: port '${KIBANA_PORT}:5601' is not published as \"${BIND_ADDRESS:-127.0.0.1}:<host port>:<container port>\"",
        "kibana: port 5601 is bound to every address, not 127.0.0.1",
    ]


def test_the_default_bind_address_is_loopback_even_without_env(tmp_path):
    broken = model_with_env(tmp_path, "BIND_ADDRESS=127.0.0.1\n", "")
    assert {p["host_ip"] for s in broken["services"].values() for p in s.get("ports") or []} == {"127.0.0.1"}


def test_a_public_bind_address_is_reported(tmp_path):
    broken = model_with_env(tmp_path, "BIND_ADDRESS=127.0.0.1", "BIND_ADDRESS=0.0.0.0")
    env = checks.read_env_file(tmp_path / ".env")
    problems = checks.check_ports_loopback(COMPOSE.read_text(), broken, env)
    assert problems == [".env: BIND_ADDRESS=0.0.0.0 publishes every port beyond loopback"]


# -------------------------------------------------------------------------------- preflight --
def test_every_service_waits_for_preflight_which_sees_every_password(model, env):
    assert checks.check_preflight(model, env) == []
    assert checks.password_keys(env) == PASSWORD_KEYS
    assert checks.check_depends_on(model) == []


def test_a_service_that_skips_preflight_or_an_unchecked_password_is_reported(tmp_path, env):
    broken = broken_model(
        tmp_path,
        "      KAFKA_HEAP_OPTS: -Xms512m -Xmx512m\n    volumes:\n      - kafka-data:/var/lib/kafka/data\n"
        "    depends_on:\n      preflight:\n        condition: service_completed_successfully\n",
        "      KAFKA_HEAP_OPTS: -Xms512m -Xmx512m\n    volumes:\n      - kafka-data:/var/lib/kafka/data\n",
    )
    assert checks.check_preflight(broken, env) == ["kafka: does not wait for preflight to complete successfully"]
    unchecked = broken_model(tmp_path, " KIBANA_SYSTEM_PASSWORD ELASTICSEARCH_PASSWORD\n", " ELASTICSEARCH_PASSWORD\n")
    assert checks.check_preflight(unchecked, env) == [
        "preflight: CHECKED_PASSWORDS does not list KIBANA_SYSTEM_PASSWORD"
    ]


def test_preflight_lets_the_local_development_stack_start(model):
    result = checks.run_preflight(model)
    assert result.returncode == 0, result.stderr
    assert "preflight: ok (ENVIRONMENT=local, BIND_ADDRESS=127.0.0.1)" in result.stdout


@pytest.mark.parametrize("environment", ["codespaces", "production"])
def test_preflight_refuses_dev_only_passwords_outside_local(tmp_path, environment):
    result = checks.run_preflight(model_with_env(tmp_path, "ENVIRONMENT=local", f"ENVIRONMENT={environment}"))
    assert result.returncode == 1
    assert f"REFUSING TO START: ENVIRONMENT={environment}" in result.stderr
    assert (
        "still have their DEV-ONLY values: "
        + " ".join(
            [
                "POSTGRES_PASSWORD",
                "AIRFLOW_ADMIN_PASSWORD",
                "MINIO_ROOT_PASSWORD",
                "MINIO_PIPELINE_PASSWORD",
                "ELASTIC_PASSWORD",
                "KIBANA_SYSTEM_PASSWORD",
                "ELASTICSEARCH_PASSWORD",
            ]
        )
        in result.stderr
    )
    assert "./setup-environment.sh --new-passwords" in result.stderr


def test_preflight_refuses_dev_only_passwords_on_a_public_bind_address(tmp_path):
    result = checks.run_preflight(model_with_env(tmp_path, "BIND_ADDRESS=127.0.0.1", "BIND_ADDRESS=0.0.0.0"))
    assert result.returncode == 1 and "BIND_ADDRESS=0.0.0.0" in result.stderr


def test_preflight_refuses_even_one_dev_only_password(tmp_path):
    compose, env_file = broken_copy(tmp_path, env_replace=("ENVIRONMENT=local", "ENVIRONMENT=production"))
    text = env_file.read_text().replace("-dev-only", "-3f9c1a7e")
    env_file.write_text(
        text.replace("KIBANA_SYSTEM_PASSWORD=kibana-system-3f9c1a7e", "KIBANA_SYSTEM_PASSWORD=kibana-system-dev-only")
    )
    result = checks.run_preflight(checks.load_compose_model(compose, env_file))
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].endswith("DEV-ONLY values: KIBANA_SYSTEM_PASSWORD.")


def test_preflight_accepts_production_with_real_passwords(tmp_path):
    compose, env_file = broken_copy(tmp_path, env_replace=("ENVIRONMENT=local", "ENVIRONMENT=production"))
    env_file.write_text(env_file.read_text().replace("-dev-only", "-3f9c1a7e"))
    model = checks.load_compose_model(compose, env_file)
    result = checks.run_preflight(model)
    assert result.returncode == 0, result.stderr


def test_preflight_refuses_a_password_that_would_break_json(tmp_path):
    result = checks.run_preflight(
        model_with_env(tmp_path, "ELASTIC_PASSWORD=elastic-dev-only", "ELASTIC_PASSWORD='elastic\"x'")
    )
    assert result.returncode == 1 and "ELASTIC_PASSWORD contain a double quote or a backslash" in result.stderr


# ------------------------------------------------------------------------- least privilege --
def test_airflow_logs_in_as_the_pipeline_users_and_holds_no_admin_secret(model, env):
    assert checks.check_least_privilege(model, env) == []
    scheduler = model["services"]["airflow-scheduler"]["environment"]
    for key in checks.ADMIN_SECRETS:
        assert scheduler[key] == "", key
    assert json.loads(scheduler["AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"])["login"] == env["ELASTICSEARCH_USER"]


def test_airflow_with_the_root_keys_is_reported(tmp_path, env):
    broken = broken_model(
        tmp_path,
        '"login": "${MINIO_PIPELINE_USER}", "password": "${MINIO_PIPELINE_PASSWORD}"',
        '"login": "${MINIO_ROOT_USER}", "password": "${MINIO_ROOT_PASSWORD}"',
    )
    problems = checks.check_least_privilege(broken, env)
    assert problems and all("AIRFLOW_CONN_MINIO_DEFAULT does not log in as MINIO_PIPELINE_USER" in p for p in problems)


def test_env_connections_repeat_the_env_credentials(env):
    assert checks.check_env_connections(env) == []
    broken = {
        **env,
        "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT": env["AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"].replace(
            '"port": 9201', '"port": 9200'
        ),
    }
    assert checks.check_env_connections(broken)[0].startswith(
        ".env: AIRFLOW_CONN_ELASTICSEARCH_DEFAULT is http://localhost:9200, not"
    )


def test_minio_init_policy_is_the_local_stack_policy(model, env):
    local = subprocess.run(
        [
            "bash",
            "-c",
            f'source "{ROOT}/scripts/services/minio.sh" && minio_pipeline_policy_json "$1"',
            "-",
            env["MINIO_BUCKET"],
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert checks.compose_minio_policy(model, env["MINIO_BUCKET"]) == json.loads(local)


FAKE_TOOL = r'''#!{python}
"""Fake {name}: records argv, stdin (curl -K -) and the files named by @path / policy files."""
import json, os, sys
args = sys.argv[1:]
record = {"argv": args}
if "-K" in args and args[args.index("-K") + 1] == "-":
    record["config"] = sys.stdin.read()
for arg in args:
    if arg.startswith("@"):
        record["body"] = open(arg[1:]).read()
    if arg.endswith(".json") and os.path.exists(arg):
        record["file"] = open(arg).read()
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(record) + "\n")
'''


def run_with_fakes(
    tmp_path: Path, service: dict, replace: tuple[str, str]
) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run a one-shot service's `<shell> -c <script>` here, with fake curl and mc on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("curl", "mc"):
        (bin_dir / name).write_text(FAKE_TOOL.replace("{python}", sys.executable).replace("{name}", name))
        (bin_dir / name).chmod(0o755)
    argv = (
        [service["entrypoint"][0], *service["command"]]
        if isinstance(service.get("entrypoint"), list)
        else [service["entrypoint"], *service["command"]]
    )
    script = argv[2].replace("$$", "$").replace(*replace)
    log = tmp_path / "calls.jsonl"
    environment = {k: str(v) for k, v in (service.get("environment") or {}).items()}
    result = subprocess.run(
        [argv[0], "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_LOG": str(log), **environment},
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


def test_es_init_sets_kibana_system_and_the_pipeline_user_without_secrets_in_arguments(tmp_path, model, env):
    result, calls = run_with_fakes(
        tmp_path, model["services"]["es-init"], ("/tmp/body.json", str(tmp_path / "body.json"))
    )
    assert result.returncode == 0, result.stderr
    requests = [
        (
            c["argv"][c["argv"].index("-X") + 1],
            c["argv"][c["argv"].index("-X") + 2].removeprefix("http://elasticsearch:9200"),
            json.loads(c["body"]) if c["body"] else None,
        )
        for c in calls
    ]
    assert requests == [
        ("GET", "/_cluster/health?wait_for_status=yellow&timeout=60s", None),
        ("POST", "/_security/user/kibana_system/_password", {"password": env["KIBANA_SYSTEM_PASSWORD"]}),
        (
            "PUT",
            "/_security/role/ecommerce_pipeline",
            {
                "cluster": ["monitor"],
                "indices": [
                    {"names": [env["ELASTICSEARCH_INDEX"], env["ELASTICSEARCH_INDEX"] + "-*"], "privileges": ["all"]}
                ],
                "applications": [{"application": "kibana-.kibana", "privileges": ["all"], "resources": ["*"]}],
            },
        ),
        (
            "PUT",
            f"/_security/user/{env['ELASTICSEARCH_USER']}",
            {
                "password": env["ELASTICSEARCH_PASSWORD"],
                "roles": ["ecommerce_pipeline"],
                "full_name": "e-commerce profiles pipeline",
            },
        ),
    ]
    for call in calls:
        assert call["config"] == f'user = "elastic:{env["ELASTIC_PASSWORD"]}"\n'
        assert not any(env[key] in " ".join(call["argv"]) for key in PASSWORD_KEYS)
    assert not (tmp_path / "body.json").exists()


def test_elasticsearch_health_check_authenticates_through_stdin(tmp_path, model, env):
    service = model["services"]["elasticsearch"]
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    fake = {"entrypoint": ["/bin/sh"], "command": ["-c", test[1]], "environment": service["environment"]}
    result, calls = run_with_fakes(tmp_path, fake, ("http://localhost:9200", "http://localhost:9200"))
    assert result.returncode == 0, result.stderr
    assert [c["config"] for c in calls] == [f'user = "elastic:{env["ELASTIC_PASSWORD"]}"\n']
    assert env["ELASTIC_PASSWORD"] not in " ".join(calls[0]["argv"])


def test_minio_init_creates_the_bucket_policy_and_pipeline_user(tmp_path, model, env):
    result, calls = run_with_fakes(
        tmp_path, model["services"]["minio-init"], ("/tmp/pipeline-policy.json", str(tmp_path / "pipeline-policy.json"))
    )
    assert result.returncode == 0, result.stderr
    commands = [c["argv"] for c in calls]
    assert commands[1] == ["mb", "--ignore-existing", f"lake/{env['MINIO_BUCKET']}"]
    assert commands[2] == [
        "admin",
        "policy",
        "create",
        "lake",
        "ecommerce-pipeline",
        str(tmp_path / "pipeline-policy.json"),
    ]
    assert json.loads(calls[2]["file"]) == checks.compose_minio_policy(model, env["MINIO_BUCKET"])
    assert commands[3] == ["admin", "user", "add", "lake", env["MINIO_PIPELINE_USER"], env["MINIO_PIPELINE_PASSWORD"]]
    # The fake `mc admin user info` prints no policy: the policy gets attached.
    assert commands[4:] == [
        ["admin", "user", "info", "lake", env["MINIO_PIPELINE_USER"]],
        ["admin", "policy", "attach", "lake", "ecommerce-pipeline", "--user", env["MINIO_PIPELINE_USER"]],
    ]


# ---------------------------------------------------------------------------- Elasticsearch --
def test_elasticsearch_security_is_on_with_kibana_system(model, env):
    assert checks.check_elasticsearch_security(model, env) == []
    kibana = model["services"]["kibana"]
    assert kibana["environment"]["ELASTICSEARCH_USERNAME"] == "kibana_system"
    assert kibana["depends_on"]["es-init"]["condition"] == "service_completed_successfully"


def test_elasticsearch_without_security_or_kibana_without_its_user_is_reported(tmp_path, env):
    broken = broken_model(tmp_path, '      xpack.security.enabled: "true"\n', '      xpack.security.enabled: "false"\n')
    assert checks.check_elasticsearch_security(broken, env) == ['elasticsearch: xpack.security.enabled is not "true"']
    no_user = broken_model(tmp_path, "      ELASTICSEARCH_USERNAME: kibana_system\n", "")
    assert checks.check_elasticsearch_security(no_user, env) == [
        "kibana: does not log in as kibana_system with KIBANA_SYSTEM_PASSWORD"
    ]


def test_all_problems_is_empty_for_this_repository():
    assert checks.all_problems() == []
