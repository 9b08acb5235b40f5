"""The benchmark harness on a tiny size: the JSON it writes is complete and its counts add up.

No timing is asserted (benchmarks are not tests); this only proves that `make bench` would run
its produce, baseline, DuckDB and Elasticsearch stages against the real stack and record them.
The Spark and DAG stages are skipped here: other tests run the job and the DAG themselves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

EVENTS = 3_000


@pytest.fixture(scope="module")
def bench_run(stack, project_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    results_dir = tmp / "results"
    env = {**os.environ, "PIPELINE_DATA_DIR": str(tmp / "data")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--events", str(EVENTS),
         "--skip-spark", "--skip-dag", "--no-docs", "--results-dir", str(results_dir)],
        env=env, cwd=project_root, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return {"tmp": tmp, "results_dir": results_dir, "stdout": proc.stdout,
            "result": json.loads((results_dir / f"{EVENTS}.json").read_text())}


def test_result_has_every_key_and_consistent_counts(bench_run):
    result = bench_run["result"]
    for key in ("events", "produce_events_per_s", "baseline_produce_events_per_s", "lost_events",
                "baseline_lost_events", "spark_job_s", "spark_startup_s", "duckdb_s", "es_docs_per_s",
                "dag_wall_s", "machine", "versions", "timestamp", "targets"):
        assert key in result, key
    assert result["spark_job_s"] is None and result["dag_wall_s"] is None  # skipped stages: null
    assert result["events"] == EVENTS
    assert result["skipped"] == ["dag", "spark"]
    assert "errors" not in result
    assert result["machine"]["cores"] >= 1 and result["machine"]["memory_gib"] > 0
    assert result["versions"]["SPARK_VERSION"] and result["versions"]["KAFKA_VERSION"]
    # every accepted row reached the topic, with the DAG's producer and with the baseline
    assert result["lost_events"] == 0
    assert result["produce_topic_messages"] == result["validation"]["rows_accepted"] > 0
    assert result["baseline_events"] == EVENTS and result["baseline_lost_events"] == 0
    assert result["baseline_acknowledged"] == EVENTS and result["baseline_failed"] == 0
    assert result["produce_events_per_s"] > 0 and result["baseline_produce_events_per_s"] > 0
    # the DuckDB reference's profiles were all bulk-indexed
    assert 0 < result["duckdb_profiles"] < EVENTS
    assert result["es_bulk_indexed"] == result["es_bulk_docs"] == result["duckdb_profiles"]
    assert result["es_bulk_failed"] == 0
    assert result["targets"]["lost_events"]["met"] is True


def test_latest_equals_the_size_file_and_summary_is_printed(bench_run):
    latest = json.loads((bench_run["results_dir"] / "latest.json").read_text())
    assert latest == bench_run["result"]
    assert f"Benchmark: {EVENTS:,} events" in bench_run["stdout"]


def test_cleanup_left_no_bench_topic(bench_run):
    from confluent_kafka.admin import AdminClient

    stamp = bench_run["result"]["logs"].rsplit("/", 1)[1]
    admin = AdminClient({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]})
    topics = admin.list_topics(timeout=10).topics
    assert not [t for t in topics if t.startswith(f"bench_{stamp}_")]


def test_plot_renders_table_and_png(bench_run, project_root):
    doc, png = bench_run["tmp"] / "benchmarks.md", bench_run["tmp"] / "benchmarks.png"
    doc.write_text("# Benchmarks\n\nhand-written intro\n")
    subprocess.run([sys.executable, str(project_root / "bench" / "plot.py"), "--results-dir",
                    str(bench_run["results_dir"]), "--doc", str(doc), "--png", str(png)], check=True)
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nhand-written intro\n")
    assert f"| {EVENTS:,} events |" in text and "produce rate" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
