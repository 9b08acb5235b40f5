"""Where the project's files are: the one place that knows the checkout layout.

The package lives in ``<project>/src/ecommerce_profiles`` (installed editable locally, copied
to /opt/airflow/src in the image), so the project root is two levels up unless
$PIPELINE_PROJECT_DIR says otherwise. Assets (Elasticsearch mapping, Kibana saved objects) are
in ``<project>/include``; data (drops, one-shot files, staging) under $PIPELINE_DATA_DIR.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(os.environ.get("PIPELINE_PROJECT_DIR") or Path(__file__).resolve().parents[2])
INCLUDE_DIR = PROJECT_DIR / "include"
DOCS_DIR = PROJECT_DIR / "docs"
PACKAGE_DIR = Path(__file__).resolve().parent
SPARK_JOB_FILE = PACKAGE_DIR / "spark_jobs" / "customer_profiles.py"


def data_dir() -> Path:
    """The data directory: the only place run inputs may come from (resolved, symlinks followed)."""
    return Path(os.environ.get("PIPELINE_DATA_DIR") or PROJECT_DIR / "data").resolve()
