"""Run scripts/stack.sh from tests, optionally against another STACK_DIR and other ports."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

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
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
