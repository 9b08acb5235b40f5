"""CSV validation: rules, quarantine, staging format, threshold, hostile input, the operator.

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
from datetime import UTC
from pathlib import Path

import pytest

from bench.generator import BAD_ROW_VARIANTS, write_events_csv
from ecommerce_profiles.core import validation
from ecommerce_profiles.core.schemas import EVENT_COLUMNS, EVENT_FIELDS
from ecommerce_profiles.core.validation import (
    _DIGEST,
    MAX_FIELD_BYTES,
    MAX_LINE_CHARS,
    QUARANTINE_COLUMNS,
    RULES,
    FileFormatError,
    HeaderError,
    RejectThresholdExceeded,
    _DigestSet,
    check_reject_threshold,
    read_staged_messages,
    resolve_input,
    validate_files,
)
from spark_jobs.spark_types import spark_schema

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


def _validate(tmp_path: Path, *paths: Path, **options):
    result = validate_files(
        list(paths), tmp_path / "out" / "messages.tsv", tmp_path / "out" / "quarantine.csv", **options
    )
    assert result.rows_read == result.rows_accepted + result.rows_quarantined
    return result


def _csv_file(tmp_path: Path, *rows: str, name: str = "events.csv", header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _quarantine(result) -> list[dict[str, str]]:
    csv.field_size_limit(16 * 1024 * 1024)  # raw_line keeps lines up to the validator's 2 MiB line limit
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
    parsed = (
        spark.createDataFrame(values, "value string")
        .select(F.from_json("value", spark_schema(EVENT_FIELDS), {"mode": "FAILFAST"}).alias("e"))
        .select("e.*")
    )
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
        (
            {"category_code": "", "brand": "", "user_session": ""},
            {"category_code": None, "brand": None, "user_session": None},
        ),
        ({"price": "0.00"}, {"price": 0.0}),
        ({"price": "007.50"}, {"price": 7.5}),
        ({"price": "12"}, {"price": 12}),
        ({"product_id": "0042"}, {"product_id": 42}),
        ({"user_id": "9223372036854775807"}, {"user_id": 2**63 - 1}),
        ({"category_id": "-5"}, {"category_id": -5}),
        ({"brand": 'o"neil\\x'}, {"brand": 'o"neil\\x'}),
        ({"brand": "löwe", "user_session": "ab-cd"}, {"brand": "löwe", "user_session": "ab-cd"}),
        (
            {"event_type": "remove_from_cart", "event_time": "2020-02-29 23:59:59 UTC"},
            {"event_type": "remove_from_cart", "event_time": "2020-02-29T23:59:59Z"},
        ),
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
    assert [(r["source_file"], r["line_number"]) for r in _quarantine(result)] == [
        (str(second), "3"),
        (str(second), "4"),
    ]


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
# Hostile input: limits of what downstream can store (docs/hostile-input.md)
# ------------------------------------------------------------------------------------------
def _rules(result) -> dict[str, int]:
    return {r: n for r, n in result.rejects_by_rule.items() if n}


def _bytes_file(tmp_path: Path, *rows: bytes, name: str = "events.csv", eol: bytes = b"\n") -> Path:
    path = tmp_path / name
    path.write_bytes(eol.join([HEADER.encode(), *rows]) + eol)
    return path


def _one_rejected(tmp_path: Path, row: str, rule: str, **options) -> dict[str, str]:
    """GOOD_ROW then ``row``: exactly one row accepted, ``row`` quarantined by ``rule``."""
    result = _validate(tmp_path, _csv_file(tmp_path, GOOD_ROW, row), **options)
    assert (result.rows_read, result.rows_accepted) == (2, 1)
    assert _rules(result) == {rule: 1}
    [quarantined] = _quarantine(result)
    assert quarantined["line_number"] == "3" and quarantined["rule"] == rule
    return quarantined


def _in_days(days: int) -> str:
    from datetime import datetime, timedelta

    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S UTC")


@pytest.mark.parametrize(
    "event_time",
    [
        "1969-12-31 23:59:59 UTC",  # pre-1970
        "1899-12-31 00:00:00 UTC",  # Spark's archive write threw SparkUpgradeException on these
        "0001-01-01 00:00:00 UTC",
        "9999-12-31 23:59:59 UTC",  # would pin the profile alias forever
        "2099-01-01 00:00:00 UTC",
    ],
)
def test_event_time_range_quarantines_ancient_and_future_times(tmp_path, event_time):
    row = _one_rejected(tmp_path, _with(event_time=event_time), "event_time_range")
    assert event_time in row["detail"] and "1970-01-01 00:00:00 UTC" in row["detail"]


def test_event_time_range_default_is_now_plus_one_day(tmp_path):
    rows = [_with(event_time=_in_days(0)), _with(event_time=_in_days(2)), _with(event_time="1970-01-01 00:00:00 UTC")]
    result = _validate(tmp_path, _csv_file(tmp_path, *rows))
    assert (result.rows_accepted, _rules(result)) == (2, {"event_time_range": 1})
    assert _quarantine(result)[0]["line_number"] == "3"  # tomorrow + 1 day
    assert result.report()["limits"]["max_event_time"] == result.limits["max_event_time"]


def test_event_time_range_max_event_time_is_configurable(tmp_path):
    from datetime import date, datetime

    rows = [
        _with(event_time="2020-10-01 00:00:00 UTC"),
        _with(event_time="2020-10-01 00:00:01 UTC"),
        _with(event_time="2020-10-02 00:00:00 UTC"),
    ]
    path = _csv_file(tmp_path, *rows)
    for bound, accepted in [
        (datetime(2020, 10, 1), 1),  # naive = UTC
        (datetime(2020, 10, 1, 2, 0, 1, tzinfo=UTC).astimezone().replace(microsecond=0), 2),
        ("2020-10-01T00:00:01Z", 2),
        (date(2020, 10, 1), 2),  # a date: through its end
        ("2020-10-02 00:00:00 UTC", 3),
    ]:
        result = _validate(tmp_path, path, max_event_time=bound)
        assert (result.rows_accepted, result.rejects_by_rule["event_time_range"]) == (accepted, 3 - accepted), bound
    with pytest.raises(ValueError, match="before 1970"):
        _validate(tmp_path, path, max_event_time=datetime(1969, 1, 1))


@pytest.mark.parametrize(
    "price, why",
    [
        ("10000000000000000", "1e16"),
        ("10000000000000000.00", "1e16"),
        ("99999999999999999999999999", "1e16"),
        ("1.234", "more than 2 decimals"),
        ("0.001", "more than 2 decimals"),
        ("9999999999999999.99", "double"),  # < 1e16, but the double it travels as is 1e16
        ("99999999999999.99", "double"),  # 16 significant digits: the double is 99999999999999.98
    ],
)
def test_price_range_quarantines_what_decimal_18_2_cannot_hold(tmp_path, price, why):
    assert why in _one_rejected(tmp_path, _with(price=price), "price_range")["detail"]


@pytest.mark.parametrize(
    "price, staged",
    [
        ("9999999999999", 9999999999999),
        ("1234567890123.45", 1234567890123.45),
        ("1.230", 1.23),
        ("0000000000000000001.50", 1.5),
        ("1234567890123456", 1234567890123456),
    ],
)
def test_price_range_keeps_prices_that_fit(tmp_path, price, staged):
    result = _validate(tmp_path, _csv_file(tmp_path, _with(price=price)))
    assert result.rows_accepted == 1, _quarantine(result)
    assert json.loads(next(read_staged_messages(result.staging_path))[1])["price"] == staged


def test_price_rule_order_sign_and_exponent_stay_price_decimal(tmp_path):
    result = _validate(tmp_path, _csv_file(tmp_path, _with(price="-1e17"), _with(price="1e16"), _with(price="1e-3")))
    assert _rules(result) == {"price_decimal": 3}


def test_field_too_long_quarantines_a_40_kb_brand(tmp_path):
    row = _one_rejected(tmp_path, _with(brand="b" * 40_000), "field_too_long")
    assert "brand is 40,000 bytes" in row["detail"] and row["raw_line"] == _with(brand="b" * 40_000)


def test_field_too_long_counts_utf8_bytes_not_characters(tmp_path):
    fits, over = "€" * (MAX_FIELD_BYTES // 3), "€" * (MAX_FIELD_BYTES // 3 + 1)  # 3 bytes each
    result = _validate(tmp_path, _csv_file(tmp_path, _with(brand=fits), _with(category_code=over)))
    assert (result.rows_accepted, _rules(result)) == (1, {"field_too_long": 1})
    assert "category_code is 32,769 bytes" in _quarantine(result)[0]["detail"]
    assert _validate(tmp_path, _csv_file(tmp_path, _with(user_session="s" * MAX_FIELD_BYTES))).rows_accepted == 1


def test_field_too_long_quarantines_a_1_1_mb_field_quoted_or_not(tmp_path):
    big = "x" * 1_100_000
    result = _validate(tmp_path, _csv_file(tmp_path, GOOD_ROW, _with(brand=big), _with(brand=f'"{big}"'), GOOD_ROW))
    assert (result.rows_read, result.rows_accepted, _rules(result)) == (4, 1, {"field_too_long": 2, "duplicate_row": 1})
    assert [r["line_number"] for r in _quarantine(result)] == ["3", "4", "5"]


def test_message_too_large_uses_max_message_bytes(tmp_path):
    row = _one_rejected(tmp_path, _with(brand="b" * 1900), "message_too_large", max_message_bytes=2000)
    assert "max_message_bytes=2,000" in row["detail"]
    assert _validate(tmp_path, _csv_file(tmp_path, _with(brand="b" * 1500)), max_message_bytes=2000).rows_accepted == 1


def test_message_too_large_counts_json_escapes(tmp_path):
    # 600 "é" are 1,200 bytes of CSV but 3,600 bytes of JSON (\u00e9 each).
    row = _with(brand="é" * 600)
    result = _validate(tmp_path, _csv_file(tmp_path, row), max_message_bytes=3000)
    assert _rules(result) == {"message_too_large": 1}
    assert _validate(tmp_path, _csv_file(tmp_path, row), max_message_bytes=4000).rows_accepted == 1


# Control characters: C0 but tab/LF/CR, DEL, C1. ESC[31m is an ANSI colour, U+009B the C1 CSI.
CONTROL_SAMPLES = ("\x00", "\x07", "\x1b[31m", "\x7f", "\x85", "\x9b")


def _control_in(column: str, control: str) -> str:
    """GOOD_ROW with ``control`` inside ``column``'s value (a brand where GOOD_ROW has none)."""
    value = dict(zip(EVENT_COLUMNS, GOOD_ROW.split(",")))[column] or "samsung"
    return _with(**{column: value[:3] + control + value[3:]})


