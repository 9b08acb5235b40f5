"""What a DAG run works on: its input files and its snapshot date.

Two ways in (see README):
  * daily drop: ``<data dir>/incoming/<ds>/*.csv`` for the run's logical date; snapshot = ds;
  * one-shot file: the ``input_path`` param (the whole Kaggle dataset or any file with the same
    columns); snapshot = the last event date in the file, so a 2020 dataset does not get
    six-year recencies. The ``snapshot_date`` param overrides either.
These functions are registered as DAG macros, so templates read ``{{ input_glob(params, ds) }}``.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any, Mapping

from ecommerce_profiles.paths import PROJECT_DIR, data_dir


def input_glob(params: Mapping[str, Any], ds: str) -> str:
    """Absolute path or glob of the run's CSV input."""
    explicit = (params.get("input_path") or "").strip()
    if explicit:
        path = Path(explicit)
        return str(path if path.is_absolute() else PROJECT_DIR / path)
    return str(data_dir() / "incoming" / ds / "*.csv")


def snapshot_date(params: Mapping[str, Any], ds: str, validation: Mapping[str, Any] | None) -> str:
    """Profiles are computed as of this date (inclusive)."""
    override = (params.get("snapshot_date") or "").strip()
    if override:
        return date.fromisoformat(override).isoformat()
    if (params.get("input_path") or "").strip():
        if not validation or not validation.get("max_event_date"):
            raise ValueError("one-shot input has no valid events: cannot derive a snapshot date")
        return str(validation["max_event_date"])
    return ds


def staging_dir(run_id: str) -> str:
    """Local folder for the validated events handed from validation to the producer."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return str(data_dir() / "staging" / safe)


MACROS = {"input_glob": input_glob, "snapshot_date": snapshot_date, "staging_dir": staging_dir}
