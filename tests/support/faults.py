"""Service faults against a PRIVATE local stack: the helpers of tests/faults/.

* ``PrivateStack`` - a second Kafka + MinIO + Elasticsearch (+ esproxy, the authenticating
  nginx in front of it, when the stack has one) run by ``scripts/stack.sh`` with its own
  STACK_DIR and free ports, so stopping a service never touches the shared stack that other
  tests and people use. ``stop(service)`` / ``start(service)`` go through the same script
  (``down <service>`` / ``up <service>``, i.e. TERM then wait, and start then wait healthy).
* ``private_pipeline`` - ``make_pipeline`` (tests/support/pipeline.py) for that stack: own data
  dir, topic, bucket, alias and Airflow DB, with the Airflow connections of ``.env`` (whatever
  they are when the tests run: root or scoped MinIO keys, Elasticsearch direct or through the
  authenticating proxy) re-pointed at the private ports and nothing else changed.
* ``DagRun`` - ``airflow dags test`` in the background, its output streamed to a file, with
  ``wait_for(pattern)`` to act at a precise moment of the run (a task's or Spark's log line) and
  ``task_attempts(task_id)`` to read each attempt of a task on its own.
* ``end_state`` - what a run leaves behind, in comparable form: the documents behind the alias
  (by _id), the archive's and the snapshot's rows (multisets) and the counts of run_summary.json.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow.parquet as pq

from ecommerce_profiles.connections import ElasticsearchSettings, lake_admin_settings_from_env
from tests.support.pipeline import PipelineNames, private_pipeline_env
from tests.support.ports import free_ports

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STACK_SCRIPT = PROJECT_ROOT / "scripts" / "stack.sh"
DAG_ID = "ecommerce_customer_profiles"
# The services the pipeline talks to, in start order; esproxy (nginx demanding basic auth in front
# of Elasticsearch: the pipeline's authenticated endpoint) when the stack has it.
SERVICES = tuple(
    name
    for name in ("kafka", "minio", "elasticsearch", "esproxy")
    if (PROJECT_ROOT / "scripts" / "services" / f"{name}.sh").exists()
)


# ------------------------------------------------------------------------------ the stack --
@dataclass
class PrivateStack:
    """Kafka, MinIO and Elasticsearch of our own, run by scripts/stack.sh under ``root``."""

    root: Path
    kafka_port: int
    kafka_controller_port: int
    minio_port: int
    minio_console_port: int
    elasticsearch_port: int
    elasticsearch_auth_port: int
    events: list[tuple[float, str]] = field(default_factory=list)  # (time.time(), "kafka: stopped"), ...

    @classmethod
    def with_free_ports(cls, root: Path) -> PrivateStack:
        return cls(root, *free_ports(6))

    @property
    def env(self) -> dict[str, str]:
        """os.environ (scripts/env.sh sourced) with this stack's directory, ports and URLs.

        stack.sh keeps the caller's values of the .env variables, so these win over .env."""
        return {
            **os.environ,
            "STACK_DIR": str(self.root),
            "KAFKA_PORT": str(self.kafka_port),
            "KAFKA_CONTROLLER_PORT": str(self.kafka_controller_port),
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_address,
            "MINIO_PORT": str(self.minio_port),
            "MINIO_CONSOLE_PORT": str(self.minio_console_port),
            "MINIO_ENDPOINT": self.minio_url,
            "ELASTICSEARCH_PORT": str(self.elasticsearch_port),
            "ELASTICSEARCH_URL": self.elasticsearch_url,
            "ELASTICSEARCH_AUTH_PORT": str(self.elasticsearch_auth_port),
            "ELASTICSEARCH_AUTH_URL": f"http://localhost:{self.elasticsearch_auth_port}",
        }

    @property
    def kafka_address(self) -> str:
        return f"localhost:{self.kafka_port}"

    @property
    def minio_url(self) -> str:
        return f"http://localhost:{self.minio_port}"

    @property
    def elasticsearch_url(self) -> str:
        return f"http://localhost:{self.elasticsearch_port}"

    def _run(self, command: str, *services: str, timeout: float = 400) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(STACK_SCRIPT), command, *services],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def _checked(self, command: str, *services: str) -> str:
        result = self._run(command, *services)
        output = result.stdout + result.stderr
        if result.returncode != 0:
            raise RuntimeError(
                f"STACK_DIR={self.root} scripts/stack.sh {command} {' '.join(services)} failed:\n{output[-4000:]}"
            )
        return output

    def up(self) -> str:
        output = self._checked("up", *SERVICES)
        self.events.append((time.time(), "stack up"))
        return output

    def stop(self, service: str) -> float:
        """`scripts/stack.sh down <service>` on this stack only; returns its duration once the
        process has exited."""
        started = time.time()
        self._checked("down", service)
        self.events.append((time.time(), f"{service}: stopped"))
        return time.time() - started

    def start(self, service: str) -> float:
        """`scripts/stack.sh up <service>`: returns its duration once the service is healthy."""
        started = time.time()
        self._checked("up", service)
        self.events.append((time.time(), f"{service}: up again"))
        return time.time() - started

    def down_services(self) -> list[str]:
        result = self._run("status", *SERVICES)
        return [
            line.split()[0]
            for line in result.stdout.splitlines()
            if len(line.split()) > 1 and line.split()[1] == "down"
        ]

    def tear_down(self) -> None:
        """Stop every service of THIS stack (pid files under its STACK_DIR) and drop its data."""
        try:
            self._run("down", *SERVICES)
        finally:
            shutil.rmtree(self.root / "data", ignore_errors=True)


