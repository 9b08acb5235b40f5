"""Static checks of the Docker Compose deployment (no Docker engine needed).

Every check takes file paths or parsed content and returns a list of problems (empty = fine),
so tests/deployment can run it on the real files and on deliberately broken copies.

    python scripts/deploy_checks.py        # run every check on this repository, print problems

Tools: .cache/tools/bin/docker-compose (the Compose CLI, for `config`) and
.cache/tools/bin/dockerfile-lint (BuildKit's Dockerfile checks), built by
scripts/provision_tools.sh.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ecommerce_profiles.core.paths import PROJECT_DIR

ROOT = PROJECT_DIR
TOOLS_BIN = Path(os.environ.get("CACHE_DIR", ROOT / ".cache")) / "tools" / "bin"

AIRFLOW_IMAGE_NAME = "ecommerce-profiles-airflow"
LOCAL_HOSTS = ("localhost", "127.0.0.1")
# .env entries that are host settings, not endpoints: the containers may see them as they are.
HOST_ONLY_KEYS = frozenset({"BIND_ADDRESS"})
RELEASE_TAG = re.compile(r"^RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ$")


# ----------------------------------------------------------------------------------- inputs --
def tool(name: str) -> Path:
    path = TOOLS_BIN / name
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{path} is missing: run scripts/provision_tools.sh (make setup)")
    return path


def read_versions(root: Path = ROOT) -> dict[str, str]:
    """docs/versions.md as KEY -> value, through scripts/versions.sh (the one parser)."""
    out = subprocess.run(
        ["bash", str(root / "scripts" / "versions.sh")], check=True, capture_output=True, text=True
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (comments skipped, one level of quotes removed)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line.strip())
        if not match:
            continue
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def compose_config(compose_file: Path, env_file: Path) -> subprocess.CompletedProcess:
    """`docker-compose config --format json` in a clean environment.

    Only PATH and HOME are passed: variables exported by the caller (scripts/env.sh exports all
    of .env) would otherwise hide a variable missing from the env file.
    """
    return subprocess.run(
        [
            str(tool("docker-compose")),
            "--project-directory",
            str(compose_file.parent),
            "-f",
            str(compose_file),
            "--env-file",
            str(env_file),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")},
    )


def load_compose_model(compose_file: Path, env_file: Path) -> dict[str, Any]:
    result = compose_config(compose_file, env_file)
    if result.returncode != 0:
        raise ValueError(f"docker-compose config failed:\n{result.stderr}")
    return json.loads(result.stdout)


# ------------------------------------------------------------------------------- compose ----
def check_compose_config(compose_file: Path, env_file: Path) -> list[str]:
    """The file loads and validates against the Compose specification, without warnings."""
    result = compose_config(compose_file, env_file)
    problems = (
        [f"docker-compose config exited {result.returncode}: {result.stderr.strip()}"] if result.returncode else []
    )
    problems += [
        f"docker-compose config warns: {line}"
        for line in result.stderr.splitlines()
        if result.returncode == 0 and line.strip()
    ]
    return problems


def is_one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart", "no") == "no"


def check_healthchecks(model: dict[str, Any]) -> list[str]:
    """Every long-running service (restart policy other than "no") has a working health check."""
    problems = []
    for name, service in model["services"].items():
        if is_one_shot(service):
            continue
        healthcheck = service.get("healthcheck") or {}
        test = healthcheck.get("test") or []
        if healthcheck.get("disable") or not test or test[0] == "NONE":
            problems.append(f"{name}: long-running service without a health check")
    return problems


def check_depends_on(model: dict[str, Any]) -> list[str]:
    """Dependencies wait for health (or completion of one-shot jobs), never for a mere start."""
    services = model["services"]
    problems = []
    for name, service in services.items():
        for target, dep in (service.get("depends_on") or {}).items():
            condition = dep.get("condition")
            if target not in services:
                problems.append(f"{name}: depends on unknown service {target}")
            elif condition == "service_healthy" and not services[target].get("healthcheck"):
                problems.append(f"{name}: waits for {target} to be healthy, but {target} has no health check")
            elif condition == "service_completed_successfully" and not is_one_shot(services[target]):
                problems.append(f"{name}: waits for long-running {target} to complete")
            elif condition not in ("service_healthy", "service_completed_successfully"):
                problems.append(f"{name}: depends on {target} with condition {condition!r}")
    # A one-shot job nobody waits for has a failure nobody notices.
    awaited = {
        t
        for s in services.values()
        for t, d in (s.get("depends_on") or {}).items()
        if d.get("condition") == "service_completed_successfully"
    }
    problems += [
        f"{name}: one-shot service nobody waits for"
        for name, s in services.items()
        if is_one_shot(s) and name not in awaited
    ]
    return problems


def image_tag(image: str) -> str | None:
    """The tag of an image reference (None when untagged); digests count as pinned."""
    if "@sha256:" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def check_images_pinned(model: dict[str, Any]) -> list[str]:
    problems = []
    for name, service in model["services"].items():
        image = service.get("image")
        if not image:
            problems.append(f"{name}: no image name (a built image must be named and tagged too)")
            continue
        tag = image_tag(image)
        if tag is None or tag == "latest":
            problems.append(f"{name}: image {image} is not pinned to a version")
    return problems


_VARIABLE = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|([A-Za-z_][A-Za-z0-9_]*))")


def _substituted_text(compose_text: str) -> str:
    """The lines Compose substitutes variables in: comments left out, $$ escapes removed."""
    return "\n".join(line for line in compose_text.replace("$$", "").splitlines() if not line.lstrip().startswith("#"))


def compose_variables(compose_text: str) -> set[str]:
    """Names used as ${VAR}, ${VAR:-default}, ${VAR?err} or $VAR; $$ escapes are skipped."""
    return {a or b for a, b in _VARIABLE.findall(_substituted_text(compose_text))}


_IMAGE_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*_IMAGE):-[^}]*\}")


def image_variables(compose_text: str) -> set[str]:
    """${..._IMAGE:-official image} variables: they choose stand-in images (scripts/compose_images.sh)
    and default to the official ones, so .env need not define them."""
    return set(_IMAGE_VARIABLE.findall(_substituted_text(compose_text)))


_DEFAULTED_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*):-[^}]*\}")


def defaulted_variables(compose_text: str) -> set[str]:
    """Variables used only as ${VAR:-default} (a knob such as PIPELINE_RETRY_DELAY_SECONDS):
    Compose substitutes the default, so .env need not define them. A name used once without a
    default still has to be in .env, and so does every port (.env holds the whole port map)."""
    text = _substituted_text(compose_text)
    with_default = set(_DEFAULTED_VARIABLE.findall(text))
    bare = {a or b for a, b in _VARIABLE.findall(_DEFAULTED_VARIABLE.sub("", text))}
    return {name for name in with_default - bare if not name.endswith("_PORT")}


def check_variables_defined(compose_text: str, env: dict[str, str]) -> list[str]:
    optional = image_variables(compose_text) | defaulted_variables(compose_text)
    return [
        f"${{{name}}} is used in docker-compose.yaml but not defined in .env"
        for name in sorted(compose_variables(compose_text))
        if name not in env and name not in optional
    ]


def check_host_ports_unique(model: dict[str, Any]) -> list[str]:
    published = [(str(p.get("published")), name) for name, s in model["services"].items() for p in s.get("ports") or []]
    problems = [f"{name}: a port without a host port" for port, name in published if port in ("", "None")]
    counts = Counter(port for port, _ in published)
    problems += [
        f"host port {port} is published by {', '.join(n for p, n in published if p == port)}"
        for port, count in sorted(counts.items())
        if count > 1
    ]
    return problems


def airflow_services(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: s for name, s in model["services"].items() if (s.get("image") or "").startswith(AIRFLOW_IMAGE_NAME + ":")
    }


def _endpoints(value: Any) -> list[str]:
    """host[:port] strings named by a connection or an endpoint variable."""
    if isinstance(value, dict):
        return [e for v in value.values() for e in _endpoints(v)]
    if not isinstance(value, str):
        return []
    found = []
    for part in value.split(","):
        part = part.strip()
        if "://" in part:
            found.append(urlsplit(part).hostname or "")
        elif re.match(r"^[A-Za-z0-9_.-]+:\d+$", part):
            found.append(part.rsplit(":", 1)[0])
    return found


def connection_hosts(conn: dict[str, Any]) -> list[str]:
    hosts = []
    if conn.get("host"):
        host = conn["host"]
        hosts.append(urlsplit(host).hostname if "://" in host else host)
    return hosts + _endpoints(conn.get("extra") or {})


def check_container_view(model: dict[str, Any], env: dict[str, str]) -> list[str]:
    """The Airflow containers never see a host-view endpoint, and every endpoint they see is a
    service of this file; their connections keep the structure of the .env ones."""
    services = set(model["services"])
    problems = []
    airflow = airflow_services(model)
    if not airflow:
        return [f"no service runs the {AIRFLOW_IMAGE_NAME} image"]
    for name, service in airflow.items():
        environment = service.get("environment") or {}
        for key, value in environment.items():
            value = value or ""
            if key in HOST_ONLY_KEYS:
                continue
            if any(h in value for h in LOCAL_HOSTS):
                problems.append(
                    f"{name}: {key} still points at the host ({value}); override it with the container view"
                )
                continue
            if key.startswith("AIRFLOW_CONN_"):
                try:
                    conn = json.loads(value)
                except json.JSONDecodeError as exc:
                    problems.append(f"{name}: {key} is not JSON ({exc})")
                    continue
                hosts = connection_hosts(conn)
                problems += [
                    f"{name}: {key} names host {h!r}, which is not a service" for h in hosts if h not in services
                ]
                if key in env:
                    # Same type and the same extra settings; only the endpoints may differ.
                    local = json.loads(env[key])
                    for part in ("conn_type", "extra keys"):
                        mine, theirs = _conn_signature(local)[part], _conn_signature(conn)[part]
                        if mine != theirs:
                            problems.append(f"{name}: {key} {part} {theirs} differ from .env's {mine}")
            elif key.endswith(("_ENDPOINT", "_URL", "_SERVERS")):
                problems += [
                    f"{name}: {key} names host {h!r}, which is not a service"
                    for h in _endpoints(value)
                    if h not in services
                ]
        # Connections the local route defines must exist in the containers too.
        problems += [
            f"{name}: {key} from .env is not overridden/passed"
            for key in env
            if key.startswith("AIRFLOW_CONN_") and key not in environment
        ]
    return problems


def _conn_signature(conn: dict[str, Any]) -> dict[str, Any]:
    return {"conn_type": conn.get("conn_type"), "extra keys": sorted((conn.get("extra") or {}).keys())}


def check_kafka(model: dict[str, Any], env: dict[str, str]) -> list[str]:
    """Internal listener = what the containers use; kafka-init creates the .env topic."""
    services = model["services"]
    kafka_env = services.get("kafka", {}).get("environment") or {}
    advertised = kafka_env.get("KAFKA_ADVERTISED_LISTENERS", "")
    problems = []
    for name, service in airflow_services(model).items():
        bootstrap = (service.get("environment") or {}).get("KAFKA_BOOTSTRAP_SERVERS", "")
        if f"//{bootstrap}" not in advertised:
            problems.append(f"{name}: KAFKA_BOOTSTRAP_SERVERS={bootstrap} is not an advertised listener ({advertised})")
    init = services.get("kafka-init", {}).get("command") or []
    for flag, key in (("--topic", "KAFKA_TOPIC"), ("--partitions", "KAFKA_TOPIC_PARTITIONS")):
        if flag not in init or init[init.index(flag) + 1] != env.get(key):
            problems.append(f"kafka-init: {flag} is not ${key} ({env.get(key)})")
    return problems


# ------------------------------------------------------------------------------- security ----
PREFLIGHT = "preflight"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
BIND_PREFIX = "${BIND_ADDRESS:-127.0.0.1}:"
# Secrets only the set-up jobs may hold: blanked in the Airflow containers (env_file passes .env).
ADMIN_SECRETS = ("MINIO_ROOT_PASSWORD", "ELASTIC_PASSWORD", "KIBANA_SYSTEM_PASSWORD")
DEV_ONLY_MARK = "-dev-only"


def password_keys(env: dict[str, str]) -> list[str]:
    return sorted(key for key in env if key.endswith("_PASSWORD"))


def check_ports_loopback(compose_text: str, model: dict[str, Any], env: dict[str, str]) -> list[str]:
    """Every published port is bound to ${BIND_ADDRESS:-127.0.0.1} (loopback unless .env changes it)."""
    import yaml

    problems = []
    raw = yaml.safe_load(compose_text)
    for name, service in (raw.get("services") or {}).items():
        for port in service.get("ports") or []:
            if not (isinstance(port, str) and port.startswith(BIND_PREFIX)):
                problems.append(
                    f'{name}: port {port!r} is not published as "{BIND_PREFIX}<host port>:<container port>"'
                )
    bind = env.get("BIND_ADDRESS", "127.0.0.1")
    if bind not in LOOPBACK:
        problems.append(f".env: BIND_ADDRESS={bind} publishes every port beyond loopback")
    for name, service in model["services"].items():
        for port in service.get("ports") or []:
            if port.get("host_ip") != bind:
                problems.append(
                    f"{name}: port {port.get('published')} is bound to {port.get('host_ip') or 'every address'}, not {bind}"
                )
    return problems


def check_preflight(model: dict[str, Any], env: dict[str, str]) -> list[str]:
    """A one-shot `preflight` that every other service waits for, and that sees every password of .env."""
    services = model["services"]
    if PREFLIGHT not in services:
        return [f"no {PREFLIGHT} service (it refuses DEV-ONLY passwords outside ENVIRONMENT=local)"]
    preflight = services[PREFLIGHT]
    problems = [] if is_one_shot(preflight) else [f'{PREFLIGHT}: must be a one-shot job (restart: "no")']
    for name, service in services.items():
        dep = (service.get("depends_on") or {}).get(PREFLIGHT) or {}
        if name != PREFLIGHT and dep.get("condition") != "service_completed_successfully":
            problems.append(f"{name}: does not wait for {PREFLIGHT} to complete successfully")
    environment = preflight.get("environment") or {}
    checked = (environment.get("CHECKED_PASSWORDS") or "").split()
    for key in password_keys(env):
        if key not in checked:
            problems.append(f"{PREFLIGHT}: CHECKED_PASSWORDS does not list {key}")
        elif environment.get(key) != env[key]:
            problems.append(f"{PREFLIGHT}: {key} is not passed from .env")
    for key in ("ENVIRONMENT", "BIND_ADDRESS"):
        if key not in environment:
            problems.append(f"{PREFLIGHT}: {key} is not passed")
    return problems


def run_preflight(model: dict[str, Any], timeout: float = 30) -> subprocess.CompletedProcess:
    """Run the preflight job's shell script here, with its resolved environment (as Compose would
    in the container): exit 0 = the stack may start."""
    preflight = model["services"][PREFLIGHT]
    entrypoint, command = preflight.get("entrypoint") or [], preflight.get("command") or []
    argv = [*entrypoint, *command]
    if argv[:2] != ["/bin/sh", "-c"]:
        raise ValueError(f"{PREFLIGHT}: expected /bin/sh -c <script>, got {argv[:2]}")
    # `config` keeps the file's $$ escapes; Compose turns them into $ for the container.
    script = argv[2].replace("$$", "$")
    environment = {k: "" if v is None else str(v) for k, v in (preflight.get("environment") or {}).items()}
    return subprocess.run(
        ["/bin/sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/bin:/bin", **environment},
    )


def check_least_privilege(model: dict[str, Any], env: dict[str, str]) -> list[str]:
    """Airflow logs in as the pipeline's own MinIO and Elasticsearch users, with credentials, and
    never holds the admin secrets; minio-init and es-init create those users."""
    problems = []
    services = model["services"]
    for name, service in airflow_services(model).items():
        environment = service.get("environment") or {}
        for key in ADMIN_SECRETS:
            if environment.get(key):
                problems.append(f"{name}: holds the admin secret {key} (blank it in x-airflow-common)")
        minio = json.loads(environment.get("AIRFLOW_CONN_MINIO_DEFAULT") or "{}")
        if (minio.get("login"), minio.get("password")) != (
            env.get("MINIO_PIPELINE_USER"),
            env.get("MINIO_PIPELINE_PASSWORD"),
        ):
            problems.append(f"{name}: AIRFLOW_CONN_MINIO_DEFAULT does not log in as MINIO_PIPELINE_USER")
        for key in ("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", "AIRFLOW_CONN_KIBANA_DEFAULT"):
            conn = json.loads(environment.get(key) or "{}")
            if (conn.get("login"), conn.get("password")) != (
                env.get("ELASTICSEARCH_USER"),
                env.get("ELASTICSEARCH_PASSWORD"),
            ):
                problems.append(f"{name}: {key} does not log in as ELASTICSEARCH_USER")
    init = " ".join(services.get("minio-init", {}).get("command") or [])
    for needle in (
        "mc admin policy create lake ecommerce-pipeline",
        'mc admin user add lake "$$MINIO_PIPELINE_USER"',
        "mc admin policy attach lake ecommerce-pipeline",
    ):
        if needle not in init:
            problems.append(f"minio-init: does not run `{needle}`")
    return problems


def compose_minio_policy(model: dict[str, Any], bucket: str) -> dict[str, Any]:
    """The policy JSON minio-init writes (its heredoc), for the given bucket name."""
    script = (model["services"]["minio-init"].get("command") or ["", ""])[1]
    match = re.search(r"<<EOF\n(.*?)\nEOF\n", script, re.S)
    if not match:
        raise ValueError("minio-init: no policy heredoc (<<EOF ... EOF)")
    return json.loads(match.group(1).replace("$$MINIO_BUCKET", bucket))


def check_elasticsearch_security(model: dict[str, Any], env: dict[str, str]) -> list[str]:
    """Security on; es-init sets kibana_system's password and the pipeline user; Kibana logs in as
    kibana_system; the health check authenticates."""
    services = model["services"]
    problems = []
    es = services.get("elasticsearch", {})
    es_env = es.get("environment") or {}
    if es_env.get("xpack.security.enabled") != "true":
        problems.append('elasticsearch: xpack.security.enabled is not "true"')
    if es_env.get("ELASTIC_PASSWORD") != env.get("ELASTIC_PASSWORD"):
        problems.append("elasticsearch: ELASTIC_PASSWORD does not come from .env")
    if "elastic:" not in " ".join((es.get("healthcheck") or {}).get("test") or []):
        problems.append("elasticsearch: the health check does not authenticate")
    init = services.get("es-init")
    if not init:
        return problems + ["no es-init service (sets the kibana_system password, creates the pipeline user)"]
    script = " ".join(init.get("command") or [])
    for needle in (
        "/_security/user/kibana_system/_password",
        "/_security/role/ecommerce_pipeline",
        "/_security/user/$$ELASTICSEARCH_USER",
    ):
        if needle not in script:
            problems.append(f"es-init: does not call {needle}")
    if ((init.get("depends_on") or {}).get("elasticsearch") or {}).get("condition") != "service_healthy":
        problems.append("es-init: does not wait for elasticsearch to be healthy")
    kibana = services.get("kibana", {})
    kibana_env = kibana.get("environment") or {}
    if (kibana_env.get("ELASTICSEARCH_USERNAME"), kibana_env.get("ELASTICSEARCH_PASSWORD")) != (
        "kibana_system",
        env.get("KIBANA_SYSTEM_PASSWORD"),
    ):
        problems.append("kibana: does not log in as kibana_system with KIBANA_SYSTEM_PASSWORD")
    if ((kibana.get("depends_on") or {}).get("es-init") or {}).get("condition") != "service_completed_successfully":
        problems.append("kibana: does not wait for es-init")
    return problems


def check_env_connections(env: dict[str, str]) -> list[str]:
    """.env's connections repeat the credentials .env names (JSON cannot reference variables)."""
    problems = []
    minio = json.loads(env.get("AIRFLOW_CONN_MINIO_DEFAULT") or "{}")
    if (minio.get("login"), minio.get("password")) != (
        env.get("MINIO_PIPELINE_USER"),
        env.get("MINIO_PIPELINE_PASSWORD"),
    ):
        problems.append(
            ".env: AIRFLOW_CONN_MINIO_DEFAULT login/password are not MINIO_PIPELINE_USER/MINIO_PIPELINE_PASSWORD"
        )
    es = json.loads(env.get("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT") or "{}")
    if (es.get("login"), es.get("password")) != (env.get("ELASTICSEARCH_USER"), env.get("ELASTICSEARCH_PASSWORD")):
        problems.append(
            ".env: AIRFLOW_CONN_ELASTICSEARCH_DEFAULT login/password are not ELASTICSEARCH_USER/ELASTICSEARCH_PASSWORD"
        )
    auth_url = f"{es.get('schema', 'http')}://{es.get('host')}:{es.get('port')}"
    if auth_url != env.get("ELASTICSEARCH_AUTH_URL") or str(es.get("port")) != env.get("ELASTICSEARCH_AUTH_PORT"):
        problems.append(
            f".env: AIRFLOW_CONN_ELASTICSEARCH_DEFAULT is {auth_url}, not ELASTICSEARCH_AUTH_URL "
            f"{env.get('ELASTICSEARCH_AUTH_URL')} (port ELASTICSEARCH_AUTH_PORT)"
        )
    return problems


