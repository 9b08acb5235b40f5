"""The README's `make demo` on a fresh machine: a new Debian 12 container with only what the
README's Prerequisites say the user brings (Debian with apt, root, make, git, ca-certificates),
a clone of HEAD, then `make demo`, cold. See make_demo_in_container.sh for how the machine is made.

Minutes long and needs a Docker engine (scripts/docker_engine.sh installs Debian's and starts it):
only `make test-fresh-machine` (FRESH_MACHINE=1) runs it; .ci/run does, after `make test`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parents[1]

pytestmark = pytest.mark.skipif(
    os.environ.get("FRESH_MACHINE") != "1",
    reason="minutes long, needs a Docker engine: make test-fresh-machine runs it",
)


def test_make_demo_succeeds_on_a_fresh_debian_machine():
    stack_dir = Path(os.environ.get("STACK_DIR", PROJECT_ROOT / ".stack"))
    result_file = stack_dir / "fresh-machine" / "result.json"
    log_file = stack_dir / "fresh-machine" / "make-demo.log"
    # Output goes straight to the terminal (and, time-stamped, to the log): minutes of progress.
    completed = subprocess.run(["bash", str(HERE / "make_demo_in_container.sh")], cwd=PROJECT_ROOT)
    assert result_file.exists(), "the script stopped before it ran make demo (see its output above)"
    result = json.loads(result_file.read_text())
    log = log_file.read_text()
    tail = "\n".join(log.splitlines()[-40:])
    assert completed.returncode == 0 and result["status"] == 0, (
        f"`make demo` on a fresh Debian 12 container exited {result['status']} after {result['seconds']} s; "
        f"last lines of {log_file}:\n{tail}"
    )
    # What the README promises the command does: set up, start the stack, run the DAG, print the summary.
    assert "prerequisites: installing" in log, "install_prereqs.sh did not install the system packages"
    assert "Customer profiles as of" in log and "Demo done." in log, tail
    print(f"\nfresh machine: `make demo` cold in {result['seconds']} s (commit {result['commit'][:10]})")
