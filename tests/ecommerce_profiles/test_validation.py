"""CSV validation: rules, quarantine, staging format, threshold, and the operator against MinIO.

tests/data/sample_events.csv has planted bad rows at known lines; tests/data/README.md lists
them, and EXPECTED_QUARANTINE below must match that table.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import uuid
from collections import Counter
from pathlib import Path

import pytest

from ecommerce_profiles.generator import BAD_ROW_VARIANTS, write_events_csv
from ecommerce_profiles.validation import (
    QUARANTINE_COLUMNS,
    RULES,
    HeaderError,
    RejectThresholdExceeded,
    check_reject_threshold,
    read_staged_messages,
    resolve_input,
    validate_files,
)
from ecommerce_profiles.schemas import EVENT_COLUMNS, EVENT_FIELDS, spark_schema

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample_events.csv"
HEADER = ",".join(EVENT_COLUMNS)
GOOD_ROW = "2020-09-24 11:57:06 UTC,view,1996170,2144415922528452715,electronics.telephone,,31.90,1515915625519388267,LJuJVLEjPT"

EXPECTED_QUARANTINE = {
    12: "column_count",
    28: "column_count",
    44: "required_field_missing",
    60: "required_field_missing",
    76: "required_field_missing",
    92: "event_time_format",
    108: "event_time_format",
    124: "event_type_domain",
    140: "product_id_integral",
    156: "category_id_integral",
    172: "user_id_integral",
    188: "price_decimal",
    204: "price_decimal",
    220: "duplicate_row",
    267: "duplicate_row",
}


def _validate(tmp_path: Path, *paths: Path):
    return validate_files(list(paths), tmp_path / "out" / "messages.tsv", tmp_path / "out" / "quarantine.csv")


def _csv_file(tmp_path: Path, *rows: str, name: str = "events.csv", header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _quarantine(result) -> list[dict[str, str]]:
    with open(result.quarantine_path, newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------
# The committed sample
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return _validate(tmp_path_factory.mktemp("sample"), SAMPLE)


def test_sample_counts_per_rule(sample):
    assert sample.rows_read == 316
    assert sample.rows_accepted == 301
    assert sample.rows_quarantined == 15
    assert sample.rows_read == sample.rows_accepted + sample.rows_quarantined
    assert sample.rejects_by_rule == {rule: Counter(EXPECTED_QUARANTINE.values())[rule] for rule in RULES}
    assert sample.rows_invalid == 13
    assert sample.min_event_date == "2020-10-01" and sample.max_event_date == "2020-10-03"
    assert sum(sample.events_by_date.values()) == sample.rows_accepted


def test_sample_quarantine_rows_keep_file_line_rule_detail_and_raw_line(sample):
    rows = _quarantine(sample)
    assert tuple(rows[0]) == QUARANTINE_COLUMNS
    assert {int(r["line_number"]): r["rule"] for r in rows} == EXPECTED_QUARANTINE
    source_lines = SAMPLE.read_text().splitlines()
    for r in rows:
        assert r["source_file"] == str(SAMPLE)
        assert r["raw_line"] == source_lines[int(r["line_number"]) - 1]
        assert r["detail"]
    details = {int(r["line_number"]): r["detail"] for r in rows}
    assert "user_id" in details[44] and "price" in details[60]
    assert "negative" in details[188] and "int64" in details[156]


def test_sample_report_examples_name_file_and_line(sample):
    report = sample.report(run_date="2020-10-03")
    json.dumps(report)  # JSON-serialisable
    assert report["run_date"] == "2020-10-03"
    assert report["distinct_event_dates"] == 3
    for rule, examples in report["examples"].items():
        assert examples and all(e["file"] == str(SAMPLE) and EXPECTED_QUARANTINE[e["line"]] == rule for e in examples)
    assert set(report["examples"]) == set(EXPECTED_QUARANTINE.values())


def test_staged_messages_round_trip_to_the_event_schema(sample):
    messages = list(read_staged_messages(sample.staging_path))
    assert len(messages) == sample.rows_accepted
    with open(SAMPLE, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        source = [row for number, row in enumerate(reader, 2) if number not in EXPECTED_QUARANTINE]
    assert len(source) == len(messages)
    types = {f.name: f for f in EVENT_FIELDS}
    for (key, value), row in zip(messages, source):
        event = json.loads(value)
        assert list(event) == list(EVENT_COLUMNS)
        assert key.decode() == str(event["user_id"])
        assert b": " not in value and b", " not in value.replace(b"samsung, inc.", b"")  # compact JSON
        for name, raw in zip(EVENT_COLUMNS, row):
            field = types[name]
            if field.type == "timestamp":
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event[name])
                assert event[name] == raw[:10] + "T" + raw[11:19] + "Z"
            elif field.type == "long":
                assert type(event[name]) is int and event[name] == int(raw)
            elif field.type == "double":
                assert isinstance(event[name], (int, float)) and event[name] == float(raw)
            elif raw == "":
                assert field.nullable and event[name] is None
            else:
                assert event[name] == raw
    quoted = [json.loads(v) for _, v in messages if b"samsung, inc." in v]
    assert len(quoted) == 1 and quoted[0]["category_code"] == "electronics.telephone"


def test_staged_values_parse_with_the_spark_event_schema(sample, spark):
    from pyspark.sql import functions as F

    values = [(v.decode(),) for _, v in read_staged_messages(sample.staging_path)]
    parsed = spark.createDataFrame(values, "value string").select(
        F.from_json("value", spark_schema(EVENT_FIELDS), {"mode": "FAILFAST"}).alias("e")).select("e.*")
    assert parsed.count() == sample.rows_accepted
    for field in EVENT_FIELDS:
        if not field.nullable:
            assert parsed.filter(F.col(field.name).isNull()).count() == 0, field.name
    first = parsed.orderBy("event_time").first()
    assert str(first["event_time"])[:10] == "2020-10-01"
    assert parsed.agg(F.max("user_id")).first()[0] > 2**53  # 19-digit ids survive as bigint


# ------------------------------------------------------------------------------------------
# Rules on small files
# ------------------------------------------------------------------------------------------
def _with(**changes: str) -> str:
    values = dict(zip(EVENT_COLUMNS, GOOD_ROW.split(",")))
    values.update(changes)
    return ",".join(values[c] for c in EVENT_COLUMNS)


@pytest.mark.parametrize(
    "row, rule",
    [
        (_with(event_time="2020-09-24 11:57:06"), "event_time_format"),
        (_with(event_time="2021-02-29 00:00:00 UTC"), "event_time_format"),  # 2021 is no leap year
        (_with(event_time="2020-09-24 24:00:00 UTC"), "event_time_format"),
        (_with(event_time="2020-9-24 11:57:06 UTC"), "event_time_format"),
        (_with(event_time="2020-09-24 11:57:06 CET"), "event_time_format"),
        (_with(event_type="remove"), "event_type_domain"),
        (_with(event_type="VIEW"), "event_type_domain"),
        (_with(product_id="1e5"), "product_id_integral"),
        (_with(product_id="٣٤"), "product_id_integral"),  # Unicode digits are not ASCII integers
        (_with(category_id="9223372036854775808"), "category_id_integral"),  # int64 max + 1
        (_with(user_id="-9223372036854775809"), "user_id_integral"),
        (_with(user_id="1.5"), "user_id_integral"),
        (_with(price="1e3"), "price_decimal"),
        (_with(price="inf"), "price_decimal"),
        (_with(price="+1.00"), "price_decimal"),
        (_with(price="1."), "price_decimal"),
        (_with(price="1,5"), "column_count"),
        (_with(event_type=""), "required_field_missing"),
        (_with(category_id=""), "required_field_missing"),
        (_with(event_time=""), "required_field_missing"),
        ('"2020-09-24 11:57:06 UTC,view', "column_count"),  # stray quote
        (GOOD_ROW + ",", "column_count"),
    ],
)
def test_rule(tmp_path, row, rule):
    result = _validate(tmp_path, _csv_file(tmp_path, GOOD_ROW, row))
    assert result.rows_read == 2 and result.rows_accepted == 1
    assert {r: n for r, n in result.rejects_by_rule.items() if n} == {rule: 1}
    assert _quarantine(result)[0]["line_number"] == "3"


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"category_code": "", "brand": "", "user_session": ""}, {"category_code": None, "brand": None, "user_session": None}),
        ({"price": "0.00"}, {"price": 0.0}),
        ({"price": "007.50"}, {"price": 7.5}),
        ({"price": "12"}, {"price": 12}),
        ({"product_id": "0042"}, {"product_id": 42}),
        ({"user_id": "9223372036854775807"}, {"user_id": 2**63 - 1}),
        ({"category_id": "-5"}, {"category_id": -5}),
        ({"brand": 'o"neil\\x'}, {"brand": 'o"neil\\x'}),
        ({"brand": "löwe", "user_session": "ab-cd"}, {"brand": "löwe", "user_session": "ab-cd"}),
        ({"event_type": "remove_from_cart", "event_time": "2020-02-29 23:59:59 UTC"},
         {"event_type": "remove_from_cart", "event_time": "2020-02-29T23:59:59Z"}),
    ],
)
def test_valid_edge_values_become_canonical_json(tmp_path, changes, expected):
    values = dict(zip(EVENT_COLUMNS, GOOD_ROW.split(",")))
    values.update(changes)
    buffer = io.StringIO()  # the csv module quotes values that contain quotes
    csv.writer(buffer, lineterminator="").writerow([values[c] for c in EVENT_COLUMNS])
    row = buffer.getvalue()
    result = _validate(tmp_path, _csv_file(tmp_path, row))
    assert result.rows_accepted == 1, _quarantine(result)
    [(key, value)] = list(read_staged_messages(result.staging_path))
    value.decode("ascii")  # staged messages are pure ASCII JSON
    event = json.loads(value)
    for name, want in expected.items():
        assert event[name] == want and type(event[name]) is type(want), name
    assert key.decode() == str(event["user_id"])


def test_blank_lines_are_not_rows_crlf_is_accepted_and_a_lone_cr_ends_nothing(tmp_path):
    path = tmp_path / "crlf.csv"
    rows = [GOOD_ROW, "", _with(price="1.00"), _with(brand="a\rb")]
    path.write_bytes((HEADER + "\r\n" + "\r\n".join(rows) + "\r\n").encode())
    result = _validate(tmp_path, path)
    assert (result.rows_read, result.rows_accepted, result.blank_lines) == (3, 3, 1)
    assert json.loads(list(read_staged_messages(result.staging_path))[-1][1])["brand"] == "a\rb"


def test_duplicates_across_files_of_a_run_keep_the_first(tmp_path):
    first = _csv_file(tmp_path, GOOD_ROW, name="a.csv")
    second = _csv_file(tmp_path, _with(price="2.00"), GOOD_ROW, GOOD_ROW, name="b.csv")
    result = _validate(tmp_path, *resolve_input(tmp_path / "*.csv"))
    assert result.files == [str(first), str(second)]
    assert (result.rows_read, result.rows_accepted, result.rejects_by_rule["duplicate_row"]) == (4, 2, 2)
    assert [(r["source_file"], r["line_number"]) for r in _quarantine(result)] == [(str(second), "3"), (str(second), "4")]


def test_resolve_input_accepts_a_file_or_glob_and_refuses_nothing(tmp_path):
    path = _csv_file(tmp_path, GOOD_ROW)
    assert resolve_input(path) == [path]
    assert resolve_input(str(tmp_path / "*.csv")) == [path]
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        resolve_input(tmp_path / "nothing.csv")


# ------------------------------------------------------------------------------------------
# File-level errors and the threshold
# ------------------------------------------------------------------------------------------
def test_bad_header_error_names_the_file_and_both_headers(tmp_path):
    wrong = "event_time,event_type,product,category_id,category_code,brand,price,user_id,user_session"
    path = _csv_file(tmp_path, GOOD_ROW, header=wrong)
    with pytest.raises(HeaderError) as err:
        _validate(tmp_path, path)
    message = str(err.value)
    assert str(path) in message and HEADER in message and wrong in message
    assert not (tmp_path / "out" / "messages.tsv").exists()  # no half-finished staging file


def test_empty_file_is_a_header_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(HeaderError, match="empty.csv"):
        _validate(tmp_path, path)


def test_header_with_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_text("\ufeff" + HEADER + "\n" + GOOD_ROW + "\n", encoding="utf-8")
    assert _validate(tmp_path, path).rows_accepted == 1


def test_threshold_fails_naming_file_rule_and_example_rows(sample):
    with pytest.raises(RejectThresholdExceeded) as err:
        check_reject_threshold(sample, 0.01)
    message = str(err.value)
    assert "13 of 316 rows" in message and str(SAMPLE) in message
    assert "column_count x2" in message and "line 12" in message and "price_decimal" in message
    assert "duplicate_row" not in message
    check_reject_threshold(sample, 0.05)  # 4.1 % invalid passes a 5 % threshold


def test_duplicates_do_not_count_towards_the_threshold(tmp_path):
    path = _csv_file(tmp_path, GOOD_ROW, *[GOOD_ROW] * 9)
    result = _validate(tmp_path, path)
    assert result.rejects_by_rule["duplicate_row"] == 9 and result.reject_fraction == 0
    check_reject_threshold(result, 0.0)


def test_generated_bad_rows_are_each_caught_by_their_rule(tmp_path):
    path = tmp_path / "gen.csv"
    summary = write_events_csv(path, 20_000, seed=21, bad_rows_per_rule=3)
    result = _validate(tmp_path, path)
    expected = {rule: 3 for rule in BAD_ROW_VARIANTS}
    expected["duplicate_row"] = summary["duplicates"]
    assert {r: n for r, n in result.rejects_by_rule.items() if n} == expected
    assert result.rows_accepted == summary["unique_events"]
    assert result.rows_read == summary["rows"]


# ------------------------------------------------------------------------------------------
# The operator, against the local MinIO
# ------------------------------------------------------------------------------------------
def _s3_client():
    import boto3

    return boto3.client(
        "s3", endpoint_url=os.environ["MINIO_ENDPOINT"], aws_access_key_id=os.environ["MINIO_ROOT_USER"],
        aws_secret_access_key=os.environ["MINIO_ROOT_PASSWORD"], region_name="us-east-1",
    )


@pytest.fixture
def bucket(stack):
    """A fresh bucket name; the operator creates it, the test run removes it."""
    name = f"test-validation-{uuid.uuid4().hex[:8]}"
    yield name
    s3 = _s3_client()
    try:
        for item in s3.list_objects_v2(Bucket=name).get("Contents", []):
            s3.delete_object(Bucket=name, Key=item["Key"])
        s3.delete_bucket(Bucket=name)
    except s3.exceptions.NoSuchBucket:
        pass


def _read_object(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_operator_publishes_quarantine_and_report_and_reruns_overwrite(bucket, tmp_path):
    from ecommerce_profiles.validation import ValidateEventsOperator

    s3 = _s3_client()
    operator = ValidateEventsOperator(
        task_id="validate", input_path=str(SAMPLE), run_date="2020-10-03", staging_dir=str(tmp_path / "staging"),
        bucket=bucket, max_reject_fraction=0.05,
    )
    out = operator.execute(context={})
    json.dumps(out)
    assert out["rows_read"] == 316 and out["rows_accepted"] == 301 and out["rows_quarantined"] == 15
    assert out["files"] == [str(SAMPLE)]
    assert out["min_event_date"] == "2020-10-01" and out["max_event_date"] == "2020-10-03"
    assert out["staging_path"] == str(tmp_path / "staging" / "messages.tsv")
    assert out["quarantine_uri"] == f"s3://{bucket}/quarantine/run_date=2020-10-03/quarantine.csv"
    assert out["report_uri"] == f"s3://{bucket}/quarantine/run_date=2020-10-03/validation_report.json"

    prefix = "quarantine/run_date=2020-10-03/"
    quarantine = list(csv.DictReader(_read_object(s3, bucket, prefix + "quarantine.csv").decode().splitlines()))
    assert {int(r["line_number"]): r["rule"] for r in quarantine} == EXPECTED_QUARANTINE
    report = json.loads(_read_object(s3, bucket, prefix + "validation_report.json"))
    assert report["status"] == "passed" and report["rows_quarantined"] == 15
    assert report["rejects_by_rule"] == out["rejects_by_rule"]

    # Rerun of the same date on a clean file: the same keys now hold the new result.
    clean = _csv_file(tmp_path, GOOD_ROW)
    operator.input_path = str(clean)
    again = operator.execute(context={})
    assert again["rows_quarantined"] == 0
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"])
    assert keys == [prefix + "quarantine.csv", prefix + "validation_report.json"]
    assert _read_object(s3, bucket, prefix + "quarantine.csv").decode().strip() == ",".join(QUARANTINE_COLUMNS)
    assert json.loads(_read_object(s3, bucket, prefix + "validation_report.json"))["rows_read"] == 1


def test_operator_over_threshold_uploads_the_report_then_fails(bucket, tmp_path):
    from airflow.exceptions import AirflowException

    from ecommerce_profiles.validation import ValidateEventsOperator

    operator = ValidateEventsOperator(
        task_id="validate", input_path=str(SAMPLE.parent / "sample_*.csv"), run_date="2020-10-03",
        staging_dir=str(tmp_path), bucket=bucket, max_reject_fraction="0.01",  # templated -> str
    )
    with pytest.raises(AirflowException) as err:
        operator.execute(context={})
    assert str(SAMPLE) in str(err.value) and "event_time_format" in str(err.value)
    report = json.loads(_read_object(_s3_client(), bucket, "quarantine/run_date=2020-10-03/validation_report.json"))
    assert report["status"] == "failed" and "13 of 316" in report["failure"]