# ----------------------------------------------------------------------------- Dockerfile ----
def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments and heredocs dropped."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        current += line
        word, _, rest = current.partition(" ")
        instructions.append((word.upper(), rest.strip()))
        current = ""
    return instructions


def dockerfile_stages(text: str) -> list[dict[str, Any]]:
    """Global ARGs in stage 0 ('name' None), then one dict per FROM: name, base, instructions."""
    stages: list[dict[str, Any]] = [{"name": None, "base": None, "instructions": []}]
    for word, args in dockerfile_instructions(text):
        if word == "FROM":
            parts = [p for p in args.split() if not p.startswith("--")]
            stages.append({"name": parts[2] if len(parts) > 2 else None, "base": parts[0], "instructions": []})
        else:
            stages[-1]["instructions"].append((word, args))
    return stages


def dockerfile_args(text: str) -> dict[str, str]:
    """Default values of the global ARGs (before the first FROM)."""
    defaults = {}
    for word, args in dockerfile_stages(text)[0]["instructions"]:
        if word == "ARG" and "=" in args:
            key, value = args.split("=", 1)
            defaults[key.strip()] = value.strip().strip('"')
    return defaults


def dockerfile_env(stage: dict[str, Any]) -> dict[str, str]:
    env = {}
    for word, args in stage["instructions"]:
        if word == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def check_dockerfile_lint(dockerfile: Path) -> list[str]:
    result = subprocess.run([str(tool("dockerfile-lint")), str(dockerfile)], capture_output=True, text=True)
    if result.returncode == 0:
        return []
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()] or [
        f"dockerfile-lint exited {result.returncode}"
    ]


