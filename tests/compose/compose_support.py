"""The Compose stack under test: started by the make target users run, driven from the host.

* ``ComposeStack`` - the project under its own Compose project name (``COMPOSE_TEST_PROJECT``,
  default ``ecommerce-profiles-test``) with every published port moved to a free one, so it runs
  beside the local stack (same default ports: Kafka 9092, MinIO 9000/9001, Elasticsearch 9200,
  Airflow 8080) and beside a user's own ``make start STACK=compose``. ``up()`` is
  ``make start STACK=compose`` with those variables in the environment (Compose gives the
  environment precedence over .env); every later ``docker compose`` call uses the compose files
  the running containers were created from (their ``com.docker.compose.project.config_files``
  label), so an override the make target chose is kept.
* ``MemorySampler`` - ``docker stats`` of the project's containers every few seconds: the peak of
  their summed memory.
* ``ComposeAirflow`` - the api-server's REST API signed in as .env's admin (tests/browser's
  ``PrivateAirflow`` with the Compose stack's address and login).
* ``ComposeLake`` - MinIO (root account) and Elasticsearch (the pipeline's login) through the
  published ports, shaped like tests/support/faults.py's pipeline so ``end_state`` reads it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecommerce_profiles.connections import ElasticsearchSettings, LakeSettings
from ecommerce_profiles.core import lake
from tests.browser.airflow_ui_support import PrivateAirflow
from tests.support.ports import free_ports

PROJECT_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yaml"
DATA_DIR = PROJECT_ROOT / "data"  # what the Compose file mounts at /opt/airflow/data
DEFAULT_PROJECT = "ecommerce-profiles-test"
PROFILES_DAG = "ecommerce_customer_profiles"
TRAINING_DAG = "ecommerce_training_set"
TERMINAL = {"success", "failed"}


def _say(message: str) -> None:
    print(f"[compose {time.strftime('%H:%M:%S')}] {message}", flush=True)


def read_env_file(path: Path = PROJECT_ROOT / ".env") -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip().strip("'").strip('"')
    return values


def port_variables(*compose_files: Path) -> list[str]:
    """Every ``${..._PORT}`` a compose file publishes a port with (``"...:${X_PORT}:<container>"``)."""
    names: set[str] = set()
    for path in compose_files:
        if path.exists():
            names.update(re.findall(r"\$\{(\w+_PORT)(?::?-[^}]*)?\}:\d+", path.read_text()))
    return sorted(names)


@dataclass
class ComposeStack:
    project: str
    ports: dict[str, int]
    log_dir: Path
    events: list[tuple[float, str]] = field(default_factory=list)
    _files: list[str] | None = None
    _env_files: list[str] = field(default_factory=list)

    @classmethod
    def with_free_ports(cls, log_dir: Path) -> ComposeStack:
        extra = sorted(p for p in PROJECT_ROOT.glob("docker-compose*.y*ml") if p != COMPOSE_FILE)
        extra += sorted((PROJECT_ROOT / "docker").rglob("*compose*.y*ml")) if (PROJECT_ROOT / "docker").exists() else []
        names = port_variables(COMPOSE_FILE, *extra)
        # ELASTICSEARCH_AUTH_PORT: the local stack's proxy port, which an override may publish too.
        if "ELASTICSEARCH_AUTH_PORT" not in names:
            names.append("ELASTICSEARCH_AUTH_PORT")
        project = os.environ.get("COMPOSE_TEST_PROJECT", DEFAULT_PROJECT)
        log_dir.mkdir(parents=True, exist_ok=True)
        return cls(project, dict(zip(names, free_ports(len(names)), strict=True)), log_dir)

    # ------------------------------------------------------------------ environment --
    @property
    def env(self) -> dict[str, str]:
        """os.environ with the project name and the free ports; Compose prefers these to .env."""
        return {
            **os.environ,
            "COMPOSE_PROJECT_NAME": self.project,
            **{name: str(port) for name, port in self.ports.items()},
        }

    def port(self, name: str) -> int:
        return self.ports[name]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    # ---------------------------------------------------------------------- make targets --
    def make(self, *args: str, timeout: float = 3600, log_name: str | None = None) -> float:
        """``make <args> STACK=compose`` with this stack's environment; returns its seconds."""
        log = self.log_dir / (log_name or f"make-{'-'.join(args)}.log")
        started = time.monotonic()
        with open(log, "a") as sink:
            sink.write(f"\n===== {time.strftime('%F %T')} make {' '.join(args)} STACK=compose =====\n")
            sink.flush()
            result = subprocess.run(
                ["make", *args, "STACK=compose"],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
        seconds = time.monotonic() - started
        if result.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-80:])
            raise RuntimeError(f"make {' '.join(args)} STACK=compose exited {result.returncode} ({log}):\n{tail}")
        self.events.append((time.time(), f"make {' '.join(args)}: {seconds:.1f}s"))
        return seconds

    def up(self) -> float:
        seconds = self.make("start", log_name="make-start.log")
        self._files = None
        _say(f"make start STACK=compose: {seconds:.0f}s (project {self.project}, ports {self.ports})")
        return seconds

    # -------------------------------------------------------------------- docker compose --
    def containers(self, all_states: bool = True) -> list[str]:
        args = ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={self.project}"]
        out = subprocess.run(args + (["-a"] if all_states else []), capture_output=True, text=True, check=True)
        return out.stdout.split()

    def inspect(self, *ids: str) -> list[dict[str, Any]]:
        if not ids:
            return []
        out = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    def _project_labels(self) -> dict[str, str]:
        for info in self.inspect(*self.containers()):
            labels = info["Config"]["Labels"]
            if labels.get("com.docker.compose.project.config_files"):
                return labels
        return {}

    def config_files(self) -> list[str]:
        """The compose files the running project was created from (labels of its containers)."""
        if self._files is None:
            labels = self._project_labels()
            self._files = [f for f in labels.get("com.docker.compose.project.config_files", "").split(",") if f] or [
                str(COMPOSE_FILE)
            ]
            self._env_files = [f for f in labels.get("com.docker.compose.project.environment_file", "").split(",") if f]
        return self._files

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        """``docker compose`` on the running project: its compose files and env files, this environment."""
        cmd = ["docker", "compose", "-p", self.project]
        for path in self.config_files():
            cmd += ["-f", path]
        for path in self._env_files:
            cmd += ["--env-file", path]
        result = subprocess.run(
            [*cmd, *args], cwd=PROJECT_ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd + list(args))} exited {result.returncode}:\n{result.stderr[-4000:]}")
        return result

    def services(self) -> list[dict[str, Any]]:
        """``docker compose ps -a --format json``: one dict per container (State, Health, Publishers)."""
        out = self.compose("ps", "-a", "--format", "json").stdout.strip()
        if not out:
            return []
        if out.startswith("["):
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def down(self) -> float:
        """``docker compose down -v --remove-orphans``: what ``make clean STACK=compose`` runs,
        without its last step (stopping a dockerd the project started), which would take every
        other project's containers on this engine with it."""
        started = time.monotonic()
        self.compose("down", "-v", "--remove-orphans", timeout=600)
        seconds = time.monotonic() - started
        self.events.append((time.time(), f"down -v: {seconds:.1f}s"))
        return seconds

    def kill(self, service: str) -> None:
        self.compose("kill", service)
        self.events.append((time.time(), f"{service}: killed"))
        _say(f"docker compose kill {service}")

    def start(self, service: str, wait_healthy: bool = True, timeout: float = 300) -> float:
        started = time.monotonic()
        self.compose("start", service)
        if wait_healthy:
            self.wait_healthy(service, timeout)
        seconds = time.monotonic() - started
        self.events.append((time.time(), f"{service}: started again ({seconds:.0f}s to healthy)"))
        _say(f"docker compose start {service}: healthy after {seconds:.0f}s")
        return seconds

    def state(self, service: str) -> dict[str, Any]:
        for entry in self.services():
            if entry.get("Service") == service:
                return entry
        return {}

    def wait_healthy(self, service: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        entry: dict[str, Any] = {}
        while time.monotonic() < deadline:
            entry = self.state(service)
            if entry.get("State") == "running" and entry.get("Health") in ("healthy", ""):
                return
            time.sleep(2)
        raise TimeoutError(f"{service} not healthy after {timeout:.0f}s: {entry}")

    def logs(self, service: str, tail: int = 200) -> str:
        return self.compose("logs", "--no-color", "--tail", str(tail), service, check=False).stdout

    def save_logs(self) -> Path:
        target = self.log_dir / "compose-logs.txt"
        target.write_text(self.compose("logs", "--no-color", "--timestamps", check=False).stdout)
        return target

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes that carry the project's label or its name prefix."""
        label = ["--filter", f"label=com.docker.compose.project={self.project}"]
        listings = {
            "containers": ["docker", "ps", "-a"],
            "networks": ["docker", "network", "ls"],
            "volumes": ["docker", "volume", "ls"],
        }
        found = {}
        for kind, cmd in listings.items():
            fmt = ["--format", "{{.Names}}" if kind == "containers" else "{{.Name}}"]
            labelled = subprocess.run(cmd + label + fmt, capture_output=True, text=True, check=True).stdout.split()
            every = subprocess.run(cmd + fmt, capture_output=True, text=True, check=True).stdout.split()
            named = [n for n in every if n.startswith((f"{self.project}_", f"{self.project}-"))]
            found[kind] = sorted(set(labelled) | set(named))
        return found


# ------------------------------------------------------------------------- memory --
_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}