def test_a_control_character_in_any_column_is_quarantined_under_its_own_rule(tmp_path):
    rows = [_control_in(column, control) for column in EVENT_COLUMNS for control in CONTROL_SAMPLES]
    result = _validate(tmp_path, _csv_file(tmp_path, GOOD_ROW, *rows))
    assert (result.rows_read, result.rows_accepted, _rules(result)) == (
        1 + len(rows),
        1,
        {"control_character": len(rows)},
    )
    quarantined = _quarantine(result)
    for row, (column, control) in zip(quarantined, [(c, x) for c in EVENT_COLUMNS for x in CONTROL_SAMPLES]):
        assert row["rule"] == "control_character"
        assert row["detail"].startswith(f"{column} holds the control character U+{ord(control[0]):04X} ")
        assert row["detail"].endswith("at character 4")
        # shown safely: the character as \xNN text, the line otherwise as it was
        assert row["raw_line"] == _control_in(column, f"\\x{ord(control[0]):02x}" + control[1:])
    staged = [json.loads(value) for _, value in read_staged_messages(result.staging_path)]
    assert len(staged) == 1  # only GOOD_ROW goes on to Kafka


def test_control_characters_never_reach_the_quarantine_file_or_the_report_raw(tmp_path):
    row = _with(brand="\x1b[31mred\x1b[0m\x07", user_session="a\x00b")
    result = _validate(tmp_path, _csv_file(tmp_path, row))
    [quarantined] = _quarantine(result)
    assert quarantined["detail"] == "brand holds the control character U+001B (ESC) at character 1"
    assert quarantined["raw_line"] == row.replace("\x1b", "\\x1b").replace("\x07", "\\x07").replace("\x00", "\\x00")
    written = Path(result.quarantine_path).read_bytes()
    assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\xc2[\x80-\x9f]", written)
    report = json.dumps(result.report(), ensure_ascii=False)
    assert "\x1b" not in report and "\\\\x1b[31m" in report
    problem = validation.reject_threshold_problem(result, 0.0)
    assert problem and "\x1b" not in problem and "\x07" not in problem