def check_dockerfile_user(text: str) -> list[str]:
    users = [args for word, args in dockerfile_stages(text)[-1]["instructions"] if word == "USER"]
    return (
        []
        if users and users[-1] == "airflow"
        else [f"the final image runs as {users[-1] if users else 'root'!r}, not airflow"]
    )


def _dockerignore_regex(pattern: str) -> re.Pattern:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern decides, and a pattern that
    matches a parent folder matches everything below it."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = os.path.normpath(raw[1:] if negate else raw).lstrip("/")
        regex = _dockerignore_regex(pattern)
        if any(regex.match(c) for c in candidates):
            ignored = not negate
    return ignored


def read_dockerignore(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.strip().startswith("#")]


def check_copy_sources(dockerfile: Path, context: Path) -> list[str]:
    """Every COPY from the build context names files that exist and .dockerignore keeps."""
    patterns = read_dockerignore(context / ".dockerignore")
    problems = []
    for stage in dockerfile_stages(dockerfile.read_text())[1:]:
        for word, args in stage["instructions"]:
            if word not in ("COPY", "ADD") or "--from=" in args:
                continue
            sources = [a for a in shlex.split(args) if not a.startswith("--")][:-1]
            for source in sources:
                if not (context / source).exists():
                    problems.append(f"{word} {source}: not in the build context")
                elif dockerignored(source, patterns):
                    problems.append(f"{word} {source}: excluded by .dockerignore")
                elif (context / source).is_dir():
                    kept = [
                        p
                        for p in (context / source).rglob("*")
                        if p.is_file() and not dockerignored(str(p.relative_to(context)), patterns)
                    ]
                    if not kept:
                        problems.append(f"{word} {source}: every file in it is excluded by .dockerignore")
    return problems


