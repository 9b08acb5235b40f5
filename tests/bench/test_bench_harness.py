"""The benchmark harness on a tiny size: the JSON it writes is complete and its counts add up.

No timing is asserted (benchmarks are not tests); this only proves that `make bench` would run
its produce, baseline, DuckDB and Elasticsearch stages against the real stack and record them,
each with its machine load and the "measured under load" mark.
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
        [
            sys.executable,
            "-m",
            "bench.run",
            "--events",
            str(EVENTS),
            "--skip-spark",
            "--skip-dag",
            "--no-docs",
            "--results-dir",
            str(results_dir),
        ],
        env=env,
        cwd=project_root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return {
        "tmp": tmp,
        "results_dir": results_dir,
        "stdout": proc.stdout,
        "result": json.loads((results_dir / f"{EVENTS}.json").read_text()),
    }


def test_result_has_every_key_and_consistent_counts(bench_run):
    result = bench_run["result"]
    for key in (
        "events",
        "produce_events_per_s",
        "baseline_produce_events_per_s",
        "lost_events",
        "baseline_lost_events",
        "spark_job_s",
        "spark_startup_s",
        "duckdb_s",
        "es_docs_per_s",
        "dag_wall_s",
        "machine",
        "versions",
        "timestamp",
        "targets",
        "load",
    ):
        assert key in result, key
    assert result["scenario"] == "one_shot"
    assert result["spark_job_s"] is None and result["dag_wall_s"] is None  # skipped stages: null
    assert result["events"] == EVENTS
    assert result["skipped"] == ["dag", "spark"]
    assert "errors" not in result
    assert result["machine"]["cores"] >= 1 and result["machine"]["memory_gib"] > 0
    probe = result["machine"]["speed_probe"]  # the machine's speed at the run, beside its load
    assert 0 < probe["best_s"] <= probe["median_s"] and probe["rounds"] == 3
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


def test_every_figure_records_the_load_and_the_under_load_mark(bench_run):
    """The run and each stage that ran carry their load; the mark follows the 1.5 rule."""
    result = bench_run["result"]
    load = result["load"]
    assert load["limit"] == 1.5
    assert load["start_1m"] == result["load_avg_1m_start"] >= 0
    assert load["under_load"] is (load["start_1m"] > 1.5)
    assert load["max_1m"] >= 0 and load["others_cores"] >= 0
    for stage in ("validate", "produce", "baseline", "duckdb", "es"):
        stage_load = result[f"{stage}_load"]
        assert set(stage_load) == {"start_1m", "end_1m", "max_1m", "others_cores", "under_load"}, stage
        assert stage_load["under_load"] is (stage_load["start_1m"] > 1.5), stage
        assert result[f"{stage}_cpu_s"] >= 0
    assert "spark_load" not in result and "dag_load" not in result  # skipped stages: no figures


def test_latest_equals_the_size_file_and_summary_is_printed(bench_run):
    latest = json.loads((bench_run["results_dir"] / "latest.json").read_text())
    assert latest == bench_run["result"]
    assert f"Benchmark: {EVENTS:,} events" in bench_run["stdout"]
    assert f"speed probe {latest['machine']['speed_probe']['best_s']:.2f} s best" in bench_run["stdout"]


def test_cleanup_left_no_bench_topic_or_index(bench_run):
    from confluent_kafka.admin import AdminClient

    from ecommerce_profiles.connections import elasticsearch_settings_from_env, kafka_config_from_env

    names = bench_run["result"]["names"]
    stamp = bench_run["result"]["logs"].rsplit("/", 1)[1]
    assert names["produce_topic"] == f"bench_{stamp}_produce" and names["bulk_index"] == f"bench_{stamp}_bulk"
    topics = AdminClient(kafka_config_from_env()).list_topics(timeout=10).topics
    assert not [t for t in topics if t.startswith(f"bench_{stamp}_")]
    es = elasticsearch_settings_from_env().client()
    assert not es.indices.get(index=f"bench_{stamp}_*", allow_no_indices=True, ignore_unavailable=True)


def test_report_renders_table_with_load_mark_and_png(bench_run, project_root):
    doc, png = bench_run["tmp"] / "benchmarks.md", bench_run["tmp"] / "benchmarks.png"
    doc.write_text("# Benchmarks\n\nhand-written intro\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.report",
            "--results-dir",
            str(bench_run["results_dir"]),
            "--doc",
            str(doc),
            "--png",
            str(png),
        ],
        check=True,
        cwd=project_root,
    )
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nhand-written intro\n")
    probe = bench_run["result"]["machine"]["speed_probe"]
    assert f"speed probe {probe['best_s']:.2f} s best / {probe['median_s']:.2f} s median of 3" in text
    mark = " ⚠" if bench_run["result"]["load"]["under_load"] else ""
    assert f"| {EVENTS:,} events{mark} |" in text and "produce rate" in text
    row = next(line for line in text.splitlines() if line.startswith("| measured under load"))
    assert row.endswith("| **yes** ⚠ |" if mark else "| no |")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_speed_probe_does_the_same_work_every_time_and_reports_best_and_median():
    from bench.report import speed_text
    from bench.system import probe_work, speed_probe

    assert probe_work() == probe_work()  # a fixed amount of work: the times are comparable
    probe = speed_probe(rounds=2)
    assert probe["rounds"] == 2 and 0 < probe["best_s"] <= probe["median_s"]
    assert speed_text({"speed_probe": probe}).startswith(f"speed probe {probe['best_s']:.2f} s best")
    assert speed_text({"cores": 2}) == ""  # results from before the probe render as they did