def test_control_character_comes_before_the_value_rules(tmp_path):
    for row in (
        _with(product_id="", brand="a\x07"),  # also required_field_missing
        _with(event_type="click\x1b[0m"),  # also event_type_domain
        _with(user_id="1\x00", price="-1"),  # also user_id_integral, price_decimal
    ):
        assert _one_rejected(tmp_path, row, "control_character")


def test_a_control_character_in_an_invalid_utf8_or_short_row_keeps_those_rules(tmp_path):
    path = _bytes_file(tmp_path, _with(brand="\x1b").encode().replace(b"\x1b", b"\x1b\xff"), b"a\x00,b")
    result = _validate(tmp_path, path)
    assert _rules(result) == {"invalid_utf8": 1, "column_count": 1}
    assert [r["raw_line"] for r in _quarantine(result)] == [_with(brand="\\x1b\\xff"), "a\\x00,b"]


def test_tab_newlines_and_printable_unicode_are_not_control_characters(tmp_path):
    values = ["a\tb", '"first\nsecond"', '"a\r\nb"', "caf\u00e9", "no\u00a0break", "\u20ac\u200b", "\U0001f600"]
    rows = [_with(brand=value, user_session=f"s{i}") for i, value in enumerate(values)]
    result = _validate(tmp_path, _csv_file(tmp_path, *rows, _with(brand="tab\tand\x1b", user_session="x")))
    assert (result.rows_accepted, _rules(result)) == (len(values), {"control_character": 1})
    brands = [json.loads(value)["brand"] for _, value in read_staged_messages(result.staging_path)]
    assert brands == [v.strip('"') for v in values]
    assert _quarantine(result)[0]["detail"] == "brand holds the control character U+001B (ESC) at character 8"