def check_image_matches_compose(dockerfile_text: str, model: dict[str, Any]) -> list[str]:
    """The paths the image bakes in are the ones the Compose environment names."""
    image_env = dockerfile_env(dockerfile_stages(dockerfile_text)[-1])
    problems = []
    for name, service in airflow_services(model).items():
        environment = service.get("environment") or {}
        for key in ("SPARK_JARS_DIR", "PIPELINE_PROJECT_DIR", "PIPELINE_DATA_DIR", "JAVA_HOME"):
            if key in environment and environment[key] != image_env.get(key):
                problems.append(f"{name}: {key}={environment[key]} but the image sets {image_env.get(key)}")
            if key != "JAVA_HOME" and key not in image_env:
                problems.append(f"the image does not set {key}")
    return sorted(set(problems))


# ------------------------------------------------------------------------------- versions ----
def expected_images(v: dict[str, str]) -> list[tuple[str, str, str]]:
    """(image name, expected tag, versions key) for every image the deployment may use."""
    minio = v.get("MINIO_IMAGE_TAG") or v.get("MINIO_VERSION", "")
    return [
        (AIRFLOW_IMAGE_NAME, v.get("AIRFLOW_VERSION", ""), "AIRFLOW_VERSION"),
        ("postgres", v.get("POSTGRES_VERSION", ""), "POSTGRES_VERSION"),
        ("apache/kafka", v.get("KAFKA_VERSION", ""), "KAFKA_VERSION"),
        ("apache/spark", spark_image_tag(v), "SPARK_VERSION"),
        ("docker.elastic.co/elasticsearch/elasticsearch", v.get("ES_VERSION", ""), "ES_VERSION"),
        ("docker.elastic.co/kibana/kibana", v.get("KIBANA_VERSION", ""), "KIBANA_VERSION"),
        ("quay.io/minio/minio", minio, "MINIO_IMAGE_TAG" if "MINIO_IMAGE_TAG" in v else "MINIO_VERSION"),
        ("axllent/mailpit", v.get("MAILPIT_VERSION", ""), "MAILPIT_VERSION"),
    ]


