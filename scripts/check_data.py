"""make check-data: is the Kaggle dataset in place and shaped like the event schema?

    python scripts/check_data.py [CSV]

Without CSV: data/electronics.csv, else data/events.csv (under $PIPELINE_DATA_DIR when set).
Checks the header against ecommerce_profiles.core.schemas.EVENT_FIELDS and counts the rows; exit status 1 when
the file is missing, empty or has another header. Row-level problems are the DAG's job
(validate_events quarantines them).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

from ecommerce_profiles.core.schemas import EVENT_FIELDS

PROJECT_ROOT = Path(__file__).resolve().parents[1]

CANDIDATES = ("electronics.csv", "events.csv")
KAGGLE_URL = "https://www.kaggle.com/mkechinov/ecommerce-events-history-in-electronics-store"


def find_dataset(data_dir: Path) -> Path | None:
    return next((data_dir / name for name in CANDIDATES if (data_dir / name).is_file()), None)


def count_rows(path: Path) -> int:
    """Data rows = newlines after the header (plus an unterminated last line)."""
    newlines, last = 0, b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
    lines = newlines + (0 if last == b"\n" else 1)
    return max(lines - 1, 0)


def check(path: Path) -> list[str]:
    expected = [field.name for field in EVENT_FIELDS]
    with path.open(newline="", encoding="utf-8") as handle:
        first = handle.readline()
    header = next(csv.reader([first.lstrip("\ufeff")]), []) if first.strip() else []
    if header != expected:
        return [f"{path}: header is {','.join(header) or '(empty)'}; expected {','.join(expected)}"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", help="dataset to check (default: data/electronics.csv or data/events.csv)")
    args = parser.parse_args(argv)
    data_dir = Path(os.environ.get("PIPELINE_DATA_DIR") or PROJECT_ROOT / "data")
    path = Path(args.csv) if args.csv else find_dataset(data_dir)
    if path is None or not path.is_file():
        where = path or " or ".join(str(data_dir / name) for name in CANDIDATES)
        print(
            f"check-data: no dataset at {where}.\n"
            f"  Download it from {KAGGLE_URL} and save it as data/electronics.csv,\n"
            f"  or generate a sample of the same shape: make generate",
            file=sys.stderr,
        )
        return 1
    problems = check(path)
    if problems:
        print("check-data: " + "\n".join(problems), file=sys.stderr)
        return 1
    rows = count_rows(path)
    if rows == 0:
        print(f"check-data: {path} has a header but no rows", file=sys.stderr)
        return 1
    print(f"check-data: {path} OK: header matches the event schema, {rows:,} rows, {path.stat().st_size / 1e6:,.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
