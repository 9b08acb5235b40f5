"""The whole DAG on the same one-shot file in the Compose stack and on the local stack, back to back.

    python -m bench.compose_dag [--events 885129] [--rounds 1] [--keep-stack]

* The CSV is the benchmark's own (``data/bench/events_<N>_seed<S>.csv``, generated once).
* **Compose**: a stack of its own (``make start STACK=compose`` under the project
  ``ecommerce-profiles-bench`` and free host ports, tests/compose/compose_support.py), the file
  hard-linked into ./data (what Compose mounts) and the profiles DAG triggered through the REST API
  with ``input_path``, as a user would; timed from the trigger to the run's success, and per task
  from the scheduler's task instances. The training-set DAG stays paused (its Spark job would
  share the cluster). Memory: ``docker stats`` of the project every 5 s during the runs.
* **Local**: ``bench.stages.stage_dag`` (``airflow dags test`` in a private environment on the
  local stack, Spark ``local[2]``), the way ``make bench`` measures the DAG.

Rounds alternate the order (compose, local, then local, compose, ...). The result, with the
machine's speed probe and load, goes to ``bench/results/compose-<events>.json``; the stack is
taken down with ``docker compose down -v`` unless ``--keep-stack``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from bench import analysis, services, stages
from bench.cli import bench_csv
from bench.system import PROJECT_ROOT, LoadSampler, code_version, load_1m, machine_info, say
from ecommerce_profiles.core.lake import SPARK_SUMMARY_FILE
from tests.compose.compose_support import (
    DATA_DIR,
    PROFILES_DAG,
    ComposeAirflow,
    ComposeLake,
    ComposeStack,
    MemorySampler,
    read_env_file,
    run_seconds,
)

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
LOGICAL_DATE = "2021-03-01"  # the local run's, as make bench (the Compose run has none: Airflow 3)


def compose_run(airflow: ComposeAirflow, lake: ComposeLake, relative: str, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    run = airflow.trigger(PROFILES_DAG, {"input_path": relative})
    finished = airflow.wait_for_run(PROFILES_DAG, run["dag_run_id"], timeout=timeout)
    wall = round(time.monotonic() - started, 1)
    if finished["state"] != "success":
        raise RuntimeError(f"compose run failed:\n{airflow.failure_report(PROFILES_DAG, run['dag_run_id'])}")
    instances = list(airflow.task_instances(PROFILES_DAG, run["dag_run_id"]).values())
    tasks = analysis.task_seconds(instances)
    spark_summary = lake.json(f"{lake.run_evidence_prefix(run['dag_run_id'])}/{SPARK_SUMMARY_FILE}")
    job = analysis.job_figures(spark_summary) if spark_summary else {}
    out = {
        "wall_s": wall,
        "run_s": run_seconds(finished),
        "task_s": tasks,
        "task_span_s": analysis.task_span_s(instances),
        "overhead_s": round(wall - sum(tasks.values()), 1),
        "spark_stage_s": job.get("stage_s"),
        "spark_startup_s": job.get("startup_s"),
        "run_id": run["dag_run_id"],
        "load_1m_after": load_1m(),
    }
    say(f"compose: DAG {wall:.1f}s from trigger to success (run {out['run_s']}s); tasks {tasks}")
    return out


def local_run(csv_path: Path, root: Path) -> dict[str, Any]:
    name = uuid.uuid4().hex[:8]
    topic, bucket, alias = (
        f"bench_compose_{name}",
        f"{os.environ['MINIO_BUCKET']}-bench-compose-{name}",
        f"bench_compose_{name}",
    )
    try:
        out = stages.stage_dag(
            csv_path, root / name, topic=topic, bucket=bucket, alias=alias, logical_date=LOGICAL_DATE
        )
    finally:
        services.delete_topics([topic])
        services.delete_bucket(bucket)
        services.delete_indices(f"{alias}-*")
    result = {
        "wall_s": out["dag_wall_s"],
        "task_s": out["dag_task_s"],
        "overhead_s": out["dag_overhead_s"],
        "spark_stage_s": out["dag_spark_stage_s"],
        "spark_startup_s": out["dag_spark_startup_s"],
        "load_1m_after": load_1m(),
    }
    say(f"local: DAG {result['wall_s']:.1f}s; tasks {result['task_s']}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=885_129)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--keep-stack", action="store_true")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args(argv)

    csv_path, _ = bench_csv(args.events, args.seed)
    subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "stack.sh"), "up"], check=True)
    root = Path(os.environ.get("STACK_DIR", PROJECT_ROOT / ".stack")) / "compose-bench"
    os.environ.setdefault("COMPOSE_TEST_PROJECT", "ecommerce-profiles-bench")
    stack = ComposeStack.with_free_ports(root)
    relative = f"bench-compose/{csv_path.name}"
    target = DATA_DIR / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.link(csv_path, target)
    machine = machine_info()
    loads = LoadSampler()
    loads.start()
    result: dict[str, Any] = {
        "what": "the profiles DAG on one one-shot file: Compose stack (REST trigger, scheduler, Spark cluster) "
        "vs local stack (airflow dags test, Spark local[2]), back to back",
        "events": args.events,
        "csv": csv_path.name,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "code": code_version(),
        "load_start_1m": load_1m(),
        "compose_project": stack.project,
        "rounds": [],
    }
    memory = None
    try:
        had_image = subprocess.run(
            ["docker", "image", "inspect", "ecommerce-profiles-airflow:3.3.2"], capture_output=True
        )
        result["up_kind"] = "warm" if had_image.returncode == 0 else "cold"
        result["up_s"] = round(stack.up(), 1)
        env = read_env_file(PROJECT_ROOT / ".env")
        airflow = ComposeAirflow(
            home=root,
            port=stack.port("AIRFLOW_PORT"),
            env=stack.env,
            log=root / "airflow.log",
            username=env["AIRFLOW_ADMIN_USER"],
            admin_password=env["AIRFLOW_ADMIN_PASSWORD"],
        )
        airflow.wait_for("Airflow healthy", airflow.healthy, timeout=300)
        airflow.wait_for_dag(PROFILES_DAG)
        airflow.unpause(PROFILES_DAG)
        lake = ComposeLake(stack.url("MINIO_PORT"), stack.url("ELASTICSEARCH_PORT"), env)
        memory = MemorySampler(stack).start()
        for index in range(args.rounds):
            order = ("compose", "local") if index % 2 == 0 else ("local", "compose")
            entry: dict[str, Any] = {"order": list(order)}
            for side in order:
                say(f"round {index + 1}: {side} (load {load_1m()})")
                entry[f"{side}_load_1m_before"] = load_1m()
                entry[side] = (
                    compose_run(airflow, lake, relative, args.timeout)
                    if side == "compose"
                    else local_run(csv_path, root / "local")
                )
            result["rounds"].append(entry)
    finally:
        loads.stop()
        if memory is not None:
            memory.stop()
            result["memory"] = memory.peak()
        result["load_mean_1m"] = loads.mean()
        if not args.keep_stack and stack.containers():
            stack.save_logs()
            result["down_s"] = round(stack.down(), 1)
        target.unlink(missing_ok=True)
        # A run that measured nothing (the stack did not come up) does not replace a result.
        out = RESULTS_DIR / f"compose-{args.events}.json" if result["rounds"] else root / "failed-result.json"
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        say(f"result: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
