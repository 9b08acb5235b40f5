"""Elasticsearch write A/B: the same cached profiles written into a fresh index per variant.

    python -m bench.es_write_ab --profiles s3a://BUCKET/profiles/snapshot_date=D --variants one_shard,two_shards --rounds 3
    python -m bench.es_write_ab --from-csv data/bench/events_1000000_seed42.csv --copies 20 ...

Issue 14 asks for Elasticsearch settings "derived from the input size" and measured. The job's
Elasticsearch stage is CPU-bound on a small machine, so one child driver (spark-submitted like
the job, with its jars and conf) caches the profiles once and writes them with the job's own
``for_elasticsearch`` and ``es_write_options`` into a fresh index per variant, alternating the
variants round by round so a change of machine speed hits them alike. One uncounted warm-up
write (300k rows) compiles the connector's code first. Per write: wall seconds, documents/s, the
Elasticsearch server's CPU seconds and GC milliseconds, and the index's statistics (indexing
time, merges, segments). ``--from-csv`` builds the profiles from an events CSV instead and, with
``--copies N``, repeats them N times with shifted user ids (unique documents of real shape: 20
copies of the 1M file's 459,680 profiles are a 20M run's 9.19M).

Variants (``VARIANTS``): index settings over ``schemas.es_mapping()`` and writer options over
``es_write_options``; ``null`` removes an option. Writes bench/results/es-write-ab.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__" and str(PROJECT_ROOT) not in sys.path:  # spark-submit runs this file as a script
    sys.path.insert(0, str(PROJECT_ROOT))
WARM_UP_ROWS = 300_000
ROW_PREFIX = "ES_WRITE_AB "
# name -> (index settings, writer options); the job's own are "as_job".
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "as_job": ({}, {}),
    "one_shard": ({"number_of_shards": 1}, {}),
    "two_shards": ({"number_of_shards": 2}, {}),
    "four_shards": ({"number_of_shards": 4}, {}),
    "few_merges": ({"index.merge.policy.segments_per_tier": 30, "index.merge.policy.max_merge_at_once": 30}, {}),
    "generated_ids": ({}, {"es.mapping.id": None}),
    "bulk_10k": ({}, {"es.batch.size.entries": "10000", "es.batch.size.bytes": "10mb"}),
}


def index_body(settings: dict[str, Any]) -> dict[str, Any]:
    from ecommerce_profiles.core.schemas import es_mapping

    body = es_mapping()
    body["settings"].update(settings)
    return body


def writer_options(es_url: str, index: str, overrides: dict[str, Any]) -> dict[str, str]:
    from spark_jobs.spark_conf import es_write_options

    merged = {**es_write_options(es_url, index), **overrides}
    return {key: value for key, value in merged.items() if value is not None}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--profiles", help="a profile snapshot (Parquet URI) to write")
    source.add_argument("--from-csv", type=Path, help="build the profiles from this events CSV")
    parser.add_argument("--copies", type=int, default=1, help="with --from-csv: repeat the profiles N times")
    parser.add_argument("--snapshot-date", default="2021-02-28", help="with --from-csv")
    parser.add_argument(
        "--variants", default="one_shard,two_shards", help=f"comma-separated, of: {', '.join(VARIANTS)}"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--results", type=Path, default=PROJECT_ROOT / "bench" / "results" / "es-write-ab.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {sorted(VARIANTS)}")
    if args.copies < 1 or args.rounds < 1:
        parser.error("--copies and --rounds must be at least 1")
    return args


def load_profiles(spark, args: argparse.Namespace):
    from pyspark.sql import functions as F

    from spark_jobs.profile_transforms import build_profiles, read_events_csv

    if args.profiles:
        return spark.read.parquet(args.profiles)
    profiles = build_profiles(read_events_csv(spark, str(args.from_csv.resolve())), args.snapshot_date)
    if args.copies == 1:
        return profiles
    # Unique ids above every real one (user ids are below 10^10 in the generated and Kaggle files).
    copies = spark.range(args.copies).withColumnRenamed("id", "copy")
    return (
        profiles.crossJoin(F.broadcast(copies))
        .withColumn("user_id", F.col("user_id") + F.col("copy") * 10_000_000_000)
        .drop("copy")
    )


def child(args: argparse.Namespace) -> None:
    """Inside spark-submit: cache the profiles, then write them once per variant and round."""
    from pyspark.sql import SparkSession

    from bench import services
    from bench.system import load_1m, server_cpu_seconds
    from ecommerce_profiles.connections import elasticsearch_settings_from_env
    from spark_jobs.profile_output import for_elasticsearch

    es = services.es()
    es_url = elasticsearch_settings_from_env().url  # as the job reaches it
    spark = SparkSession.builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    profiles = load_profiles(spark, args).coalesce(2).cache()
    documents = profiles.count()
    warm_up = profiles.limit(WARM_UP_ROWS).cache()
    warm_up.count()

    def gc_ms() -> int:
        node = next(iter(es.nodes.stats(metric="jvm")["nodes"].values()))
        return sum(c["collection_time_in_millis"] for c in node["jvm"]["gc"]["collectors"].values())

    def write(variant: str, round_no: int, frame) -> dict[str, Any]:
        settings, options = VARIANTS[variant]
        index = f"bench_es_write_ab_{variant}_{round_no + 1}_{int(time.time())}"
        es.indices.create(index=index, **index_body(settings))
        try:
            cpu0, gc0, load = server_cpu_seconds().get("elasticsearch", 0.0), gc_ms(), load_1m()
            started = time.perf_counter()
            for_elasticsearch(frame).write.format("es").options(**writer_options(es_url, index, options)).mode(
                "append"
            ).save()
            wall = time.perf_counter() - started
            cpu = server_cpu_seconds().get("elasticsearch", 0.0) - cpu0
            es.indices.refresh(index=index)
            stats = es.indices.stats(index=index)["_all"]["primaries"]
            count = es.count(index=index)["count"]
        finally:
            es.indices.delete(index=index)
        return {
            "variant": variant,
            "round": round_no + 1,
            "documents": count,
            "wall_s": round(wall, 2),
            "documents_per_s": round(count / wall),
            "es_cpu_s": round(cpu, 1),
            "es_gc_ms": gc_ms() - gc0,
            "indexing_ms": stats["indexing"]["index_time_in_millis"],
            "merges": stats["merges"]["total"],
            "merged_documents": stats["merges"]["total_docs"],
            "segments": stats["segments"]["count"],
            "load_1m_at_start": load,
        }

    rows = [{**write("as_job", -1, warm_up), "warm_up": True}]
    for round_no in range(args.rounds):
        for variant in args.variants.split(","):
            rows.append(write(variant, round_no, profiles))
            print(ROW_PREFIX + json.dumps(rows[-1]), flush=True)
    assert all(r["documents"] == documents for r in rows[1:]), "a write lost or doubled documents"
    print(ROW_PREFIX + json.dumps({"documents": documents}), flush=True)
    spark.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    from bench import stages
    from bench.system import code_version, load_1m, machine_info, say, versions

    log_dir = PROJECT_ROOT / ".stack" / "bench" / f"es-write-ab-{time.strftime('%Y%m%d%H%M%S')}"
    child_args = [*(argv if argv is not None else sys.argv[1:]), "--child"]
    say(f"es write A/B: {args.variants} x {args.rounds} rounds (log {log_dir})")
    load_at_start = load_1m()
    machine = machine_info()  # its speed probe before the writes, not after
    seconds, _, _ = stages.run_spark_job(child_args, log_dir, name="es-write-ab", application=Path(__file__))
    lines = [
        line[len(ROW_PREFIX) :]
        for line in (log_dir / "es-write-ab.log").read_text().splitlines()
        if line.startswith(ROW_PREFIX)
    ]
    *writes, total = [json.loads(line) for line in lines]
    result = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "versions": versions(),
        "code": code_version(),
        "load_avg_1m_start": load_at_start,
        "documents": total["documents"],
        "source": args.profiles or f"{args.from_csv} x {args.copies}",
        "wall_s": round(seconds, 1),
        "writes": writes,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=1) + "\n")
    for row in writes:
        say(
            f"{row['variant']:>14} round {row['round']}: {row['wall_s']:.1f} s, {row['documents_per_s']:,}/s, "
            f"Elasticsearch {row['es_cpu_s']} CPU-s, {row['segments']} segments"
        )
    say(f"results in {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
