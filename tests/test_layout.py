"""The specified layout and its import rules.

* The top level holds the specified entries.
* ``plugins/`` (the Airflow side) never imports ``spark_jobs``: jobs are referenced by file path.
* ``spark_jobs/`` never imports Airflow, and of the plugins package only the pure cores.
* The cores (``plugins/ecommerce_profiles/core``) import neither Airflow nor Spark, and no
  Airflow-facing module of their own package.
* ``dags/`` never imports ``spark_jobs``.

Checked twice: statically (every import statement, including those inside functions) and by
importing each module in a fresh interpreter and looking at what ``sys.modules`` then holds, which
also catches an import that happens through another module.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"
CORE = PLUGINS / "ecommerce_profiles" / "core"
SPARK_JOBS = ROOT / "spark_jobs"
DAGS = ROOT / "dags"
SPECIFIED_TOP_LEVEL = [
    "dags",
    "plugins",
    "spark_jobs",
    "include",
    "docker-compose.yaml",
    "Dockerfile",
    ".env",
    "data",
    "tests",
    "README.md",
]


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement in ``path`` names (absolute imports; the project uses no relative ones)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (the project uses absolute imports)"
            modules.add(node.module or "")
            # `from ecommerce_profiles import core` names the submodule ecommerce_profiles.core
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def offenders(folder: Path, forbidden) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        found += [
            f"{path.relative_to(ROOT)}: {module}" for module in sorted(imported_modules(path)) if forbidden(module)
        ]
    return found


def names(module: str, *roots: str) -> bool:
    return any(module == root or module.startswith(root + ".") for root in roots)


def test_top_level_is_the_specified_one():
    missing = [name for name in SPECIFIED_TOP_LEVEL if not (ROOT / name).exists()]
    assert not missing, f"specified top-level entries missing: {missing}"
    assert not (ROOT / "src").exists(), "src/ is gone: the code lives in plugins/ and spark_jobs/"


def test_plugins_never_import_spark_jobs():
    assert not offenders(PLUGINS, lambda m: names(m, "spark_jobs", "pyspark"))


def test_dags_never_import_spark_jobs():
    assert not offenders(DAGS, lambda m: names(m, "spark_jobs", "pyspark"))


def test_spark_jobs_never_import_airflow_nor_the_airflow_side():
    def forbidden(module: str) -> bool:
        return names(module, "airflow") or (
            names(module, "ecommerce_profiles") and not names(module, "ecommerce_profiles.core")
        )

    assert not offenders(SPARK_JOBS, forbidden)


def test_cores_import_neither_airflow_nor_spark_nor_the_adapters():
    def forbidden(module: str) -> bool:
        return names(module, "airflow", "pyspark", "spark_jobs") or (
            names(module, "ecommerce_profiles") and not names(module, "ecommerce_profiles.core")
        )

    assert not offenders(CORE, forbidden)


def _modules_loaded_by(modules: list[str]) -> set[str]:
    """The top-level packages in sys.modules after importing ``modules`` in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def _module_names(folder: Path, package: str) -> list[str]:
    return [
        ".".join([package, *path.relative_to(folder).with_suffix("").parts]).removesuffix(".__init__")
        for path in sorted(folder.rglob("*.py"))
    ]


def test_importing_the_cores_loads_neither_airflow_nor_spark():
    loaded = _modules_loaded_by(_module_names(CORE, "ecommerce_profiles.core"))
    assert not loaded & {"airflow", "pyspark", "spark_jobs"}


def test_importing_the_spark_jobs_loads_no_airflow():
    loaded = _modules_loaded_by(_module_names(SPARK_JOBS, "spark_jobs"))
    assert "airflow" not in loaded
    assert "pyspark" in loaded  # the check saw the modules really import


def test_dags_reference_the_jobs_by_path():
    from ecommerce_profiles.core import paths

    assert paths.SPARK_JOB_FILE == SPARK_JOBS / "customer_profiles.py" and paths.SPARK_JOB_FILE.is_file()
    assert paths.TRAINING_SET_JOB_FILE == SPARK_JOBS / "training_set.py" and paths.TRAINING_SET_JOB_FILE.is_file()


def test_the_plugin_manager_skips_the_package():
    """Airflow's plugin manager imports each .py file it finds under plugins/ as a top-level
    module named after the file; plugins/.airflowignore keeps it out of the package, which the
    DAGs import as a package and which registers no AirflowPlugin."""
    from airflow._shared.module_loading import find_path_from_directory

    found = [path for path in find_path_from_directory(str(PLUGINS), ".airflowignore", "glob") if path.endswith(".py")]
    assert found == []
    assert any(PLUGINS.rglob("*.py"))  # the check looked at a folder with modules in it
