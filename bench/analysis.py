"""Where the time went: the Spark job's own summary, its event log, and the DAG's task instances.

The job's summary keys are the ones customer_profiles.py writes (its module docstring lists
them); nothing here guesses other spellings: a missing key is a KeyError, not a silent null.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

# The job's summary keys the benchmark reports (customer_profiles.py "Summary keys").
SUMMARY_COUNT_KEYS = (
    "kafka_records",
    "events_in_run",
    "duplicates_dropped",
    "already_archived_by_other_batches",
    "events_archived",
    "archive_events_total",
    "archive_dates_total",
    "shuffle_partitions",
    "profiles",
    "distinct_users",
)
ES_WRITE_STAGE = "write_elasticsearch"  # the job's StageTimer name of the connector write


def job_figures(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of one job run from its summary: start-up, total, stages, counts."""
    return {
        "startup_s": summary["spark_startup_seconds"],
        "total_s": summary["total_seconds"],
        "stage_s": dict(summary["stage_seconds"]),
        "counts": {key: summary[key] for key in SUMMARY_COUNT_KEYS},
        "dates_archived": len(summary["events_per_date"]),
    }


def es_docs_per_s(summary: Mapping[str, Any], indexed: int) -> float | None:
    seconds = summary["stage_seconds"].get(ES_WRITE_STAGE)
    return round(indexed / seconds, 1) if seconds and indexed else None


def summarise_event_log(path: Path) -> dict[str, Any]:
    """Where the job's time went, from the Spark event log: stages by duration, task-time split."""
    stages: list[dict[str, Any]] = []
    per_stage: dict[int, dict[str, float]] = {}  # executor run / CPU seconds of each stage's tasks
    totals = {
        "executor_run_ms": 0,
        "executor_cpu_ms": 0,
        "gc_ms": 0,
        "shuffle_write_bytes": 0,
        "shuffle_read_bytes": 0,
        "input_bytes": 0,
        "tasks": 0,
        "spill_disk_bytes": 0,
    }
    jobs = 0
    app_start = app_end = None
    with open(path) as handle:
        for line in handle:
            event = json.loads(line)
            kind = event.get("Event")
            if kind == "SparkListenerApplicationStart":
                app_start = event.get("Timestamp")
            elif kind == "SparkListenerApplicationEnd":
                app_end = event.get("Timestamp")
            elif kind == "SparkListenerJobStart":
                jobs += 1
            elif kind == "SparkListenerStageCompleted":
                info = event["Stage Info"]
                if info.get("Submission Time") and info.get("Completion Time"):
                    stages.append(
                        {
                            "stage": info["Stage ID"],
                            "name": info["Stage Name"],
                            "tasks": info["Number of Tasks"],
                            "seconds": round((info["Completion Time"] - info["Submission Time"]) / 1000, 2),
                        }
                    )
            elif kind == "SparkListenerTaskEnd":
                metrics = event.get("Task Metrics") or {}
                own = per_stage.setdefault(event.get("Stage ID", -1), {"run_s": 0.0, "cpu_s": 0.0})
                own["run_s"] += metrics.get("Executor Run Time", 0) / 1000
                own["cpu_s"] += metrics.get("Executor CPU Time", 0) / 1e9
                totals["tasks"] += 1
                totals["executor_run_ms"] += metrics.get("Executor Run Time", 0)
                totals["executor_cpu_ms"] += metrics.get("Executor CPU Time", 0) // 1_000_000
                totals["gc_ms"] += metrics.get("JVM GC Time", 0)
                totals["spill_disk_bytes"] += metrics.get("Disk Bytes Spilled", 0)
                totals["input_bytes"] += (metrics.get("Input Metrics") or {}).get("Bytes Read", 0)
                totals["shuffle_write_bytes"] += (metrics.get("Shuffle Write Metrics") or {}).get(
                    "Shuffle Bytes Written", 0
                )
                read = metrics.get("Shuffle Read Metrics") or {}
                totals["shuffle_read_bytes"] += read.get("Remote Bytes Read", 0) + read.get("Local Bytes Read", 0)
    for stage in stages:
        own = per_stage.get(stage["stage"], {"run_s": 0.0, "cpu_s": 0.0})
        stage["task_run_s"], stage["task_cpu_s"] = round(own["run_s"], 2), round(own["cpu_s"], 2)
    by_cpu = sorted(stages, key=lambda s: -s["task_cpu_s"])[:8]
    stages.sort(key=lambda s: -s["seconds"])
    return {
        "app_seconds": round((app_end - app_start) / 1000, 2) if app_start and app_end else None,
        # Far below 1 means the task threads waited for a CPU (other work on the machine) or I/O.
        "cpu_share_of_task_time": round(totals["executor_cpu_ms"] / totals["executor_run_ms"], 2)
        if totals["executor_run_ms"]
        else None,
        "jobs": jobs,
        "stages_total": len(stages),
        "stage_seconds_sum": round(sum(s["seconds"] for s in stages), 2),
        "slowest_stages": stages[:8],
        "most_cpu_stages": by_cpu,
        **totals,
    }


def newest_event_log(event_log_dir: Path, before: set[Path]) -> Path | None:
    new = sorted(set(event_log_dir.iterdir()) - before) if event_log_dir.exists() else []
    return new[-1] if new else None


def task_instances(dag_id: str, logical_date: str, env: Mapping[str, str]) -> list[dict[str, str]]:
    """The run's task instances (task_id, state, start_date, end_date) as Airflow's CLI reports
    them from its metadata DB: ``airflow tasks states-for-dag-run -o json``."""
    proc = subprocess.run(
        ["airflow", "tasks", "states-for-dag-run", dag_id, logical_date, "-o", "json"],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    text = proc.stdout
    return json.loads(text[text.index("[") :])  # anything logged before the JSON is skipped


def task_seconds(instances: list[dict[str, str]]) -> dict[str, float]:
    """Seconds per task (end - start) in the order the tasks started."""
    timed = [
        (ti["start_date"], ti["task_id"], ti["end_date"])
        for ti in instances
        if ti.get("start_date") and ti.get("end_date")
    ]
    return {task: round(_ts(end) - _ts(start), 2) for start, task, end in sorted(timed)}


def task_span_s(instances: list[dict[str, str]]) -> float | None:
    """First task start to last task end: the run as the scheduler saw it."""
    starts = [_ts(ti["start_date"]) for ti in instances if ti.get("start_date")]
    ends = [_ts(ti["end_date"]) for ti in instances if ti.get("end_date")]
    return round(max(ends) - min(starts), 2) if starts and ends else None


def _ts(value: str) -> float:
    return datetime.fromisoformat(str(value).replace(" ", "T")).timestamp()