def test_a_line_over_the_line_limit_is_quarantined_truncated_and_reading_goes_on(tmp_path):
    huge = _with(brand="h" * (MAX_LINE_CHARS + 10))
    result = _validate(tmp_path, _csv_file(tmp_path, GOOD_ROW, huge, _with(price="2.00")))
    assert (result.rows_read, result.rows_accepted, _rules(result)) == (3, 2, {"message_too_large": 1})
    [row] = _quarantine(result)
    assert row["line_number"] == "3" and f"{len(huge):,} characters" in row["detail"]
    assert len(row["raw_line"]) < 70_000 and row["raw_line"].startswith(huge[:1000]) and "truncated" in row["raw_line"]


def test_a_line_with_no_newline_for_many_megabytes_stays_bounded(tmp_path):
    path = tmp_path / "endless.csv"
    with open(path, "w") as f:
        f.write(HEADER + "\n" + GOOD_ROW + "\n")
        for _ in range(8):
            f.write("z" * 1_000_000)
        f.write("\n" + _with(price="3.00") + "\n")
    result = _validate(tmp_path, path)
    assert (result.rows_read, result.rows_accepted, _rules(result)) == (3, 2, {"message_too_large": 1})
    assert "8,000,000 characters" in _quarantine(result)[0]["detail"]


@pytest.mark.parametrize(
    "bad",
    [
        b"\xff",  # never valid
        b"caf\xc3",  # a lead byte without its continuation
        b"\xed\xa0\x80",  # an encoded surrogate
        b"\xc0\xaf",  # an overlong encoding of "/"
    ],
)
def test_invalid_utf8_is_quarantined_unaltered(tmp_path, bad):
    raw = _with(brand="BRAND").encode().replace(b"BRAND", bad)
    result = _validate(tmp_path, _bytes_file(tmp_path, GOOD_ROW.encode(), raw, _with(brand="löwe").encode()))
    assert (result.rows_read, result.rows_accepted, _rules(result)) == (3, 2, {"invalid_utf8": 1})
    quarantine_bytes = Path(result.quarantine_path).read_bytes()
    quarantine_bytes.decode("utf-8")  # the quarantine CSV itself is valid UTF-8
    [row] = _quarantine(result)
    assert row["line_number"] == "3" and "not UTF-8" in row["detail"]
    # the invalid bytes are shown as \xNN, the rest as it was: nothing altered silently
    assert row["raw_line"] == raw.decode("utf-8", "backslashreplace") and "\\x" in row["raw_line"]
    staged = Path(result.staging_path).read_bytes()
    assert bad not in staged and "löwe" in json.loads(list(read_staged_messages(result.staging_path))[1][1])["brand"]
    json.dumps(result.report())


