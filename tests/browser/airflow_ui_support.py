"""Helpers of the browser tests: a private Airflow, Debian's Chromium through Playwright, screenshots.

Screenshots go to $STACK_DIR/screenshots/; `UPDATE_DOCS_SCREENSHOTS=1 pytest tests/browser`
refreshes the ones in docs/screenshots/ instead.

The private Airflow is `make airflow`'s own script (scripts/airflow_local.sh: `airflow standalone`
in a session of its own, sized parallelism, API on 127.0.0.1, clean stop) with everything that
could collide with another Airflow or test moved aside: its own AIRFLOW_HOME (SQLite) in a temp
folder, its own free ports (API, worker and triggerer log servers), its own data directory, and
its own Kafka topic, MinIO bucket and Elasticsearch alias (uuid suffixes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SCRIPT = PROJECT_ROOT / "scripts" / "airflow_local.sh"
DOCS_SCREENSHOT_DIR = PROJECT_ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
# Headless, and nothing that talks to Google or the network on its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def session_pids(session_id: int) -> list[int]:
    """Processes of a session (Airflow's components, executor workers, tasks, spark-submit)."""
    out = subprocess.run(["ps", "-eo", "pid=,sid="], capture_output=True, text=True, check=True).stdout
    return [int(pid) for pid, sid in (line.split() for line in out.splitlines()) if int(sid) == session_id]


@dataclass
class PrivateAirflow:
    home: Path
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen | None = None
    pid: int | None = None  # standalone's pid = its session id
    username: str = "admin"
    _token: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def password(self) -> str:
        """Standalone generates the admin password and keeps it here (the README says so too)."""
        return json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self, timeout: float = 300) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["bash", str(AIRFLOW_SCRIPT), "start"],
            env=self.env,
            cwd=PROJECT_ROOT,
            stdout=(self.log.parent / "airflow_local.out").open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"airflow_local.sh exited with {self.process.returncode}:\n{self.tail()}")
            if self.pid is None and (self.home / "standalone.pid").exists():
                self.pid = int((self.home / "standalone.pid").read_text())
            if self.pid and self._healthy():
                return
            time.sleep(2)
        raise TimeoutError(f"Airflow not healthy at {self.url} after {timeout}s:\n{self.tail()}")

    def _healthy(self) -> bool:
        try:
            health = self.get("/api/v2/monitor/health", auth=False, attempts=1)
        except (OSError, urllib.error.URLError, ValueError):
            return False
        return all(
            health.get(part, {}).get("status") == "healthy" for part in ("metadatabase", "scheduler", "dag_processor")
        )

    def wait_for_dag(self, dag_id: str, timeout: float = 300) -> None:
        """Until the DAG processor has parsed the DAG; fails with the import errors otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.get(f"/api/v2/dags/{dag_id}")
                return
            except urllib.error.HTTPError as err:
                if err.code != 404:
                    raise
            time.sleep(3)
        errors = self.get("/api/v2/importErrors").get("import_errors", [])
        raise TimeoutError(f"{dag_id} not parsed after {timeout}s; import errors: {errors}")

    def stop(self) -> float:
        """`scripts/airflow_local.sh stop`; returns the seconds it took. Leaves no process behind."""
        started = time.monotonic()
        subprocess.run(
            ["bash", str(AIRFLOW_SCRIPT), "stop"],
            env=self.env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if self.process is not None:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait()
        return time.monotonic() - started

    # --- the REST API (to wait for a run and to explain a failure; the test itself uses the UI) ---
    def token(self) -> str:
        if self._token is None:
            request = urllib.request.Request(
                f"{self.url}/auth/token",
                method="POST",
                headers={"Content-Type": "application/json"},
                data=json.dumps({"username": self.username, "password": self.password}).encode(),
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                self._token = json.load(response)["access_token"]
        return self._token

    def get(self, path: str, auth: bool = True, attempts: int = 3):
        """GET JSON from the API; a timeout (a machine under load) is retried a few times."""
        headers = {"Authorization": f"Bearer {self.token()}"} if auth else {}
        for attempt in range(1, attempts + 1):
            try:
                with urllib.request.urlopen(
                    urllib.request.Request(self.url + path, headers=headers), timeout=60
                ) as response:
                    body = response.read().decode()
                break
            except TimeoutError:
                if attempt == attempts:
                    raise
        return json.loads(body)

    def request(self, method: str, path: str, body: dict | None = None):
        """POST / PATCH / DELETE on the API with a JSON body; returns the decoded answer (or None)."""
        request = urllib.request.Request(
            self.url + path,
            method=method,
            headers={"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"},
            data=json.dumps(body).encode() if body is not None else None,
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read().decode()
        return json.loads(text) if text else None

    def trigger(self, dag_id: str, conf: dict, run_id: str | None = None) -> str:
        """A manual run without a logical date (as Airflow 3 allows); returns its run id."""
        body: dict = {"logical_date": None, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")["state"]

    def wait_for_runs(self, dag_id: str, run_ids: list[str], timeout: float) -> dict[str, str]:
        """Until every run is success or failed, or ``timeout``; {run id: last state seen}."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = {run_id: self.run_state(dag_id, run_id) for run_id in run_ids}
            if all(state in ("success", "failed") for state in states.values()):
                break
            time.sleep(5)
        return states

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        quoted = urllib.parse.quote(run_id, safe="")
        tis = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}

    def failure_report(self, dag_id: str, run_id: str, log_lines: int = 60) -> str:
        """Task states of a run, and the end of each failed task's log."""
        quoted = urllib.parse.quote(run_id, safe="")
        tis = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances")["task_instances"]
        lines = [f"{ti['task_id']}: {ti['state']}" for ti in tis]
        for ti in tis:
            if ti["state"] in ("failed", "upstream_failed", "up_for_retry") and ti.get("try_number"):
                try:
                    entries = self.get(
                        f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{ti['task_id']}"
                        f"/logs/{ti['try_number']}?full_content=true"
                    )["content"]
                    text = [
                        f"{entry.get('timestamp', '')} {entry.get('level', '')} {entry.get('event', '')}"
                        if isinstance(entry, dict)
                        else str(entry)
                        for entry in entries
                    ]
                except (OSError, urllib.error.HTTPError, KeyError) as err:
                    text = [f"(log not available: {err})"]
                lines += [f"----- {ti['task_id']} try {ti['try_number']} -----", *text[-log_lines:]]
        return "\n".join(lines)