def parse_size(text: str) -> float:
    match = re.match(r"\s*([\d.]+)\s*([a-zA-Z]+)", text)
    if not match:
        return 0.0
    return float(match.group(1)) * _UNITS.get(match.group(2).lower(), 1)


class MemorySampler:
    """``docker stats --no-stream`` of the project's running containers, every ``interval`` s."""

    def __init__(self, stack: ComposeStack, interval: float = 5.0) -> None:
        self.stack, self.interval = stack, interval
        self.samples: list[tuple[float, float, dict[str, float]]] = []  # (time, total bytes, per container)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def sample(self) -> None:
        ids = self.stack.containers(all_states=False)
        if not ids:
            return
        out = subprocess.run(
            ["docker", "stats", "--no-stream", "--format", "{{json .}}", *ids],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        per = {}
        for line in out.splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            per[row.get("Name", row.get("Container", "?"))] = parse_size(row.get("MemUsage", "0B").split("/")[0])
        if per:
            self.samples.append((time.time(), sum(per.values()), per))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except (subprocess.SubprocessError, OSError):
                pass
            self._stop.wait(self.interval)

    def peak(self) -> dict[str, Any]:
        if not self.samples:
            return {"samples": 0}
        moment, total, per = max(self.samples, key=lambda s: s[1])
        per_peak: dict[str, float] = {}
        for _, _, values in self.samples:
            for name, value in values.items():
                per_peak[name] = max(per_peak.get(name, 0.0), value)
        return {
            "samples": len(self.samples),
            "interval_s": self.interval,
            "peak_total_bytes": int(total),
            "peak_total_gib": round(total / 1024**3, 2),
            "peak_at": time.strftime("%H:%M:%S", time.localtime(moment)),
            "at_peak_mib": {k: round(v / 1024**2) for k, v in sorted(per.items())},
            "per_container_peak_mib": {k: round(v / 1024**2) for k, v in sorted(per_peak.items())},
        }


# --------------------------------------------------------------------------- Airflow --
@dataclass
class ComposeAirflow(PrivateAirflow):
    """The api-server of the Compose stack, signed in with AIRFLOW_ADMIN_USER/PASSWORD of .env."""

    admin_password: str = field(default="", repr=False)

    @property
    def password(self) -> str:
        return self.admin_password

    def healthy(self) -> bool:
        return self._healthy()

    def unpause(self, dag_id: str) -> None:
        answer = self.request("PATCH", f"/api/v2/dags/{dag_id}?update_mask=is_paused", {"is_paused": False})
        assert answer["is_paused"] is False, answer

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})

    def runs(self, dag_id: str, **filters: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"limit": 100, "order_by": "run_after", **filters})
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns?{query}")["dag_runs"]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        quoted = urllib.parse.quote(run_id, safe="")
        tis = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=100")["task_instances"]
        return {
            ti["task_id"] if ti.get("map_index", -1) < 0 else f"{ti['task_id']}[{ti['map_index']}]": ti for ti in tis
        }

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        quoted = urllib.parse.quote(run_id, safe="")
        try:
            entries = self.get(
                f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/logs/{try_number}?full_content=true"
            )["content"]
        except (urllib.error.HTTPError, KeyError):
            return ""
        return "\n".join(
            f"{entry.get('timestamp', '')} {entry.get('event', '')}" if isinstance(entry, dict) else str(entry)
            for entry in entries
        )

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 1200) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            run = self.run(dag_id, run_id)
            if run["state"] in TERMINAL:
                return run
            time.sleep(5)
        raise AssertionError(
            f"{dag_id} run {run_id} still {run.get('state')} after {timeout:.0f}s:\n{self.failure_report(dag_id, run_id)}"
        )

    def wait_for(self, what: str, predicate, timeout: float = 600, interval: float = 3):
        """Until ``predicate()`` returns something truthy (returned); AssertionError naming ``what``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def run_seconds(run: dict[str, Any]) -> float | None:
    """A finished run's start-to-end seconds (the scheduler's own timestamps)."""
    from datetime import datetime

    if not run.get("start_date") or not run.get("end_date"):
        return None
    start = datetime.fromisoformat(run["start_date"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(run["end_date"].replace("Z", "+00:00"))
    return round((end - start).total_seconds(), 1)


# ------------------------------------------------------------------------------ lake --
@dataclass
class ComposeLake:
    """The Compose stack's MinIO (root account, for checks) and Elasticsearch (the pipeline's
    login) from the host; ``bucket``/``alias``/``s3()``/``es()`` as tests/support/faults.py's
    ``end_state`` expects of a pipeline."""

    minio_url: str
    elasticsearch_url: str
    env: dict[str, str]

    @property
    def bucket(self) -> str:
        return self.env["MINIO_BUCKET"]

    @property
    def alias(self) -> str:
        return self.env["ELASTICSEARCH_INDEX"]

    def s3(self):
        return LakeSettings(self.minio_url, self.env["MINIO_ROOT_USER"], self.env["MINIO_ROOT_PASSWORD"]).boto3_client()

    def es(self):
        return ElasticsearchSettings(
            self.elasticsearch_url, self.env["ELASTICSEARCH_USER"], self.env["ELASTICSEARCH_PASSWORD"]
        ).client()

    def keys(self, prefix: str) -> list[str]:
        client = self.s3()
        return [
            o["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for o in page.get("Contents", [])
        ]

    def json(self, key: str) -> dict[str, Any]:
        return json.loads(self.s3().get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def run_evidence_prefix(self, run_id: str) -> str:
        """runs/run_date=<date>/run=<key> of one DAG run: the key as core.run_plan makes it
        (lake.safe_token of the run id, whose ':' and '+' a path cannot hold); the date is the
        run's, found by listing, since a one-shot run's is its logical date or trigger day."""
        marker = f"/run={lake.safe_token(run_id)}/{lake.RUN_SUMMARY_FILE}"
        found = [key for key in self.keys(f"{lake.RUNS_PREFIX}/") if key.endswith(marker)]
        assert len(found) == 1, f"{lake.RUN_SUMMARY_FILE} of {run_id}: {found}"
        return found[0].removesuffix(f"/{lake.RUN_SUMMARY_FILE}")

    def run_summary(self, run_id: str) -> dict[str, Any]:
        return self.json(f"{self.run_evidence_prefix(run_id)}/{lake.RUN_SUMMARY_FILE}")