def test_quoted_newline_is_one_record(tmp_path):
    multi = _with(brand='"first line\nsecond line"')
    result = _validate(tmp_path, _csv_file(tmp_path, GOOD_ROW, multi, _with(price="1e3"), _with(price="2.00")))
    assert (result.rows_read, result.rows_accepted, _rules(result)) == (4, 3, {"price_decimal": 1})
    assert _quarantine(result)[0]["line_number"] == "5"  # the record on lines 3-4 counts one row
    brands = [json.loads(v)["brand"] for _, v in read_staged_messages(result.staging_path)]
    assert brands[1] == "first line\nsecond line"


def test_quoted_newlines_in_a_crlf_file_and_duplicate_records(tmp_path):
    multi = _with(brand='"a\r\nb"').encode()
    result = _validate(tmp_path, _bytes_file(tmp_path, multi, GOOD_ROW.encode(), multi, eol=b"\r\n"))
    assert (result.rows_read, result.rows_accepted, _rules(result)) == (3, 2, {"duplicate_row": 1})
    assert _quarantine(result)[0]["line_number"] == "5"
    assert json.loads(next(read_staged_messages(result.staging_path))[1])["brand"] == "a\r\nb"


def test_an_unclosed_quote_quarantines_only_its_line(tmp_path):
    # A stray quote at a field start would swallow the rest of the file as one field.
    stray = _with(brand='"unclosed')
    result = _validate(tmp_path, _csv_file(tmp_path, GOOD_ROW, stray, _with(price="2.00"), _with(price="3.00")))
    assert (result.rows_read, result.rows_accepted, _rules(result)) == (4, 3, {"column_count": 1})
    [row] = _quarantine(result)
    assert row["line_number"] == "3" and "not closed before the end of the file" in row["detail"]


def test_an_unclosed_quote_stops_at_max_message_bytes(tmp_path):
    rows = [_with(price=f"{i}.00") for i in range(1, 40)]  # ~ 4,700 characters
    result = _validate(
        tmp_path, _csv_file(tmp_path, _with(brand='"open'), *rows, _with(brand='x"')), max_message_bytes=1024
    )
    assert (result.rows_read, result.rows_accepted, _rules(result)) == (41, 40, {"column_count": 1})
    assert "within 1,024 characters" in _quarantine(result)[0]["detail"]


def test_cr_only_file_fails_with_a_clear_error(tmp_path):
    path = _bytes_file(tmp_path, GOOD_ROW.encode(), _with(price="2.00").encode(), eol=b"\r")
    with pytest.raises(FileFormatError) as err:
        _validate(tmp_path, path)
    message = str(err.value)
    assert isinstance(err.value, HeaderError) and str(path) in message and "bare CR" in message
    assert "LJuJVLEjPT" not in message  # no row content
    assert not (tmp_path / "out" / "messages.tsv").exists()


