"""Validation rows/s A/B: the validator of a git commit against the working tree's, alternating.

    python -m bench.generate_events --events 885129 --seed 42 --out data/bench/v885k.csv
    python -m bench.validation_ab --csv data/bench/v885k.csv --baseline 9c6708d --rounds 5

Each round validates the same CSV once with each variant (``baseline``: validation.py as it is
in the ``--baseline`` commit; ``current``: the working tree's), in a fresh interpreter each time
(the module's lookup caches start empty, as in a DAG task), in alternating order round by round,
so a change of machine speed or load hits both alike. Per validation: wall seconds, the child's
CPU seconds, rows/s, and the 1-minute load average before it. The machine's speed probe runs
before the rounds. Writes bench/results/validation-ab.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODULE_PATH = "plugins/ecommerce_profiles/core/validation.py"
ROW_PREFIX = "VALIDATION_AB "


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, required=True, help="the events CSV every round validates")
    parser.add_argument("--baseline", default="HEAD", help="git commit whose validation.py is the baseline")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--results", type=Path, default=PROJECT_ROOT / "bench" / "results" / "validation-ab.json")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # validate once with this module file
    return parser.parse_args(argv)


def child(module_file: Path, csv_path: Path) -> None:
    """Validate ``csv_path`` once with the validator in ``module_file``; print one JSON row."""
    spec = importlib.util.spec_from_file_location("validation_under_test", module_file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    with tempfile.TemporaryDirectory(prefix="validation-ab-") as out:
        cpu_started = time.process_time()
        started = time.perf_counter()
        result = module.validate_files(
            [csv_path], Path(out) / module.STAGING_FILE_NAME, Path(out) / module.QUARANTINE_FILE_NAME
        )
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    row = {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "rows_read": result.rows_read,
        "rows_accepted": result.rows_accepted,
        "rows_per_s": round(result.rows_read / wall),
        "rows_per_cpu_s": round(result.rows_read / cpu),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(ROW_PREFIX + json.dumps(row), flush=True)


def run_child(module_file: Path, csv_path: Path) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.validation_ab", "--csv", str(csv_path), "--child", str(module_file)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in completed.stdout.splitlines() if line.startswith(ROW_PREFIX))
    return json.loads(line[len(ROW_PREFIX) :])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args.child, args.csv)
        return 0
    from bench.system import code_version, load_1m, machine_info, say

    def git(*command: str) -> str:
        return subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), *command], capture_output=True, text=True, check=True
        ).stdout

    baseline_commit = git("rev-parse", "--short=12", args.baseline).strip()
    load_at_start = load_1m()
    machine = machine_info()  # its speed probe before the rounds, not after
    with tempfile.TemporaryDirectory(prefix="validation-ab-") as scratch:
        variants = {
            "baseline": Path(scratch) / "validation_baseline.py",
            "current": PROJECT_ROOT / MODULE_PATH,
        }
        variants["baseline"].write_text(git("show", f"{baseline_commit}:{MODULE_PATH}"))
        runs = []
        for round_number in range(1, args.rounds + 1):
            order = ["baseline", "current"] if round_number % 2 else ["current", "baseline"]
            for name in order:
                load = round(os.getloadavg()[0], 2)
                row = {
                    "variant": name,
                    "round": round_number,
                    "load_1m_before": load,
                    **run_child(variants[name], args.csv),
                }
                runs.append(row)
                say(
                    f"{name:>8} round {round_number}: {row['wall_s']:.2f} s wall, {row['cpu_s']:.2f} CPU-s, "
                    f"{row['rows_per_s']:,} rows/s (load {load})"
                )
    summary = {}
    for name in variants:
        mine = [r for r in runs if r["variant"] == name]
        summary[name] = {
            "median_rows_per_s": round(statistics.median(r["rows_per_s"] for r in mine)),
            "best_rows_per_s": max(r["rows_per_s"] for r in mine),
            "median_rows_per_cpu_s": round(statistics.median(r["rows_per_cpu_s"] for r in mine)),
            "median_wall_s": round(statistics.median(r["wall_s"] for r in mine), 3),
        }
    summary["current_vs_baseline_median_rows_per_s"] = round(
        summary["current"]["median_rows_per_s"] / summary["baseline"]["median_rows_per_s"], 3
    )
    summary["current_vs_baseline_median_rows_per_cpu_s"] = round(
        summary["current"]["median_rows_per_cpu_s"] / summary["baseline"]["median_rows_per_cpu_s"], 3
    )
    result = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "code": code_version(),
        "baseline_commit": baseline_commit,
        "csv": str(args.csv),
        "csv_bytes": args.csv.stat().st_size,
        "load_avg_1m_start": load_at_start,
        "load_avg_1m_end": load_1m(),
        "rounds": args.rounds,
        "summary": summary,
        "runs": runs,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=1) + "\n")
    say(f"summary: {json.dumps(summary)}")
    say(f"results in {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