def spark_image_tag(v: dict[str, str]) -> str:
    return f"{v.get('SPARK_VERSION')}-scala{v.get('SCALA_BINARY_VERSION')}-java{v.get('JAVA_VERSION')}-python3-ubuntu"


def check_compose_versions(model: dict[str, Any], v: dict[str, str]) -> list[str]:
    problems = []
    images = expected_images(v)
    for name, service in model["services"].items():
        image = service.get("image") or ""
        repo, _, tag = image.rpartition(":") if image_tag(image) else (image, "", "")
        rule = next((r for r in images if r[0] == repo), None)
        if rule is None:
            problems.append(
                f"{name}: image {image} has no version rule (add a row to docs/versions.md and to expected_images)"
            )
        elif rule[0] == "quay.io/minio/minio" and not RELEASE_TAG.match(rule[1]):
            problems.append(
                f"{name}: docs/versions.md {rule[2]} is {rule[1]!r}, not a MinIO RELEASE tag the image can use"
            )
        elif tag != rule[1]:
            problems.append(f"{name}: {image} but docs/versions.md {rule[2]} says {rule[1]}")
        build_args = (service.get("build") or {}).get("args") or {}
        for key in ("AIRFLOW_VERSION", "PYTHON_VERSION"):
            if service.get("build") and build_args.get(key) != v.get(key):
                problems.append(f"{name}: build arg {key}={build_args.get(key)} but docs/versions.md says {v.get(key)}")
    return problems