# --- the UI steps a user takes (shared by tests/browser and tests/compose) ---
def sign_in(page, airflow: PrivateAirflow) -> None:
    """From the home page: an anonymous visitor is sent to the sign-in page; sign in as the admin."""
    page.goto(airflow.url + "/")
    page.wait_for_url("**/auth/login**")
    page.get_by_label("Username").fill(airflow.username)
    page.get_by_label("Password").fill(airflow.password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Dags").first.wait_for()


def open_dag(page, dag_id: str) -> None:
    from playwright.sync_api import expect

    page.get_by_role("link", name="Dags").first.click()
    # The DAG's own link (href /dags/<id>): once runs and asset events exist, task links of the
    # list's latest runs carry the DAG id as their name too.
    page.locator(f'a[href$="/dags/{dag_id}"]').first.click()
    page.wait_for_url(f"**/dags/{dag_id}")
    # the DAG page's own Trigger button (the list's are gone once it has rendered)
    expect(page.get_by_role("button", name="Trigger Dag")).to_have_count(1)


def open_trigger_form(page, dag_id: str):
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(f"Trigger Dag - {dag_id}").wait_for()
    return dialog


def private_airflow(root: Path, env: dict[str, str], home: Path | None = None) -> PrivateAirflow:
    """A PrivateAirflow under ``root`` (its home, by default ``root/airflow_home``, logs and free
    ports), on ``env`` (which names the pipeline's data dir, topic, bucket and alias)."""
    from tests.stack.stack_cli import unused_port

    home = home or root / "airflow_home"
    env = {
        **env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_PORT": str(unused_port()),
        "STACK_LOG_DIR": str(root / "logs"),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(unused_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(unused_port()),
    }
    return PrivateAirflow(home=home, port=int(env["AIRFLOW_PORT"]), env=env, log=root / "logs" / "airflow.log")


@contextmanager
def running_airflow(instance: PrivateAirflow, *dag_ids: str) -> Iterator[PrivateAirflow]:
    """Started and every one of ``dag_ids`` parsed; stopped afterwards with no process of its
    session left."""
    started = time.monotonic()
    try:
        instance.start()
        for dag_id in dag_ids:
            instance.wait_for_dag(dag_id)
    except BaseException:
        instance.stop()
        raise
    print(f"private Airflow ready at {instance.url} after {time.monotonic() - started:.0f}s")
    try:
        yield instance
    finally:
        seconds = instance.stop()
        print(f"private Airflow stopped in {seconds:.1f}s")
    # Processes the script had to KILL after its grace period (a loaded machine) take a moment to go.
    deadline = time.monotonic() + 15
    while (left := session_pids(instance.pid) if instance.pid else []) and time.monotonic() < deadline:
        time.sleep(1)
    assert not left, f"processes left after airflow_local.sh stop: {left}"


@contextmanager
def chromium_page(profile_dir: Path, width: int = 1440, height: int = 900) -> Iterator:
    """A Playwright page in Debian's Chromium, with a fresh user data dir."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile_dir),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def screenshot_dir() -> Path:
    """docs/screenshots/ (the README shows them) when UPDATE_DOCS_SCREENSHOTS=1, else
    $STACK_DIR/screenshots/: a plain `make test` does not rewrite tracked files."""
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        return DOCS_SCREENSHOT_DIR
    return Path(os.environ.get("STACK_DIR", PROJECT_ROOT / ".stack")) / "screenshots"


def save_screenshot(page, name: str, **options) -> Path:
    directory = screenshot_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), **options)
    return path
