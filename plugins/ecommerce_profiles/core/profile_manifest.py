"""When a run may build its profiles from an earlier snapshot instead of the whole archive.

Every profile job records, beside its snapshot, the archive it was computed from: each Parquet
file's path (relative to the archive root, ``event_date=D/batch=B/part-...``) and size, and the
version of the profile logic. A later run with snapshot date D may start from the latest
earlier snapshot P (``spark_jobs.profile_transforms.incremental_profiles``)
only when that gives exactly what a full rebuild would:

* the profile logic is the same version;
* the archive up to P is unchanged apart from this run's own new events: the same files of
  other batches (a rerun, a backfill or a late drop that rewrote an older date since P changes
  them), and no files of this run's batch up to P when P was built (a rerun of a batch replaces
  them, and a snapshot's rows cannot be un-added).

Anything else is a full rebuild, with the reason in the run's summary. Pure functions of plain
values (no Spark, no I/O).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecommerce_profiles.core.lake import SNAPSHOT_PARTITION, archive_file_partition

MANIFEST_FORMAT = 1
_MANIFEST_NAME = re.compile(rf"^{SNAPSHOT_PARTITION}=(\d{{4}}-\d{{2}}-\d{{2}})\.json$")


def logic_version(*sources: str | Path) -> str:
    """A digest of the files that define the profiles (transforms and field list)."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()[:16]


def archive_files(listing: Mapping[str, int]) -> dict[str, int]:
    """The archive's data files only: {relative path: size}."""
    return {path: size for path, size in listing.items() if archive_file_partition(path)}


def build_manifest(
    snapshot_date: str, files: Mapping[str, int], version: str, profiles: int, mode: str
) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "snapshot_date": snapshot_date,
        "logic_version": version,
        "profiles": profiles,
        "built": mode,
        "archive_files": dict(sorted(archive_files(files).items())),
    }


def manifest_dates(names: Iterable[str]) -> list[str]:
    """Snapshot dates of manifest object names (``snapshot_date=D.json``), sorted."""
    return sorted(m.group(1) for m in map(_MANIFEST_NAME.match, names) if m)


def previous_snapshot_date(names: Iterable[str], snapshot_date: str) -> str | None:
    """The latest manifest's snapshot date strictly before ``snapshot_date``."""
    earlier = [d for d in manifest_dates(names) if d < snapshot_date]
    return earlier[-1] if earlier else None


@dataclass(frozen=True)
class Decision:
    incremental: bool
    reason: str
    previous_snapshot: str | None = None


def _up_to(files: Mapping[str, int], snapshot: str, keep) -> dict[str, int]:
    out = {}
    for path, size in files.items():
        key = archive_file_partition(path)
        if key and key[0] <= snapshot and keep(key[1]):
            out[path] = size
    return out


def decide(
    previous: Mapping[str, Any] | None,
    current_files: Mapping[str, int],
    batch_id: str,
    snapshot_date: str,
    version: str,
) -> Decision:
    """Whether the run (its batch already written; ``current_files`` listed after the write) may
    start from ``previous``, the latest earlier snapshot's manifest."""
    if previous is None:
        return Decision(False, "no earlier snapshot with a manifest")
    p = previous.get("snapshot_date")
    if previous.get("format") != MANIFEST_FORMAT or not isinstance(p, str):
        return Decision(False, "the earlier manifest has an unknown format", p)
    if p >= snapshot_date:
        return Decision(False, f"the earlier snapshot {p} is not before {snapshot_date}", p)
    if previous.get("logic_version") != version:
        return Decision(False, f"the profile logic changed since the snapshot of {p}", p)
    before = previous.get("archive_files") or {}
    mine_then = _up_to(before, p, lambda batch: batch == batch_id)
    if mine_then:
        return Decision(False, f"batch {batch_id} already had {len(mine_then)} file(s) up to {p} (a rerun)", p)
    others_then = _up_to(before, p, lambda batch: batch != batch_id)
    others_now = _up_to(current_files, p, lambda batch: batch != batch_id)
    if others_now != others_then:
        changed = sorted({path.rsplit("/", 1)[0] for path, _ in set(others_now.items()) ^ set(others_then.items())})
        return Decision(
            False,
            f"the archive up to {p} changed since its snapshot: {', '.join(changed[:3])}"
            + (f" and {len(changed) - 3} more partition(s)" if len(changed) > 3 else ""),
            p,
        )
    return Decision(True, f"the archive up to {p} is unchanged since its snapshot", p)