def check_dockerfile_versions(dockerfile_text: str, compose_model: dict[str, Any], v: dict[str, str]) -> list[str]:
    args = dockerfile_args(dockerfile_text)
    java = v.get("JAVA_VERSION")
    expected = {
        "AIRFLOW_VERSION": v.get("AIRFLOW_VERSION"),
        "PYTHON_VERSION": v.get("PYTHON_VERSION"),
        "SPARK_IMAGE": f"apache/spark:{spark_image_tag(v)}",
        "MAVEN_IMAGE": f"maven:{v.get('MAVEN_VERSION')}-eclipse-temurin-{java}",
    }
    problems = [
        f"Dockerfile ARG {k}={args.get(k)} but docs/versions.md implies {e}"
        for k, e in expected.items()
        if args.get(k) != e
    ]
    if "MAVEN_VERSION" not in v:
        problems.append("docs/versions.md has no MAVEN_VERSION row (the Maven image of the jar stage)")
    runs = " ".join(a for s in dockerfile_stages(dockerfile_text) for w, a in s["instructions"] if w == "RUN")
    if f"openjdk-{java}-jre-headless" not in runs:
        problems.append(f"the image does not install openjdk-{java}-jre-headless (JAVA_VERSION={java})")
    spark_images = {
        s.get("image") for s in compose_model["services"].values() if (s.get("image") or "").startswith("apache/spark:")
    }
    if spark_images and spark_images != {args.get("SPARK_IMAGE")}:
        problems.append(
            f"the jar stage resolves against {args.get('SPARK_IMAGE')}, the cluster runs {sorted(spark_images)}"
        )
    return problems


