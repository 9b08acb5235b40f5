#!/usr/bin/env python
"""Write a synthetic clickstream CSV with the Kaggle electronics-store columns and shape.

    python -m bench.generate_events --events 885129 --seed 42 --out data/electronics.csv
    python -m bench.generate_events --events 20000000 --out data/bench/events_20m.csv
    python -m bench.generate_events --events 200000 --bad-rows 5 --out data/demo.csv

Deterministic: the same arguments give the same bytes. --bad-rows K plants K invalid rows per
validation rule (see bench/generator.py) for demos and tests. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.generator import DATASET_SHAPE, write_events_csv
from ecommerce_profiles.core.paths import data_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--events",
        type=int,
        default=DATASET_SHAPE["rows"],
        help="data rows to write, duplicates and bad rows included (default: %(default)s, the real file's size)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=data_dir() / "electronics.csv")
    parser.add_argument("--start", default=DATASET_SHAPE["first_date"], help="first UTC date (default: %(default)s)")
    parser.add_argument(
        "--end", default=DATASET_SHAPE["last_date"], help="last UTC date, inclusive (default: %(default)s)"
    )
    parser.add_argument("--duplicate-rate", type=float, default=0.001, help="share of exact duplicate rows")
    parser.add_argument("--bad-rows", type=int, default=0, metavar="K", help="plant K invalid rows per validation rule")
    args = parser.parse_args(argv)

    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if total >= 1_000_000:
            elapsed = time.perf_counter() - started
            print(f"  {done:,}/{total:,} rows ({done / elapsed:,.0f} rows/s)", file=sys.stderr, flush=True)

    summary = write_events_csv(
        args.out,
        args.events,
        seed=args.seed,
        start=args.start,
        end=args.end,
        duplicate_rate=args.duplicate_rate,
        bad_rows_per_rule=args.bad_rows,
        progress=progress,
    )
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
