"""Where the project's files are: the one place that knows the checkout layout.

The package lives in ``<project>/plugins/ecommerce_profiles`` (installed editable locally; in the
image, /opt/airflow/plugins, Airflow's plugins folder), so the project root is three levels above
this file unless $PIPELINE_PROJECT_DIR says otherwise. The spark-submit applications are files in
``<project>/spark_jobs`` (referenced by path, never imported from here); assets (Elasticsearch
mapping, Kibana saved objects) are in ``<project>/include``; data (drops, one-shot files,
staging) under $PIPELINE_DATA_DIR.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(os.environ.get("PIPELINE_PROJECT_DIR") or Path(__file__).resolve().parents[3])
INCLUDE_DIR = PROJECT_DIR / "include"
DOCS_DIR = PROJECT_DIR / "docs"
SPARK_JOBS_DIR = PROJECT_DIR / "spark_jobs"
SPARK_JOB_FILE = SPARK_JOBS_DIR / "customer_profiles.py"
TRAINING_SET_JOB_FILE = SPARK_JOBS_DIR / "training_set.py"


def data_dir() -> Path:
    """The data directory: the only place run inputs may come from (resolved, symlinks followed)."""
    return Path(os.environ.get("PIPELINE_DATA_DIR") or PROJECT_DIR / "data").resolve()
