#!/usr/bin/env python
"""Cut a full events CSV into daily drops: <out-dir>/<YYYY-MM-DD>/events.csv, header in each,
then the drop's ``_SUCCESS`` marker (written last: the DAG's sensor waits for it).

    python scripts/split_daily_drops.py data/electronics.csv            # -> data/incoming/...
    python scripts/split_daily_drops.py data/electronics.csv --out-dir /tmp/incoming --clean

Streams the file once and copies lines byte for byte (no CSV re-encoding), so the drops hold
what the source held (blank lines aside), bad rows included: a row whose event_time has no readable date
goes to the previous row's date (the file is sorted by time), so validation of that day
quarantines it. Existing drops of the dates in the file are replaced; --clean first removes
every <date>/events.csv under the output folder. Prints the rows per date.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date
from pathlib import Path

from ecommerce_profiles.core.inputs import DROP_COMPLETE_MARKER
from ecommerce_profiles.core.paths import data_dir

_DATE = re.compile(rb"(\d{4})-(\d{2})-(\d{2})")
MAX_OPEN_FILES = 64


def _date_of(line: bytes, cache: dict[bytes, str | None]) -> str | None:
    prefix = line[:10]
    if prefix in cache:
        return cache[prefix]
    day = None
    match = _DATE.fullmatch(prefix)
    if match:
        try:
            day = date(*map(int, match.groups())).isoformat()
        except ValueError:
            day = None
    cache[prefix] = day
    return day


def split(source: Path, out_dir: Path, file_name: str = "events.csv", clean: bool = False) -> dict[str, int]:
    """Write the drops; return rows per date (plus '_undated' rows carried to a neighbour)."""
    if clean and out_dir.is_dir():
        for old in out_dir.glob(f"????-??-??/{file_name}"):
            old.unlink()
    counts: dict[str, int] = {}
    handles: dict[str, object] = {}
    started: set[str] = set()  # drops created by this run (reopen in append mode)
    cache: dict[bytes, str | None] = {}
    pending: list[bytes] = []  # undated rows before the first dated one
    undated = 0
    current: str | None = None

    def handle_for(day: str):
        out = handles.get(day)
        if out is None:
            if len(handles) >= MAX_OPEN_FILES:
                for h in handles.values():
                    h.close()
                handles.clear()
            target = out_dir / day / file_name
            target.parent.mkdir(parents=True, exist_ok=True)
            out = open(target, "ab" if day in started else "wb", buffering=1 << 20)
            if day not in started:
                out.write(header)
                started.add(day)
            handles[day] = out
        return out

    with open(source, "rb") as src:
        header = src.readline()
        if not header.endswith(b"\n"):
            header += b"\n"
        try:
            for line in src:
                if not line.strip():
                    continue
                if not line.endswith(b"\n"):
                    line += b"\n"
                day = _date_of(line, cache)
                if day is None:
                    undated += 1
                    if current is None:
                        pending.append(line)
                        continue
                    day = current
                elif pending:
                    handle_for(day).writelines(pending)
                    counts[day] = counts.get(day, 0) + len(pending)
                    pending.clear()
                current = day
                handle_for(day).write(line)
                counts[day] = counts.get(day, 0) + 1
        finally:
            for h in handles.values():
                h.close()
    if pending:
        raise SystemExit(f"{source}: no row has a readable event date; nothing to split")
    for day in started:  # every file of the drop is closed: mark it complete
        (out_dir / day / DROP_COMPLETE_MARKER).touch()
    counts = dict(sorted(counts.items()))
    if undated:
        counts["_undated"] = undated
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path, nargs="?", default=data_dir() / "electronics.csv")
    parser.add_argument("--out-dir", type=Path, default=data_dir() / "incoming")
    parser.add_argument("--file-name", default="events.csv")
    parser.add_argument("--clean", action="store_true", help="remove existing <date>/<file-name> drops first")
    args = parser.parse_args(argv)
    if not args.input.is_file():
        parser.error(
            f"{args.input} does not exist (generate one with `make generate` or python -m bench.generate_events)"
        )

    counts = split(args.input, args.out_dir, args.file_name, args.clean)
    undated = counts.pop("_undated", 0)
    for day, n in counts.items():
        print(f"{day}  {n:>9,}")
    print(
        f"{sum(counts.values()):,} rows into {len(counts)} daily drops under {args.out_dir}"
        + (f" ({undated:,} rows without a readable date kept with the previous row's date)" if undated else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
