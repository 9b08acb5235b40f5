"""Static checks of the Docker Compose deployment; the check functions live in
scripts/deploy_checks.py (also runnable on its own), loaded here as ``deploy_checks``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "scripts" / "deploy_checks.py"


def _load():
    if "deploy_checks" in sys.modules:
        return sys.modules["deploy_checks"]
    spec = importlib.util.spec_from_file_location("deploy_checks", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["deploy_checks"] = module
    spec.loader.exec_module(module)
    return module


deploy_checks = _load()
