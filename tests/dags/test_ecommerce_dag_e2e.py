"""The DAG end to end on a one-shot file: `airflow dags test` against the real local stack, twice.

A file of one date is generated (with planted bad rows) inside the data directory and named by
the ``input_path`` param; the DAG runs with its own topic, bucket, alias and Airflow DB (so
other tests and demos cannot disturb the counts), and the test checks the outputs against values
it recomputes from the CSV itself. A second run of the same file must leave Elasticsearch and
the lake exactly as they were, and keep its own evidence beside the first run's.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest

from bench.generator import write_events_csv
from tests.support.pipeline import elasticsearch, make_pipeline, s3

RUN_DATE = "2020-11-17"
BAD_ROWS = [  # (line content, rule the validator must report)
    ("2020-11-17 10:00:00 UTC,click,1,2,,,1.00,1515915625519388267,abcdefghij", "event_type_domain"),
    ("2020-11-17 10:00:00 UTC,view,1,2,,,-5.00,1515915625519388267,abcdefghij", "price_decimal"),
    ("17/11/2020 10:00,view,1,2,,,1.00,1515915625519388267,abcdefghij", "event_time_format"),
    ("2020-11-17 10:00:00 UTC,view,1,2,,,1.00,15159156255x9388267,abcdefghij", "user_id_integral"),
    ("2020-11-17 10:00:00 UTC,view,1,2,,1.00,1515915625519388267,abcdefghij", "column_count"),
    # An ANSI colour and a BEL in brand: otherwise a valid event, which must not reach Kafka or Spark.
    (
        "2020-11-17 10:00:00 UTC,view,1,2,,\x1b[31mred\x1b[0m\x07,1.00,1515915625519388267,abcdefghij",
        "control_character",
    ),
]
CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # the validator's rule: not tab, LF, CR


COUNTERS = {"view": "views", "cart": "carts", "purchase": "purchases"}
INPUT = "exports/events-2020-11-17.csv"


def _expected_from_csv(path):
    """Recompute per-user facts from the CSV the simple way: valid rows, duplicates once."""
    seen, users = set(), defaultdict(lambda: {"views": 0, "carts": 0, "purchases": 0, "revenue": 0.0, "times": []})
    with open(path, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for row in reader:
            key = tuple(row)
            if len(row) != 9 or key in seen or row[1] not in {"view", "cart", "purchase", "remove_from_cart"}:
                continue
            if any(CONTROL_CHARACTER.search(value) for value in row):
                continue
            try:
                when = datetime.strptime(row[0], "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)
                user, price = int(row[7]), float(row[6])
            except ValueError:
                continue
            if price < 0:
                continue
            seen.add(key)
            u = users[user]
            counter = COUNTERS.get(row[1])
            if counter:
                u[counter] += 1
            if row[1] == "purchase":
                u["revenue"] += price
            u["times"].append(when)
    return users, len(seen)


def _lake_table(s3, bucket, prefix):
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
        if o["Key"].endswith(".parquet")
    ]
    tables = [pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=k)["Body"].read())) for k in keys]
    rows = [r for t in tables for r in t.to_pylist()]
    columns = tables[0].schema.names if tables else []
    return keys, rows, columns


def _es_docs(es, alias):
    es.indices.refresh(index=alias)
    hits = es.search(index=alias, size=10_000, sort=["user_id"], query={"match_all": {}})["hits"]["hits"]
    return [(h["_id"], h["_source"]) for h in hits]


@pytest.fixture(scope="module")
def dag_run(stack, tmp_path_factory):
    pipeline = make_pipeline(tmp_path_factory.mktemp("oneshot"), prefix="e2e")
    csv_path = pipeline.data_dir / INPUT
    csv_path.parent.mkdir(parents=True)
    write_events_csv(csv_path, 20_000, seed=7, start=RUN_DATE, end=RUN_DATE)
    with open(csv_path, "a") as f:
        for line, _rule in BAD_ROWS:
            f.write(line + "\n")

    def run_dag():
        return pipeline.dags_test(RUN_DATE, conf={"input_path": INPUT})

    yield {"env": pipeline.env, "csv": csv_path, "run": run_dag, "s3": s3(), "es": elasticsearch()}
    pipeline.remove()


@pytest.fixture(scope="module")
def first_run(dag_run):
    log = dag_run["run"]()
    return {"log": log}


def test_profiles_match_the_csv(dag_run, first_run):
    env, es = dag_run["env"], dag_run["es"]
    expected, valid_events = _expected_from_csv(dag_run["csv"])
    docs = dict(_es_docs(es, env["ELASTICSEARCH_INDEX"]))
    assert es.count(index=env["ELASTICSEARCH_INDEX"])["count"] == len(expected) == len(docs)

    # a handful of users, busiest first so the check covers multi-event profiles
    sample = sorted(expected, key=lambda u: (-len(expected[u]["times"]), u))[:3] + sorted(expected)[:2]
    for user in sample:
        doc, want = docs[str(user)], expected[user]
        assert doc["views"] == want["views"] and doc["carts"] == want["carts"]
        assert doc["purchases"] == want["purchases"]
        assert doc["revenue"] == pytest.approx(want["revenue"], rel=1e-9, abs=1e-9)
        assert doc["events"] == len(want["times"])
        assert doc["snapshot_date"] == RUN_DATE
        assert doc["recency_days"] == 0


def test_lake_holds_archive_and_snapshot(dag_run, first_run):
    env, s3 = dag_run["env"], dag_run["s3"]
    expected, valid_events = _expected_from_csv(dag_run["csv"])
    bucket = env["MINIO_BUCKET"]
    keys, rows, _ = _lake_table(s3, bucket, "raw/events/")
    assert keys and all(f"event_date={RUN_DATE}/batch=file-events-2020-11-17-" in k for k in keys)
    assert len(rows) == valid_events
    keys, rows, columns = _lake_table(s3, bucket, "profiles/")
    assert keys and all(f"snapshot_date={RUN_DATE}/" in k for k in keys)
    assert len(rows) == len(expected)
    from ecommerce_profiles.core.schemas import PROFILE_COLUMNS

    assert set(columns) | {"snapshot_date"} == set(PROFILE_COLUMNS)


def test_quarantine_holds_planted_rows_with_reasons(dag_run, first_run):
    env, s3 = dag_run["env"], dag_run["s3"]
    prefix = f"runs/run_date={RUN_DATE}/"
    objects = s3.list_objects_v2(Bucket=env["MINIO_BUCKET"], Prefix=prefix).get("Contents", [])
    names = {o["Key"].rsplit("/", 1)[1]: o["Key"] for o in objects}
    assert {"quarantine.csv", "validation_report.json", "spark_summary.json", "run_summary.json", "latest.json"} <= set(
        names
    )
    report = json.loads(s3.get_object(Bucket=env["MINIO_BUCKET"], Key=names["validation_report.json"])["Body"].read())
    assert report["rows_read"] == report["rows_accepted"] + report["rows_quarantined"]
    quarantine_keys = [k for n, k in names.items() if n.endswith(".csv")]
    assert quarantine_keys
    body = "".join(s3.get_object(Bucket=env["MINIO_BUCKET"], Key=k)["Body"].read().decode() for k in quarantine_keys)
    for _line, rule in BAD_ROWS:
        matching = [r for r in csv.DictReader(io.StringIO(body)) if r["rule"] == rule]
        assert matching, f"no quarantined row with rule {rule}"


def test_second_run_of_the_same_date_changes_nothing(dag_run, first_run):
    env, s3, es = dag_run["env"], dag_run["s3"], dag_run["es"]
    bucket, alias = env["MINIO_BUCKET"], env["ELASTICSEARCH_INDEX"]
    before = (_es_docs(es, alias), _lake_rows(s3, bucket))
    dag_run["run"]()
    after = (_es_docs(es, alias), _lake_rows(s3, bucket))
    assert after[0] == before[0]
    assert after[1] == before[1]
    indices = es.indices.get(index=f"{alias}-*")
    assert len(indices) == 1, f"a rerun must leave one index per date, found {sorted(indices)}"
    runs = {
        o["Key"].split("/")[2]
        for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"runs/run_date={RUN_DATE}/run=")["Contents"]
    }
    assert len(runs) == 2, f"each run keeps its own evidence: {runs}"
    assert not any((dag_run["csv"].parents[1] / "staging").rglob("*")), "staging left behind"


def _lake_rows(s3, bucket):
    out = {}
    for prefix in ("raw/events/", "profiles/"):
        _keys, rows, _ = _lake_table(s3, bucket, prefix)
        out[prefix] = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
    return out