def requirement_pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*==\s*([^\s;#]+)", line)
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1).split("[")[0]).lower()] = match.group(2)
    return pins


def expected_pins(v: dict[str, str]) -> dict[str, tuple[str, str]]:
    """package -> (version, versions key) for every Python package docs/versions.md names."""
    pins = {
        "apache-airflow": (v.get("AIRFLOW_VERSION", ""), "AIRFLOW_VERSION"),
        "pyspark": (v.get("SPARK_VERSION", ""), "SPARK_VERSION"),
        "confluent-kafka": (v.get("CONFLUENT_KAFKA_VERSION", ""), "CONFLUENT_KAFKA_VERSION"),
        "elasticsearch": (v.get("ES_PY_CLIENT_VERSION", ""), "ES_PY_CLIENT_VERSION"),
    }
    for key, value in v.items():
        if key.startswith("AIRFLOW_PROVIDER_"):
            package = "apache-airflow-providers-" + key.removeprefix("AIRFLOW_PROVIDER_").lower().replace("_", "-")
            pins[package] = (value, key)
    return pins


def check_requirement_versions(text: str, v: dict[str, str], label: str) -> list[str]:
    pins = requirement_pins(text)
    return [
        f"{label}: {package}=={pins.get(package)} but docs/versions.md {key} says {version}"
        for package, (version, key) in sorted(expected_pins(v).items())
        if pins.get(package) != version
    ]