def test_bom_and_crlf_header(tmp_path):
    path = _bytes_file(tmp_path, GOOD_ROW.encode(), eol=b"\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert _validate(tmp_path, path).rows_accepted == 1


def test_csv_gz_is_read_like_the_plain_file(tmp_path):
    import gzip

    plain = SAMPLE.read_bytes()
    for name in ("sample.csv.gz", "SAMPLE.CSV.GZ"):
        path = tmp_path / name
        path.write_bytes(gzip.compress(plain))
        result = _validate(tmp_path, path)
        assert (result.rows_read, result.rows_accepted, result.rows_quarantined) == (316, 301, 15)
        assert result.files == [str(path)]
        assert {int(r["line_number"]): r["rule"] for r in _quarantine(result)} == EXPECTED_QUARANTINE


def test_upper_case_csv_name_is_plain_csv(tmp_path):
    assert _validate(tmp_path, _csv_file(tmp_path, GOOD_ROW, name="EVENTS.CSV")).rows_accepted == 1


@pytest.mark.parametrize("content", [b"not gzip at all, " + b"SECRET=" * 10, None])
def test_corrupt_gz_fails_naming_the_file_not_its_bytes(tmp_path, content):
    import gzip

    path = tmp_path / "events.csv.gz"
    if content is None:  # a truncated gzip stream
        content = gzip.compress((HEADER + "\n" + (GOOD_ROW + "\n") * 1000).encode())[:-200]
    path.write_bytes(content)
    with pytest.raises(FileFormatError, match="not a readable gzip file") as err:
        _validate(tmp_path, path)
    assert str(path) in str(err.value) and "SECRET" not in str(err.value) and "not gzip" not in str(err.value)


SECRET = "wJalrXUtnFEMI-planted-secret-K7MDENG"


@pytest.mark.parametrize(
    "first_line",
    [
        f"AWS_SECRET_ACCESS_KEY={SECRET}".encode(),
        f"PATH=/usr/bin\x00MINIO_ROOT_PASSWORD={SECRET}\x00HOME=/root\x00".encode(),  # /proc/self/environ
        f"root:x:0:0:{SECRET}:/root:/bin/bash".encode(),  # /etc/passwd
        SECRET.encode(),  # one identifier-like token
        f"{SECRET},password".encode(),  # a list of names, none of them a column
        f"event_time,{SECRET}=1".encode(),  # a column name and something that is not a name
        f"event_time,{SECRET}\xff".encode("latin-1"),
    ],
)
def test_header_error_never_echoes_the_content_of_an_unaccepted_file(tmp_path, first_line):
    path = tmp_path / "planted.csv"
    path.write_bytes(first_line + b"\n" + f"second line {SECRET}".encode() + b"\n")
    with pytest.raises(HeaderError) as err:
        _validate(tmp_path, path)
    message = str(err.value)
    assert SECRET not in message and "planted-secret" not in message and "MINIO" not in message
    assert str(path) in message and f"({len(first_line):,} bytes" in message and HEADER in message


def test_proc_self_environ_itself_gives_no_content(tmp_path):
    environ = Path("/proc/self/environ")
    with pytest.raises(HeaderError) as err:
        _validate(tmp_path, environ)
    values = [v for v in os.environ.values() if len(v) >= 8]
    assert "not a CSV header" in str(err.value) and not any(v in str(err.value) for v in values)


def test_header_error_for_a_first_line_without_newline(tmp_path):
    path = tmp_path / "blob.csv"
    path.write_bytes(b"A" * 200_000)
    with pytest.raises(HeaderError, match=r"more than 65,536 bytes; its content is not shown") as err:
        _validate(tmp_path, path)
    assert "AAAA" not in str(err.value)


def test_header_error_names_missing_unexpected_and_reordered_columns(tmp_path):
    columns = list(EVENT_COLUMNS)
    reordered = ",".join(columns[1:] + columns[:1])
    with pytest.raises(HeaderError, match="same names in another order"):
        _validate(tmp_path, _csv_file(tmp_path, GOOD_ROW, header=reordered))
    with pytest.raises(HeaderError, match="missing user_session; unexpected session_id"):
        _validate(tmp_path, _csv_file(tmp_path, GOOD_ROW, header=HEADER.replace("user_session", "session_id")))


def test_huge_integers_are_integral_rejects_not_crashes(tmp_path):
    # int() of > 4300 digits raises ValueError in Python 3.11: never reach it
    _one_rejected(tmp_path, _with(product_id="9" * 5000), "product_id_integral")
    _one_rejected(tmp_path, _with(user_id="-" + "1" * 5000), "user_id_integral")


def test_every_rule_at_once_exact_counts_per_rule(tmp_path):
    rows = [
        GOOD_ROW.encode(),  # 2 accepted
        _with(brand="X").encode().replace(b"X", b"\xff"),  # 3 invalid_utf8
        _with(price="1,5").encode(),  # 4 column_count
        _with(brand="b" * 40_000).encode(),  # 5 field_too_long
        _with(user_id="").encode(),  # 6 required_field_missing
        _with(event_time="2020-09-24T11:57:06Z").encode(),  # 7 event_time_format
        _with(event_time="1900-01-01 00:00:00 UTC").encode(),  # 8 event_time_range
        _with(event_time="9999-12-31 23:59:59 UTC").encode(),  # 9 event_time_range
        _with(event_type="click").encode(),  # 10 event_type_domain
        _with(product_id="p1").encode(),  # 11 product_id_integral
        _with(category_id="1.5").encode(),  # 12 category_id_integral
        _with(user_id="9" * 20).encode(),  # 13 user_id_integral
        _with(price="NaN").encode(),  # 14 price_decimal
        _with(price="10000000000000000").encode(),  # 15 price_range
        _with(price="1.999").encode(),  # 16 price_range
        _with(brand="m" * (MAX_LINE_CHARS + 1)).encode(),  # 17 message_too_large
        GOOD_ROW.encode(),  # 18 duplicate_row
        _with(brand='"multi\nline"').encode(),  # 19-20 accepted
        _with(price="5.00").encode(),  # 21 accepted
    ]
    result = _validate(tmp_path, _bytes_file(tmp_path, *rows))
    assert result.rows_read == 19 and result.rows_accepted == 3 and result.rows_quarantined == 16
    assert result.rejects_by_rule == {rule: 0 for rule in RULES} | {
        "invalid_utf8": 1,
        "column_count": 1,
        "field_too_long": 1,
        "required_field_missing": 1,
        "event_time_format": 1,
        "event_time_range": 2,
        "event_type_domain": 1,
        "product_id_integral": 1,
        "category_id_integral": 1,
        "user_id_integral": 1,
        "price_decimal": 1,
        "price_range": 2,
        "message_too_large": 1,
        "duplicate_row": 1,
    }
    assert [int(r["line_number"]) for r in _quarantine(result)] == list(range(3, 19))
    assert result.rows_invalid == 15
    report = result.report()
    assert all(len(e["raw_line"]) <= 2_100 for examples in report["examples"].values() for e in examples)
    json.dumps(report)


# ------------------------------------------------------------------------------------------
# Duplicate detection in bounded memory
# ------------------------------------------------------------------------------------------
def _digests(*pairs: tuple[int, int]):
    import numpy as np

    return np.array(list(pairs), dtype=_DIGEST)


def test_digest_set_within_and_across_batches():
    seen = _DigestSet(expected=10)
    assert seen.add_batch(_digests((1, 1), (2, 1), (1, 1), (1, 3), (1, 1))).tolist() == [
        False,
        False,
        True,
        False,
        True,
    ]
    assert seen.add_batch(_digests((2, 1), (5, 5), (1, 3), (5, 5))).tolist() == [True, False, True, True]
    assert len(seen) == 4


def test_digest_set_grows_and_keeps_what_it_holds():
    import numpy as np

    rng = np.random.default_rng(3)
    keys = rng.integers(1, 2**63, (50_000, 2), dtype=np.uint64).view(_DIGEST).ravel()
    keys["lo"] |= np.uint64(1)
    seen = _DigestSet(expected=100)  # far too small: it doubles as it goes
    for start in range(0, len(keys), 7_000):
        assert not seen.add_batch(keys[start : start + 7_000]).any()
    assert len(seen) == len(keys) and seen.nbytes >= len(keys) * 16 / _DigestSet.MAX_LOAD
    assert seen.add_batch(keys[::-1]).all()
    # same high half, other low half: not a duplicate
    other = keys[:100].copy()
    other["lo"] ^= np.uint64(2)
    assert not seen.add_batch(other).any()


def test_duplicates_across_many_batches_keep_the_first_and_the_line_order(tmp_path, monkeypatch):
    monkeypatch.setattr(validation, "_BATCH_ROWS", 3)
    rows = [_with(price=f"{i % 7}.00") for i in range(30)]  # 7 distinct rows, 23 copies
    result = _validate(
        tmp_path, _csv_file(tmp_path, "", *rows[:15], name="a.csv"), _csv_file(tmp_path, *rows[15:], "", name="b.csv")
    )
    assert (result.rows_read, result.rows_accepted, _rules(result), result.blank_lines) == (
        30,
        7,
        {"duplicate_row": 23},
        2,
    )
    lines = [(Path(r["source_file"]).name, int(r["line_number"])) for r in _quarantine(result)]
    assert lines == sorted(lines) and len(lines) == 23
    assert [json.loads(v)["price"] for _, v in read_staged_messages(result.staging_path)] == list(range(7))
    assert sum(result.events_by_date.values()) == 7 and result.duplicate_check["distinct_rows"] == 7


def test_many_rejects_between_batches_are_all_written_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(validation, "_BATCH_ROWS", 4)
    rows = [_with(event_type="x") if i % 3 else _with(price=f"{i}.00") for i in range(40)]
    result = _validate(tmp_path, _csv_file(tmp_path, *rows))
    assert (result.rows_accepted, _rules(result)) == (14, {"event_type_domain": 26})
    assert [int(r["line_number"]) for r in _quarantine(result)] == [i + 2 for i in range(40) if i % 3]


# ------------------------------------------------------------------------------------------
# The operator, against the local MinIO
# ------------------------------------------------------------------------------------------
def _s3_client():
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=os.environ["MINIO_ENDPOINT"],
        aws_access_key_id=os.environ["MINIO_ROOT_USER"],
        aws_secret_access_key=os.environ["MINIO_ROOT_PASSWORD"],
        region_name="us-east-1",
    )


