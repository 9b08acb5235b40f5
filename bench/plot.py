"""docs/benchmarks.png from the one-shot results: time per stage, CPU per stage and throughput
against the number of events. The markdown around it is bench/report.py's.

    python -m bench.plot            # = python -m bench.report: re-render docs/benchmarks.md and the plot
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bench.system import PROJECT_ROOT

PLOT_PATH = PROJECT_ROOT / "docs" / "benchmarks.png"


# (label, function of a result -> seconds or None) for the time-per-stage plot.
def _baseline_projected(r: dict[str, Any]) -> float | None:
    rate = r.get("baseline_produce_events_per_s")
    return r["events"] / rate if rate else None


def _es_stage(r: dict[str, Any]) -> float | None:
    rate = r.get("es_spark_docs_per_s")
    docs = r.get("es_indexed_docs") or r.get("spark_profiles")
    return docs / rate if rate and docs else None


PLOT_SERIES = (
    ("validate", lambda r: r.get("validate_s")),
    ("produce (DAG code)", lambda r: r.get("produce_s")),
    ("baseline produce (all rows at its rate)", _baseline_projected),
    ("Spark job wall", lambda r: r.get("spark_job_s")),
    ("Spark start-up", lambda r: r.get("spark_startup_s")),
    ("DuckDB reference", lambda r: r.get("duckdb_s")),
    ("Elasticsearch write", _es_stage),
    ("whole DAG", lambda r: r.get("dag_wall_s")),
)


CPU_SERIES = (
    ("validate", "validate_cpu_s"),
    ("produce (client)", "produce_cpu_s"),
    ("baseline (client, for the rows it sent)", "baseline_cpu_s"),
    ("Spark job (spark-submit tree)", "spark_cpu_s"),
    ("DuckDB reference", "duckdb_cpu_s"),
    ("whole DAG (airflow tree)", "dag_cpu_s"),
)


def plot(results: list[dict[str, Any]], path: Path = PLOT_PATH) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (wall, cpu, rate) = plt.subplots(1, 3, figsize=(17, 6.5))
    sizes = [r["events"] for r in results]
    for label, get in PLOT_SERIES:
        points = [(r["events"], get(r)) for r in results if get(r)]
        if points:
            wall.plot(*zip(*points), "--" if "baseline" in label else "-", marker="o", label=label)
    # a line of slope 1 through the first DuckDB point shows what "linear" looks like
    anchor = next(((r["events"], r["duckdb_s"]) for r in results if r.get("duckdb_s")), None)
    if anchor and len(sizes) > 1:
        xs = [sizes[0], sizes[-1]]
        wall.plot(xs, [anchor[1] * x / anchor[0] for x in xs], ":", color="grey", label="linear (slope 1)")
    wall.set(title="Wall seconds per stage (inflated by the machine's load)")

    for label, key in CPU_SERIES:
        points = [(r["events"], r[key]) for r in results if r.get(key)]
        if points:
            cpu.plot(*zip(*points), "--" if "baseline" in label else "-", marker="o", label=label)
    cpu.set(title="CPU seconds per stage (harness + children; load-robust)")

    for key, label in (
        ("produce_events_per_s", "produce (DAG code), events/s"),
        ("baseline_produce_events_per_s", "baseline (kafka-python), events/s"),
        ("es_spark_docs_per_s", "Elasticsearch via Spark connector, profiles/s"),
        ("es_bulk_docs_per_s", "Elasticsearch parallel_bulk, profiles/s"),
    ):
        points = [(r["events"], r[key]) for r in results if r.get(key)]
        if points:
            rate.plot(*zip(*points), marker="o", label=label)
    rate.axhline(200_000, color="grey", ls=":", lw=1)
    rate.axhline(20_000, color="grey", ls=":", lw=1)
    rate.set(title="Throughput (dotted: targets 200k and 20k)", ylabel="per second")
    for ax in (wall, cpu, rate):
        ax.set(xscale="log", yscale="log", xlabel="events")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    wall.set_ylabel("seconds")
    cpu.set_ylabel("CPU seconds")
    machine = results[-1]["machine"] if results else {}
    from bench.report import LOAD_LIMIT, under_load

    loads = ", ".join(
        f"{r['events']:,}: {r.get('load_avg_1m_start', '?')}{'*' if under_load(r) else ''}" for r in results
    )
    fig.suptitle(
        f"{machine.get('cores', '?')} cores, {machine.get('cpu_model', '')}, "
        f"{machine.get('memory_gib', '?')} GiB; 1-min load average at the start of each run "
        f"(* = measured under load > {LOAD_LIMIT}): {loads}",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


if __name__ == "__main__":
    from bench import report

    sys.exit(report.main())
