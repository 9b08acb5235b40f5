"""What the DAG processor and the plugin manager pay for the project's code, per checkout.

    python -m bench.dag_parse --rounds 5                                  # this checkout
    git worktree add /tmp/before <commit>
    python -m bench.dag_parse --rounds 5 --checkout /tmp/before --checkout .   # alternating A/B

Each round, for each checkout in turn (alternating, so a change of machine speed hits both),
a fresh interpreter:
  * loads the plugins folder the way Airflow's plugin manager does (every ``.py`` file that
    ``.airflowignore`` leaves in, imported as a module) and counts the files it imported;
  * parses each DAG file with ``DagBag`` (what the DAG processor runs per file) and reports
    ``dagbag_stats``' duration per file and the modules the parse left in ``sys.modules``.
An older checkout whose package lived in ``src/`` gets that folder on PYTHONPATH. Writes
bench/results/dag-parse.json with the machine's load and speed probe.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import system

ROW_PREFIX = "DAG_PARSE "
CHILD = r"""
import json, os, sys, time
from pathlib import Path
checkout = Path(sys.argv[1])
started = time.perf_counter()
from airflow._shared.module_loading import find_path_from_directory
from airflow._shared.plugins_manager.plugins_manager import _load_plugins_from_plugin_directory
airflow_import_s = time.perf_counter() - started
plugins = checkout / "plugins"
plugin_files = []
plugins_s = 0.0
if plugins.is_dir():
    plugin_files = [p for p in find_path_from_directory(str(plugins), ".airflowignore", "glob") if p.endswith(".py")]
    started = time.perf_counter()
    _load_plugins_from_plugin_directory(str(plugins))
    plugins_s = time.perf_counter() - started
before = set(sys.modules)
from airflow.dag_processing.dagbag import DagBag
per_file = {}
for dag_file in sorted((checkout / "dags").glob("*.py")):
    bag = DagBag(dag_folder=str(dag_file), safe_mode=False)
    assert not bag.import_errors, bag.import_errors
    # one file per DagBag: its one stat is that file's parse (the first file also pays for the
    # imports the files share, so the order is fixed: sorted by name)
    per_file[dag_file.name] = sum(s.duration.total_seconds() if hasattr(s.duration, "total_seconds") else float(s.duration)
                                  for s in bag.dagbag_stats)
loaded = sorted({m.split(".")[0] for m in set(sys.modules) - before})
print("DAG_PARSE " + json.dumps({"airflow_import_s": airflow_import_s, "plugin_files_imported": len(plugin_files),
                                 "plugins_s": plugins_s, "parse_s": per_file, "top_level_modules_loaded": loaded}))
"""


def measure(checkout: Path) -> dict:
    env = dict(os.environ, PIPELINE_PROJECT_DIR=str(checkout), AIRFLOW__CORE__DAGS_FOLDER=str(checkout / "dags"))
    if (checkout / "src").is_dir():  # a checkout from before the plugins/ + spark_jobs/ layout
        env["PYTHONPATH"] = os.pathsep.join([str(checkout / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    load = system.load_1m()
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(checkout)], env=env, capture_output=True, text=True, timeout=600
    )
    wall = time.perf_counter() - started
    rows = [line for line in result.stdout.splitlines() if line.startswith(ROW_PREFIX)]
    if result.returncode or not rows:
        raise RuntimeError(f"parsing {checkout} failed:\n{result.stderr[-3000:]}")
    row = json.loads(rows[-1][len(ROW_PREFIX) :])
    row.update(process_wall_s=round(wall, 3), load_1m=load)
    return row


def summarise(runs: list[dict]) -> dict:
    files = sorted({name for run in runs for name in run["parse_s"]})
    return {
        "rounds": len(runs),
        "parse_s_median": {name: round(statistics.median(r["parse_s"][name] for r in runs), 3) for name in files},
        "plugins_s_median": round(statistics.median(r["plugins_s"] for r in runs), 3),
        "plugin_files_imported": runs[-1]["plugin_files_imported"],
        "process_wall_s_median": round(statistics.median(r["process_wall_s"] for r in runs), 3),
        "top_level_modules_loaded": runs[-1]["top_level_modules_loaded"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", type=Path, action="append", help="a project checkout (default: this one)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--results", type=Path, default=system.PROJECT_ROOT / "bench" / "results" / "dag-parse.json")
    args = parser.parse_args(argv)
    checkouts = [c.resolve() for c in (args.checkout or [system.PROJECT_ROOT])]
    result = {"machine": system.machine_info(), "speed_probe": system.speed_probe(), "checkouts": {}}
    runs: dict[str, list[dict]] = {str(c): [] for c in checkouts}
    for round_number in range(args.rounds):
        order = checkouts if round_number % 2 == 0 else list(reversed(checkouts))
        for checkout in order:
            runs[str(checkout)].append(measure(checkout))
            system.say(f"round {round_number + 1}: {checkout}: {runs[str(checkout)][-1]['parse_s']}")
    for checkout in checkouts:
        commit = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        result["checkouts"][str(checkout)] = {
            "commit": commit,
            **summarise(runs[str(checkout)]),
            "runs": runs[str(checkout)],
        }
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    shown = ("commit", "parse_s_median", "plugins_s_median", "plugin_files_imported", "process_wall_s_median")
    print(json.dumps({c: {k: s[k] for k in shown} for c, s in result["checkouts"].items()}, indent=2))


if __name__ == "__main__":
    main()