# ------------------------------------------------------------------- connections, env --
def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(
        (parts.scheme, f"{parts.hostname or 'localhost'}:{port}", parts.path, parts.query, parts.fragment)
    )


def repoint_connections(environ: Mapping[str, str], stack: PrivateStack) -> dict[str, str]:
    """The AIRFLOW_CONN_{KAFKA,MINIO,ELASTICSEARCH}_DEFAULT of ``environ`` (i.e. of .env), with
    every other field kept (credentials, scheme, region) and only the address moved to ``stack``:
    the shared port of a service becomes the private port of the same service."""
    out: dict[str, str] = {}
    for name, fix in (
        ("AIRFLOW_CONN_KAFKA_DEFAULT", _repoint_kafka),
        ("AIRFLOW_CONN_MINIO_DEFAULT", _repoint_minio),
        ("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", _repoint_elasticsearch),
    ):
        raw = environ[name].strip().strip("'")
        if not raw.startswith("{"):
            raise ValueError(f"{name} is not a JSON connection; tests/support/faults.py only re-points JSON ones")
        conn = json.loads(raw)
        fix(conn, stack, environ)
        out[name] = json.dumps(conn)
    return out


def _repoint_kafka(conn: dict, stack: PrivateStack, environ: Mapping[str, str]) -> None:
    conn.setdefault("extra", {})["bootstrap.servers"] = stack.kafka_address


def _repoint_minio(conn: dict, stack: PrivateStack, environ: Mapping[str, str]) -> None:
    extra = conn.setdefault("extra", {})
    extra["endpoint_url"] = _with_port(extra.get("endpoint_url") or "http://localhost", stack.minio_port)


def _repoint_elasticsearch(conn: dict, stack: PrivateStack, environ: Mapping[str, str]) -> None:
    """Elasticsearch itself, or the authenticating proxy in front of it when .env points there."""
    port = int(conn.get("port") or 9200)
    auth_port = environ.get("ELASTICSEARCH_AUTH_PORT")
    if auth_port and port == int(auth_port):
        if "esproxy" not in SERVICES:
            raise ValueError("elasticsearch_default uses ELASTICSEARCH_AUTH_PORT but the stack has no esproxy service")
        conn["port"] = stack.elasticsearch_auth_port
    elif port == int(environ.get("ELASTICSEARCH_PORT", "9200")):
        conn["port"] = stack.elasticsearch_port
    else:
        raise ValueError(
            f"elasticsearch_default points at port {port}, which is neither ELASTICSEARCH_PORT "
            "nor ELASTICSEARCH_AUTH_PORT: tests/support/faults.py cannot tell which private port to use"
        )
    conn["host"] = "localhost"


@dataclass
class PrivatePipeline(PipelineNames):
    stack: PrivateStack

    @property
    def es_address(self) -> str:
        """host:port of Elasticsearch as the pipeline's connection reaches it (maybe the proxy)."""
        conn = json.loads(self.env["AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"])
        return f"{conn['host']}:{conn['port']}"

    def s3(self):
        """The MinIO root account of the private stack: for checks."""
        return lake_admin_settings_from_env(self.env).boto3_client()

    def es(self):
        """Elasticsearch itself (no auth on the local stack), not the proxy: for checks."""
        return ElasticsearchSettings(self.env["ELASTICSEARCH_URL"]).client()

    def create_bucket(self) -> None:
        """With the root account, as make_pipeline does (the pipeline's user may not create buckets)."""
        self.s3().create_bucket(Bucket=self.bucket)

    def dag_run(self, logical_date: str, conf: Mapping[str, Any] | None = None) -> DagRun:
        return DagRun(self, logical_date, dict(conf or {}))


