"""Run scripts/stack.sh from tests, optionally against another STACK_DIR and other ports."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from tests.support.ports import free_ports

STACK_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "stack.sh"


def run_stack(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run stack.sh; `env` entries override .env values (stack.sh lets the caller's exports win)."""
    return subprocess.run(
        ["bash", str(STACK_SCRIPT), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def unused_port() -> int:
    """A TCP port nothing listens on right now (tests/support/ports.py: not an ephemeral one)."""
    return free_ports(1)[0]


def assert_status_up(service: str, url: str) -> None:
    """`stack.sh status <service>` prints one line: the service, up, its URL."""
    import re

    result = run_stack("status", service)
    assert result.returncode == 0, result.stderr
    assert re.search(rf"^{service}\s+up\s+{re.escape(url)}$", result.stdout, re.MULTILINE), result.stdout


def assert_up_refuses_taken_port(
    tmp_path: Path, service: str, port_var: str, second_port_var: str, url_template: str
) -> None:
    """A dummy listener on the service's port: `up` must refuse, name service and port, start nothing."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken_port = squatter.getsockname()[1]
        result = run_stack(
            "up",
            service,
            env={"STACK_DIR": str(tmp_path / "stack"), port_var: str(taken_port), second_port_var: str(unused_port())},
        )
    assert result.returncode != 0
    assert f"{service} ({url_template.format(port=taken_port)})" in result.stderr
    assert f"port {taken_port} is already taken" in result.stderr
    assert not (tmp_path / "stack" / "pids" / f"{service}.pid").exists(), "nothing may have been started"