@pytest.fixture
def evidence(stack):
    """(bucket, prefix): the pipeline's bucket (the pipeline's MinIO user may write only there)
    and a fresh prefix in it, removed after the test."""
    bucket, prefix = stack["bucket"], f"runs/run_date=2020-10-03/run=test-validation-{uuid.uuid4().hex[:8]}"
    yield bucket, prefix
    s3 = _s3_client()
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=item["Key"])


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("PIPELINE_DATA_DIR", str(root))
    return root


def _read_object(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_operator_publishes_quarantine_and_report_as_run_evidence(evidence, data_dir, tmp_path):
    from ecommerce_profiles.operators.validate import ValidateEventsOperator

    sample = data_dir / "sample_events.csv"
    sample.write_bytes(SAMPLE.read_bytes())
    bucket, prefix = evidence
    operator = ValidateEventsOperator(
        task_id="validate",
        input_target=str(sample),
        staging_dir=str(tmp_path / "staging"),
        evidence_prefix=prefix,
        bucket=bucket,
        max_reject_fraction=0.05,
    )
    out = operator.execute(context={})
    json.dumps(out)
    assert (out["rows_read"], out["rows_accepted"], out["rows_quarantined"]) == (316, 301, 15)
    assert out["files"] == [str(sample.resolve())]
    assert out["quarantine_uri"] == f"s3://{bucket}/{prefix}/quarantine.csv"
    quarantine = list(
        csv.DictReader(_read_object(_s3_client(), bucket, f"{prefix}/quarantine.csv").decode().splitlines())
    )
    assert {int(r["line_number"]): r["rule"] for r in quarantine} == EXPECTED_QUARANTINE
    report = json.loads(_read_object(_s3_client(), bucket, f"{prefix}/validation_report.json"))
    assert report["status"] == "passed" and report["rejects_by_rule"] == out["rejects_by_rule"]
    assert set(report["rejects_by_rule"]) == set(RULES) and report["limits"]["max_field_bytes"] == MAX_FIELD_BYTES


def test_operator_refuses_a_file_outside_the_data_directory(evidence, data_dir, tmp_path):
    from airflow.exceptions import AirflowException

    from ecommerce_profiles.operators.validate import ValidateEventsOperator

    operator = ValidateEventsOperator(
        task_id="validate",
        input_target="/proc/self/environ",
        staging_dir=str(tmp_path / "staging"),
        evidence_prefix=evidence[1],
        bucket=evidence[0],
    )
    with pytest.raises(AirflowException, match="outside the data directory"):
        operator.execute(context={})
    assert not _s3_client().list_objects_v2(Bucket=evidence[0], Prefix=evidence[1]).get("Contents")


def test_operator_over_threshold_uploads_the_report_then_fails(evidence, data_dir, tmp_path):
    from airflow.exceptions import AirflowException

    from ecommerce_profiles.operators.validate import ValidateEventsOperator

    (data_dir / "sample_events.csv").write_bytes(SAMPLE.read_bytes())
    bucket, prefix = evidence
    operator = ValidateEventsOperator(
        task_id="validate",
        input_target="sample_events.csv",
        staging_dir=str(tmp_path),
        evidence_prefix=prefix,
        bucket=bucket,
        max_reject_fraction="0.01",  # templated -> str
    )
    with pytest.raises(AirflowException) as err:
        operator.execute(context={})
    assert "sample_events.csv" in str(err.value) and "event_time_format" in str(err.value)
    report = json.loads(_read_object(_s3_client(), bucket, f"{prefix}/validation_report.json"))
    assert report["status"] == "failed" and "13 of 316" in report["failure"]


def test_digest_set_rows_sharing_the_high_half_are_told_apart():
    seen = _DigestSet(expected=10)
    assert seen.add_batch(_digests((7, 1), (7, 3), (7, 1), (7, 5), (7, 3))).tolist() == [
        False,
        False,
        True,
        False,
        True,
    ]
    assert seen.add_batch(_digests((7, 5), (7, 9))).tolist() == [True, False]
