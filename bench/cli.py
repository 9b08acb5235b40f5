"""Benchmarks: how fast each stage of the pipeline is, on generated data of a given size.

    make bench SIZE=885129            # = python -m bench.run --events 885129
    python -m bench.run --events 200000 --skip-dag --skip-baseline
    make bench-daily                  # = python -m bench.run --daily --archive-days 150 --daily-events 6000

One-shot scenario, on the same generated CSV (data/bench/, cached per size and seed):
  validate   the DAG's validation core: CSV -> staging file of Kafka message values
  produce    the DAG's own produce code, staging file -> a fresh topic (events/s, lost)
  baseline   the seed's way: kafka-python, one send() per row as JSON (events/s, lost)
  spark      the Spark job via spark-submit on the produced offsets, with the DAG's conf, into a
             bench bucket and index (wall, start-up apart); --spark-variant repeats it on the
             same topic with extra conf, alternating, for a before/after comparison
  duckdb     the floor: bench.duckdb_reference on the same CSV
  es         profiles/s from the job's Elasticsearch stage, and a Python parallel_bulk
  dag        the whole DAG with `airflow dags test` on the same CSV as a one-shot input

Daily scenario (--daily): an archive of N days of daily runs (bench/daily.py, built once with
pyarrow in the job's layout), then the next day's drop through the whole DAG; the per-task
split from Airflow, the job's stage seconds from its summary, and a re-run of the job on the
drop's offsets with a Spark event log.

Writes bench/results/<events>.json (or daily-<days>d-<events>.json) and latest.json, then the
generated part of docs/benchmarks.md (bench/report.py). Everything created in Kafka, MinIO and
Elasticsearch is named bench* and deleted at the end unless --keep-outputs.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report, services, stages
from bench.system import (
    LOAD_LIMIT,
    PROJECT_ROOT,
    CpuWindow,
    LoadSampler,
    code_version,
    elapsed,
    load_1m,
    machine_info,
    say,
    shown,
    versions,
    wait_for_quiet_machine,
)
from ecommerce_profiles import connections
from ecommerce_profiles.core import lake
from ecommerce_profiles.core.paths import data_dir

DEFAULT_EVENTS = report.DEFAULT_EVENTS
STAGES = ("produce", "baseline", "spark", "duckdb", "es", "dag")
DAG_LOGICAL_DATE = "2021-03-01"  # the day after the generated data set ends


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="rows in the generated CSV")
    parser.add_argument("--seed", type=int, default=42)
    for stage in STAGES:
        parser.add_argument(f"--skip-{stage}", action="store_true", help=f"do not run the {stage} stage")
    parser.add_argument(
        "--baseline-max-events",
        type=int,
        default=300_000,
        help="the baseline sends the first N rows only (its rate is flat and slow; default 300k; 0 = all)",
    )
    parser.add_argument(
        "--es-bulk-max-docs",
        type=int,
        default=500_000,
        help="profiles bulk-indexed by the Python ES measurement (default 500k)",
    )
    parser.add_argument(
        "--spark-variant",
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="also run the spark stage (with --daily: the job's re-run) with this extra Spark conf, "
        "alternating with the plain job on the same input (--spark-rounds times each)",
    )
    parser.add_argument("--spark-rounds", type=int, default=2, help="runs of each variant with --spark-variant")
    daily = parser.add_argument_group("daily scenario")
    daily.add_argument("--daily", action="store_true", help="run the daily scenario instead of the one-shot stages")
    daily.add_argument("--archive-days", type=int, default=150)
    daily.add_argument("--daily-events", type=int, default=6_000, help="generated events per day")
    daily.add_argument("--late-share", type=float, default=0.05, help="share of a day's events arriving a day late")
    daily.add_argument("--redelivered-share", type=float, default=0.01, help="re-delivered archived events in the drop")
    daily.add_argument("--skip-rerun", action="store_true", help="no re-run of the job with an event log")
    parser.add_argument("--results-dir", type=Path, default=PROJECT_ROOT / "bench" / "results")
    parser.add_argument(
        "--no-docs", action="store_true", help="do not regenerate docs/benchmarks.md, its plot and results/details.md"
    )
    parser.add_argument("--keep-outputs", action="store_true", help="keep the bench topics, buckets and indices")
    parser.add_argument(
        "--wait-for-load",
        type=float,
        metavar="LOAD",
        help=f"first wait until the 1-minute load average is below LOAD (e.g. {LOAD_LIMIT})",
    )
    parser.add_argument("--wait-max-s", type=float, default=1800, help="longest wait for --wait-for-load")
    parser.add_argument("--py-spy", type=Path, metavar="DIR", help="profile the produce stage with py-spy into DIR")
    return parser.parse_args(argv)


def parse_conf(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if any(len(p) != 2 for p in pairs):
        raise SystemExit(f"--spark-variant: expected KEY=VALUE[,KEY=VALUE], got {text!r}")
    return {k.strip(): v.strip() for k, v in pairs}


class Run:
    """One benchmark invocation: names, logs, the result being filled in, stage bookkeeping."""

    def __init__(self, args: argparse.Namespace, run_name: str) -> None:
        self.args, self.name = args, run_name
        self.log_dir = PROJECT_ROOT / ".stack" / "bench" / run_name
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.sampler = LoadSampler()
        self.sampler.start()
        self.window = CpuWindow(self.sampler)
        self.errors: dict[str, str] = {}
        self.topics: list[str] = []
        self.buckets: list[str] = []
        self.names: dict[str, str] = {}
        # Other work on the machine skews every figure: record how busy it was, before the
        # speed probe (machine_info) adds load of its own.
        load_at_start = load_1m()
        self.result: dict[str, Any] = {
            "seed": args.seed,
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "load_avg_1m_start": load_at_start,
            "versions": versions(),
            "code": code_version(),
            "logs": shown(self.log_dir),
        }

    def stage(self, name: str, fn: Callable[[], dict[str, Any]], merge: bool = True) -> dict[str, Any]:
        """Run one stage; record its CPU seconds and load and (``merge``) its figures, or its
        error (the other stages still run)."""
        window = CpuWindow(self.sampler)
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001 - one failing stage must not hide the others
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            (self.log_dir / f"{name}.error.txt").write_text(traceback.format_exc())
            say(f"{name}: FAILED: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            return {}
        used = window.close()
        # CPU seconds of this process and its waited-for children (spark-submit, airflow), of the
        # Kafka, MinIO and Elasticsearch servers, and of everybody else; the load meanwhile.
        self.result[f"{name}_cpu_s"] = used["cpu_s"]
        self.result[f"{name}_server_cpu_s"] = used["server_cpu_s"]
        self.result[f"{name}_load"] = used["load"]
        if merge:
            self.result.update({k: v for k, v in out.items() if not k.startswith("_")})
        return out

    def finish(self) -> int:
        run_load = self.window.close()["load"]
        self.sampler.stop()
        self.result["load_avg_1m_end"] = load_1m()
        self.result["load"] = {
            "limit": LOAD_LIMIT,
            "start_1m": self.result["load_avg_1m_start"],
            "end_1m": self.result["load_avg_1m_end"],
            "max_1m": run_load["max_1m"],
            "mean_1m": self.sampler.mean(),
            "others_cores": run_load["others_cores"],
            # the load before the harness did anything: other people's work
            "under_load": self.result["load_avg_1m_start"] > LOAD_LIMIT,
        }
        self.result["bench_wall_s"] = round(elapsed(), 1)
        if self.errors:
            self.result["errors"] = self.errors
        report.derive(self.result)
        for path in report.write_results(self.result, self.args.results_dir):
            say(f"wrote {shown(path)}")
        if not self.args.no_docs:
            for path in report.render(self.args.results_dir):
                say(f"wrote {shown(path)}")
        print(report.human_summary(self.result), flush=True)
        return 1 if self.errors else 0

    def clean_up(self) -> None:
        if self.args.keep_outputs:
            return
        say("cleaning up bench topics, buckets and indices")
        services.delete_topics(self.topics)
        self.topics.clear()
        for bucket in self.buckets:
            if services.bucket_exists(bucket):
                services.delete_bucket(bucket)
        services.delete_indices(f"bench_{self.name}_*")
        shutil.rmtree(self.log_dir / "staging", ignore_errors=True)
        for folder in self.log_dir.glob("*/data"):  # private data directories (the CSV hard link, drops)
            shutil.rmtree(folder, ignore_errors=True)


def bench_bucket(run_name: str) -> str:
    """A bucket of the pipeline's family (``<MINIO_BUCKET>-bench-<run>``): the pipeline's MinIO
    user may write only there; the root account creates and deletes it."""
    return f"{connections.pipeline_names().bucket}-bench-{run_name}"


def bench_csv(events: int, seed: int) -> tuple[Path, float | None]:
    """The benchmark CSV for (events, seed), generated once and reused; (path, seconds or None)."""
    from bench.generator import write_events_csv

    folder = data_dir() / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"events_{events}_seed{seed}.csv"
    if path.exists():
        say(f"data set {shown(path)} (cached)")
        return path, None
    say(f"generating {events:,} events (seed {seed}) -> {path}")
    partial = path.with_suffix(".csv.partial")
    started = time.perf_counter()
    write_events_csv(
        partial,
        events,
        seed=seed,
        progress=lambda done, total: (
            say(f"  generated {done:,}/{total:,}") if done % 2_000_000 < 250_000 and done < total else None
        ),
    )
    partial.rename(path)  # only a complete file is ever cached
    seconds = time.perf_counter() - started
    say(f"generated in {seconds:.1f}s ({events / seconds:,.0f} rows/s, {path.stat().st_size / 1e6:,.0f} MB)")
    return path, seconds


def last_event_date(csv_path: Path) -> str:
    """Last event date of a time-sorted CSV (its last line), for runs that skip validation."""
    with open(csv_path, "rb") as handle:
        handle.seek(max(0, handle.seek(0, 2) - 4096))
        return handle.read().decode().strip().splitlines()[-1][:10]


def spark_runs(
    run: Run, first_tag: str, call: Callable[[str, str, int, dict[str, str]], dict[str, Any]]
) -> list[dict[str, Any]]:
    """The spark stage once, or --spark-rounds x (plain, variant) alternating on the same input.

    ``call(tag, label, round, extra_conf)`` runs one job; the first plain run is ``first_tag``
    (its figures are the headline ones), the others are kept apart in ``spark_variants``.
    Returns the outputs of the plain runs.
    """
    variant = parse_conf(run.args.spark_variant)
    plan = [("plain", {})] + ([("variant", variant)] if variant else [])
    variants: dict[str, dict[str, Any]] = {label: {"label": label, "conf": conf, "runs": []} for label, conf in plan}
    plain = []
    for i in range(run.args.spark_rounds if variant else 1):
        for label, conf in plan:
            tag = first_tag if (i, label) == (0, "plain") else f"{first_tag}_{label}{i}"
            # the one-shot's headline spark_* figures are its first plain run's; the daily
            # re-runs are reported under daily_rerun_* and spark_variants only
            out = run.stage(tag, lambda: call(tag, label, i, conf), merge=tag == "spark")
            if out:
                plain += [out] if label == "plain" else []
                variants[label]["runs"].append(
                    {
                        "spark_job_s": out["spark_job_s"],
                        "spark_startup_s": out["spark_startup_s"],
                        "spark_stage_s": out["spark_stage_s"],
                        "load": run.result[f"{tag}_load"],
                        "cpu_s": run.result[f"{tag}_cpu_s"],
                        "thread_cpu_s": out["spark_thread_cpu_s"],
                        "task_cpu_s": (out.get("spark_event_log") or {}).get("executor_cpu_ms", 0) / 1000,
                        "job_sha256": out["spark_job_sha256"],
                    }
                )
    if variant:
        run.result["spark_variants"] = list(variants.values())
    return plain


def one_shot(run: Run) -> None:
    args = run.args
    skip = {stage for stage in STAGES if getattr(args, f"skip_{stage}")}
    if "produce" in skip:  # a produce is what the Spark job reads
        skip.add("spark")
    prefix = f"bench_{run.name}"
    run.names = names = {
        "produce_topic": f"{prefix}_produce",
        "baseline_topic": f"{prefix}_baseline",
        "dag_topic": f"{prefix}_dag",
        "bucket": bench_bucket(run.name),
        "index": f"{prefix}_spark",
        "bulk_index": f"{prefix}_bulk",
        "dag_alias": f"{prefix}_dag",
    }
    run.result.update(
        {
            "scenario": "one_shot",
            "events": args.events,
            "skipped": sorted(skip),
            "names": names,
            **dict.fromkeys(report.HEADLINE_KEYS),
        }
    )
    say(
        f"benchmark of {args.events:,} events; skipping: {', '.join(sorted(skip)) or 'nothing'}; logs {shown(run.log_dir)}"
    )
    csv_path, generate_s = bench_csv(args.events, args.seed)
    run.result.update(
        {
            "csv": shown(csv_path),
            "csv_mb": round(csv_path.stat().st_size / 1e6, 1),
            "generate_s": generate_s and round(generate_s, 1),
        }
    )
    validation: dict[str, Any] = {}
    if "produce" not in skip:  # the staging file is the producer's input
        validation = run.stage("validate", lambda: stages.stage_validate(csv_path, run.log_dir / "staging")).get(
            "validation", {}
        )
    snapshot_date = validation.get("max_event_date") or last_event_date(csv_path)
    if "produce" not in skip and validation:
        run.topics.append(names["produce_topic"])
        run.stage(
            "produce",
            lambda: stages.stage_produce(
                validation["staging_path"], names["produce_topic"], int(validation["rows_accepted"]), args.py_spy
            ),
        )
    if "baseline" not in skip:
        run.topics.append(names["baseline_topic"])
        run.stage(
            "baseline",
            lambda: stages.stage_baseline(csv_path, names["baseline_topic"], args.events, args.baseline_max_events),
        )
    if "spark" not in skip and run.result.get("produce_topic_messages"):

        def spark_job(tag: str, label: str, i: int, conf: dict[str, str]) -> dict[str, Any]:
            bucket = names["bucket"] if tag == "spark" else f"{names['bucket']}-{label}{i}"  # each run on an empty lake
            services.create_bucket(bucket)
            run.buckets.append(bucket)
            return stages.stage_spark(
                topic=names["produce_topic"],
                offsets=run.result["produce_offsets"],
                expected=int(validation["rows_accepted"]),
                bucket=bucket,
                index=f"{names['index']}_{label}{i}",
                snapshot_date=str(snapshot_date),
                run_date=DAG_LOGICAL_DATE,
                batch_id=lake.file_batch_id(f"bench/{csv_path.name}"),
                log_dir=run.log_dir,
                extra_conf=conf,
                name=f"{tag}-job",
            )

        spark_runs(run, "spark", spark_job)
    if not args.keep_outputs:  # free the broker's disk before the DAG writes its own copy
        services.delete_topics(run.topics)
        run.topics.clear()
    duck = (
        run.stage("duckdb", lambda: stages.stage_duckdb(csv_path, str(snapshot_date))) if "duckdb" not in skip else {}
    )
    if "es" not in skip and "_duckdb_table" in duck:
        run.stage("es", lambda: stages.stage_es_bulk(duck["_duckdb_table"], names["bulk_index"], args.es_bulk_max_docs))
    duck.clear()  # free the profiles before the DAG runs
    if "dag" not in skip:
        run.topics.append(names["dag_topic"])
        run.buckets.append(names["bucket"] + "-dag")
        run.stage(
            "dag",
            lambda: stages.stage_dag(
                csv_path,
                run.log_dir / "dag",
                topic=names["dag_topic"],
                bucket=names["bucket"] + "-dag",
                alias=names["dag_alias"],
                logical_date=DAG_LOGICAL_DATE,
            ),
        )


def daily(run: Run) -> None:
    from bench.daily import DailyScenario, build

    args = run.args
    scenario = DailyScenario(
        archive_days=args.archive_days,
        daily_events=args.daily_events,
        seed=args.seed,
        late_share=args.late_share,
        redelivered_share=args.redelivered_share,
    )
    prefix = f"bench_{run.name}"
    names = {
        "topic": f"{prefix}_daily",
        "bucket": bench_bucket(run.name),
        "alias": f"{prefix}_daily",
        "rerun_index": f"{prefix}_rerun",
    }
    run.topics.append(names["topic"])
    run.buckets.append(names["bucket"])
    say(
        f"daily run: {scenario.archive_days} days x {scenario.daily_events:,} events archived, then the drop of "
        f"{scenario.run_date} through the DAG; logs {shown(run.log_dir)}"
    )
    started = time.perf_counter()
    meta = build(scenario, data_dir() / "bench", progress=say)
    build_s = round(time.perf_counter() - started, 1)
    say(
        f"daily scenario {'cached' if meta['cached'] else 'built'} in {build_s}s: {meta['archive_events']:,} archived "
        f"events in {meta['archive_partitions']} partitions, drop of {meta['drop_rows']:,} rows"
    )
    run.result.update(
        {
            "scenario": "daily",
            "names": names,
            **{k: v for k, v in meta.items() if k not in ("cached",)},
            "archive_build_s": build_s,
            "archive_cached": meta["cached"],
            **dict.fromkeys(report.DAILY_HEADLINE_KEYS),
        }
    )
    scenario_dir = data_dir() / "bench" / scenario.name
    root = run.log_dir / "daily"
    setup = run.stage(
        "daily_archive",
        lambda: stages.stage_daily_archive(
            meta, scenario_dir, root, topic=names["topic"], bucket=names["bucket"], alias=names["alias"]
        ),
    )
    if setup:
        run.stage(
            "daily_previous",
            lambda: stages.stage_previous_snapshot(
                names["topic"], names["bucket"], names["alias"], scenario.run_date, root
            ),
        )
    out = run.stage("daily", lambda: stages.stage_daily(meta, scenario_dir, root, setup["_env"])) if setup else None
    if out:
        # What any Spark job costs here before it does any work: the floor under build_profiles.
        run.stage(
            "spark_floor",
            lambda: stages.stage_spark_floor(
                topic=names["topic"], offsets=out["_offsets"], expected=out["_offsets"]["expected"], log_dir=run.log_dir
            ),
        )
    if out and not args.skip_rerun:
        offsets = out["_offsets"]

        def rerun_job(tag: str, label: str, i: int, conf: dict[str, str]) -> dict[str, Any]:
            # a rerun of the drop's batch: the same input and the same archive every time
            return stages.stage_spark(
                topic=names["topic"],
                offsets=offsets,
                expected=offsets["expected"],
                bucket=names["bucket"],
                index=f"{names['rerun_index']}_{label}{i}",
                snapshot_date=offsets["snapshot_date"],
                run_date=scenario.run_date,
                batch_id=offsets["batch_id"],
                log_dir=run.log_dir,
                extra_conf=conf,
                name=f"{tag}-job",
            )

        reruns = spark_runs(run, "daily_rerun", rerun_job)
        rerun = reruns[0] if reruns else None
        if rerun:
            run.result.update(
                {
                    "daily_rerun_job_s": rerun["spark_job_s"],
                    "daily_rerun_stage_s": rerun["spark_stage_s"],
                    "daily_rerun_thread_cpu_s": rerun["spark_thread_cpu_s"],
                    "daily_rerun_startup_s": rerun["spark_startup_s"],
                    "daily_rerun_event_log": rerun.get("spark_event_log"),
                    "daily_rerun_counts": rerun["spark_counts"],
                }
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    waited = wait_for_quiet_machine(args.wait_for_load, args.wait_max_s) if args.wait_for_load else 0.0
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    run = Run(args, f"daily{args.archive_days}d-{stamp}" if args.daily else f"{args.events}-{stamp}")
    run.result["waited_for_load_s"] = waited
    try:
        daily(run) if args.daily else one_shot(run)
    finally:
        run.clean_up()
    return run.finish()