def check_matrix_consistency(v: dict[str, str]) -> list[str]:
    """Equalities docs/versions.md itself states in its notes."""
    problems = []
    if v.get("KIBANA_VERSION") != v.get("ES_VERSION"):
        problems.append("KIBANA_VERSION must equal ES_VERSION")
    if v.get("SPARK_SQL_KAFKA_VERSION") != v.get("SPARK_VERSION"):
        problems.append("SPARK_SQL_KAFKA_VERSION must equal SPARK_VERSION")
    if v.get("ES_PY_CLIENT_VERSION", "").split(".")[0] != v.get("ES_VERSION", "").split(".")[0]:
        problems.append("the elasticsearch client's major version must equal the server's")
    # The locally built MinIO (Go pseudo-version) and the Compose image are the same release.
    pseudo = re.match(r"^v0\.0\.0-(\d{14})-", v.get("MINIO_VERSION", ""))
    release = v.get("MINIO_IMAGE_TAG", "")
    if pseudo and RELEASE_TAG.match(release) and re.sub(r"\D", "", release) != pseudo.group(1):
        problems.append(f"MINIO_VERSION {v['MINIO_VERSION']} and MINIO_IMAGE_TAG {release} are different releases")
    return problems


def check_tool_versions(
    v: dict[str, str], lint_go_mod: Path = ROOT / "scripts" / "dockerfile_lint" / "go.mod"
) -> list[str]:
    problems = []
    for key in ("DOCKER_COMPOSE_VERSION", "BUILDKIT_VERSION"):
        if key not in v:
            problems.append(f"docs/versions.md has no {key} row (scripts/provision_tools.sh needs it)")
    buildkit = re.search(r"github.com/moby/buildkit v(\S+)", lint_go_mod.read_text())
    if buildkit and v.get("BUILDKIT_VERSION", "").lstrip("v") != buildkit.group(1):
        problems.append(
            f"{lint_go_mod}: buildkit v{buildkit.group(1)} but docs/versions.md says {v.get('BUILDKIT_VERSION')}"
        )
    try:
        short = subprocess.run(
            [str(tool("docker-compose")), "version", "--short"], capture_output=True, text=True
        ).stdout.strip()
    except FileNotFoundError as exc:
        return problems + [str(exc)]
    if short.lstrip("v") != v.get("DOCKER_COMPOSE_VERSION", "").lstrip("v"):
        problems.append(
            f"built docker-compose is {short}, docs/versions.md says {v.get('DOCKER_COMPOSE_VERSION')}: rerun scripts/provision_tools.sh"
        )
    return problems


# ---------------------------------------------------------------------------------- main ----
def all_problems(root: Path = ROOT) -> list[str]:
    compose_file, env_file, dockerfile = root / "docker-compose.yaml", root / ".env", root / "Dockerfile"
    env = read_env_file(env_file)
    v = read_versions(root)
    problems = check_compose_config(compose_file, env_file)
    if problems:
        return problems
    model = load_compose_model(compose_file, env_file)
    dockerfile_text = dockerfile.read_text()
    problems += check_healthchecks(model) + check_depends_on(model) + check_images_pinned(model)
    problems += check_variables_defined(compose_file.read_text(), env) + check_host_ports_unique(model)
    problems += check_container_view(model, env) + check_kafka(model, env)
    problems += check_ports_loopback(compose_file.read_text(), model, env) + check_preflight(model, env)
    problems += (
        check_least_privilege(model, env) + check_elasticsearch_security(model, env) + check_env_connections(env)
    )
    preflight = run_preflight(model) if PREFLIGHT in model["services"] else None
    if preflight is not None and preflight.returncode != 0:
        problems.append(f"{PREFLIGHT} refuses this configuration: {preflight.stderr.strip()}")
    problems += check_dockerfile_lint(dockerfile) + check_dockerfile_user(dockerfile_text)
    problems += check_copy_sources(dockerfile, root) + check_image_matches_compose(dockerfile_text, model)
    problems += check_compose_versions(model, v) + check_dockerfile_versions(dockerfile_text, model, v)
    for name in ("requirements.in", "requirements.txt"):
        problems += check_requirement_versions((root / name).read_text(), v, name)
    problems += check_matrix_consistency(v) + check_tool_versions(v)
    return problems


if __name__ == "__main__":
    found = all_problems()
    for problem in found:
        print(problem)
    print(f"{len(found)} problem(s)" if found else "deployment: all static checks pass")
    sys.exit(1 if found else 0)