def private_pipeline(root: Path, stack: PrivateStack, prefix: str) -> PrivatePipeline:
    """make_pipeline on the private stack: unique topic, bucket, alias, data dir and a migrated
    Airflow DB; the connections point at the private ports. ``prepare_pipeline`` then
    ``create_bucket``: the first needs no service, so it can run while the stack starts."""
    pipeline = prepare_pipeline(root, stack, prefix)
    pipeline.create_bucket()
    return pipeline


def prepare_pipeline(root: Path, stack: PrivateStack, prefix: str) -> PrivatePipeline:
    """Names, env and the migrated Airflow DB of a private pipeline; no service is needed yet."""
    env = private_pipeline_env(root, prefix, {**stack.env, **repoint_connections(os.environ, stack)})
    return PrivatePipeline(root, env, stack)


# ---------------------------------------------------------------------------- a DAG run --
TASK_START = r"\[DAG TEST\] starting task_id={task} "
TASK_END = r"\[DAG TEST\] end task task_id={task} "
TASK_FAILED = "Task failed with exception"


class DagRun:
    """``airflow dags test`` running in the background, its output appended to ``log_path``.

    `airflow dags test` runs every task in its own process and honours retries (it waits out
    ``retry_delay``); all task logs come on its output, each attempt between
    ``[DAG TEST] starting task_id=X`` and ``[DAG TEST] end task task_id=X``.
    """

    def __init__(self, pipeline: PrivatePipeline, logical_date: str, conf: dict[str, Any]) -> None:
        self.pipeline = pipeline
        self.log_path = pipeline.root / f"dags-test-{uuid.uuid4().hex[:6]}.log"
        cmd = ["airflow", "dags", "test", DAG_ID, logical_date]
        if conf:
            cmd += ["-c", json.dumps(conf)]
        self.started = time.time()
        self._lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._process = subprocess.Popen(
            cmd,
            env=pipeline.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        with open(self.log_path, "w") as sink:
            for line in self._process.stdout:
                sink.write(line)
                sink.flush()
                with self._cond:
                    self._lines.append((time.time(), line))
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 900, after: int = 0) -> int:
        """Index of the first output line from index ``after`` on that matches ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.time() + timeout
        index = after
        with self._cond:
            while True:
                while index < len(self._lines):
                    if regex.search(self._lines[index][1]):
                        return index
                    index += 1
                if not self._reader.is_alive():
                    raise AssertionError(f"the DAG run ended before a line matched {pattern!r} (log: {self.log_path})")
                remaining = deadline - time.time()
                if remaining <= 0:
                    raise AssertionError(f"no line matched {pattern!r} within {timeout:.0f}s (log: {self.log_path})")
                self._cond.wait(min(remaining, 1.0))

    def line_time(self, index: int) -> float:
        with self._cond:
            return self._lines[index][0]

    def finish(self, timeout: float = 1200) -> DagRunResult:
        try:
            code = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self._process.wait(timeout=60)
        self._reader.join(timeout=30)
        with self._cond:
            lines = list(self._lines)
        ended = lines[-1][0] if lines else time.time()  # its last line, not when we looked
        return DagRunResult(code, lines, ended - self.started, self.log_path)

    def kill(self) -> None:
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)


@dataclass
class DagRunResult:
    returncode: int
    lines: list[tuple[float, str]]
    seconds: float
    log_path: Path

    @property
    def log(self) -> str:
        return "".join(line for _, line in self.lines)

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0 and "Customer profiles as of" in self.log

    def task_attempts(self, task_id: str) -> list[Attempt]:
        """Each attempt of ``task_id``: its lines (with their arrival times) and whether it failed."""
        start, end = (
            re.compile(TASK_START.format(task=re.escape(task_id))),
            re.compile(TASK_END.format(task=re.escape(task_id))),
        )
        attempts, current = [], None
        for moment, line in self.lines:
            if start.search(line):
                current = []
            if current is not None:
                current.append((moment, line))
                if end.search(line):
                    attempts.append(Attempt(task_id, current))
                    current = None
        return attempts


@dataclass
class Attempt:
    task_id: str
    lines: list[tuple[float, str]]

    @property
    def text(self) -> str:
        return "".join(line for _, line in self.lines)

    @property
    def failed(self) -> bool:
        return TASK_FAILED in self.text

    @property
    def started(self) -> float:
        return self.lines[0][0]

    @property
    def ended(self) -> float:
        return self.lines[-1][0]

    def first(self, pattern: str) -> tuple[float, str] | None:
        regex = re.compile(pattern)
        return next(((moment, line) for moment, line in self.lines if regex.search(line)), None)

    def error_lines(self, limit: int = 12) -> list[str]:
        """The exception lines of a failed attempt (class: message), from the task's traceback
        and from a spark-submit child's own traceback."""
        found = []
        for _, line in self.lines:
            text = line.strip()
            if re.search(r"(Exception|Error)\b.*:", text) and not text.startswith("File "):
                found.append(text[:600])
        return found[:limit]


# ------------------------------------------------------------- a JVM's threads, by name --
def java_pids(*needles: str) -> list[int]:
    """Pids of the java processes whose command line holds every needle (e.g. a job's bucket)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "java" in cmdline.split(" ", 1)[0] and all(n in cmdline for n in needles):
            pids.append(int(proc.name))
    return pids


def threads_in(pid: int, markers: tuple[str, ...]) -> list[str]:
    """Names of the threads of JVM ``pid`` with a stack frame containing one of ``markers`` (jstack)."""
    jstack = Path(os.environ.get("JAVA_HOME", "/usr")) / "bin" / "jstack"
    try:
        dump = subprocess.run([str(jstack), str(pid)], capture_output=True, text=True, timeout=60).stdout
    except subprocess.TimeoutExpired:
        return []
    threads = []
    for block in dump.split("\n\n"):
        if block.startswith('"') and any(marker in block for marker in markers):
            threads.append(block.split('"')[1])
    return threads


# ------------------------------------------------------------------------- end state --
def _lake_keys(client, bucket: str, prefix: str) -> list[str]:
    return [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]


def lake_rows(pipeline: PrivatePipeline, prefix: str) -> Counter:
    """The multiset of rows of every Parquet file under ``prefix`` (Hive partition values from
    the key included), each row as canonical JSON."""
    client, rows = pipeline.s3(), Counter()
    for key in _lake_keys(client, pipeline.bucket, prefix):
        if not key.endswith(".parquet"):
            continue
        partitions = dict(part.split("=", 1) for part in key.split("/") if "=" in part)
        table = pq.read_table(io.BytesIO(client.get_object(Bucket=pipeline.bucket, Key=key)["Body"].read()))
        for row in table.to_pylist():
            rows[json.dumps({**partitions, **row}, sort_keys=True, default=str)] += 1
    return rows


def lake_objects(pipeline: PrivatePipeline, prefix: str) -> list[str]:
    return _lake_keys(pipeline.s3(), pipeline.bucket, prefix)


def alias_docs(pipeline: PrivatePipeline) -> dict[str, dict]:
    es = pipeline.es()
    es.indices.refresh(index=pipeline.alias)
    hits = es.search(index=pipeline.alias, size=10_000, query={"match_all": {}})["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def run_summaries(pipeline: PrivatePipeline) -> list[dict]:
    client = pipeline.s3()
    return [
        json.loads(client.get_object(Bucket=pipeline.bucket, Key=key)["Body"].read())
        for key in _lake_keys(client, pipeline.bucket, "runs/")
        if key.endswith("/run_summary.json")
    ]


# run_summary.json fields that name the run itself (its id, time, index, alias, bucket paths):
# they differ between two runs by construction. Everything else must be equal.
RUN_SPECIFIC = {
    "run_id",
    "finished_at",
    "elasticsearch_index",
    "elasticsearch_alias",
    "alias_now_on",
    "lake_archive",
    "lake_profiles",
    "evidence",
    "quarantine",
    "validation_report",
}


def summary_counts(summary: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in summary.items() if key not in RUN_SPECIFIC}


@dataclass
class EndState:
    docs: dict[str, dict]
    indices: list[str]
    archive: Counter
    snapshot: Counter
    summaries: list[dict]

    @property
    def counts(self) -> dict[str, Any]:
        return summary_counts(self.summaries[-1]) if self.summaries else {}


def end_state(pipeline: PrivatePipeline) -> EndState:
    """What a run left: ES documents behind the alias (by _id) and the indices of the alias'
    name, the archive's rows (raw/events), the snapshot's rows (profiles/) and every
    run_summary.json."""
    return EndState(
        docs=alias_docs(pipeline),
        indices=sorted(pipeline.es().indices.get(index=f"{pipeline.alias}-*")),
        archive=lake_rows(pipeline, "raw/events/"),
        snapshot=lake_rows(pipeline, "profiles/"),
        summaries=run_summaries(pipeline),
    )
