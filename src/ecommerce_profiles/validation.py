"""Validate clickstream CSVs, stage the accepted events for Kafka, quarantine the rest.

Pure-Python core (``validate_files``) plus the Airflow operator (``ValidateEventsOperator``),
which adds the MinIO upload and the reject threshold. The core streams each file once and keeps
only the set of accepted lines (for the duplicate check) in memory.

Rules, checked in this order, the first failing one is the row's rule (names are stable):

=========================  ===================================================================
``column_count``           the row does not have one value per header column
``required_field_missing`` a non-nullable column (``ecommerce_profiles.schemas.EVENT_FIELDS``) is empty
``event_time_format``      not ``YYYY-MM-DD HH:MM:SS UTC`` with a real date and time
``event_type_domain``      not one of ``ecommerce_profiles.schemas.EVENT_TYPES``
``<column>_integral``      product_id / category_id / user_id: not an integer in int64 range
``price_decimal``          not a plain decimal number >= 0 (no sign, exponent, NaN or inf)
``duplicate_row``          an exact copy of an earlier accepted row of the same run (the first
                           copy is kept); quarantined and reported, but NOT counted against the
                           reject threshold: the real dataset has them, they are not corruption
=========================  ===================================================================

A header with other column names (or no header) is a file-level error: ``HeaderError`` names
the file and the expected and found headers.

Every data row ends accepted or quarantined (``rows_read == rows_accepted + rows_quarantined``,
asserted). Completely empty lines are not rows; they are counted as ``blank_lines``.

Accepted rows go to a staging file ready for the producer, one Kafka message per line::

    <user_id>\\t<compact JSON value>\\n

The value uses the CSV column names; event_time becomes ISO-8601 (``2020-09-24T11:57:06Z``),
ids and price are JSON numbers, and empty category_code/brand/user_session become null. The key
(user_id as text) is everything before the tab, so the producer never parses JSON.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from operator import itemgetter
from pathlib import Path
from typing import Any, Iterator, Sequence

from ecommerce_profiles.schemas import EVENT_COLUMNS, EVENT_FIELDS, EVENT_TYPES

STAGING_FILE_NAME = "messages.tsv"
QUARANTINE_FILE_NAME = "quarantine.csv"
REPORT_FILE_NAME = "validation_report.json"
QUARANTINE_COLUMNS = ("source_file", "line_number", "rule", "detail", "raw_line")
DEFAULT_MAX_REJECT_FRACTION = 0.01
MAX_EXAMPLES_PER_RULE = 5

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

_COL = {name: i for i, name in enumerate(EVENT_COLUMNS)}
_INTEGRAL_COLUMNS = tuple(f.name for f in EVENT_FIELDS if f.type == "long")
_REQUIRED_COLUMNS = tuple(f.name for f in EVENT_FIELDS if not f.nullable)
_NULLABLE_STRING_COLUMNS = tuple(f.name for f in EVENT_FIELDS if f.nullable and f.type == "string")

RULES: tuple[str, ...] = (
    "column_count",
    "required_field_missing",
    "event_time_format",
    "event_type_domain",
    *(f"{name}_integral" for name in _INTEGRAL_COLUMNS),
    "price_decimal",
    "duplicate_row",
)
# Rules quarantined and reported, but not counted towards max_reject_fraction.
THRESHOLD_EXEMPT_RULES = frozenset({"duplicate_row"})


class HeaderError(ValueError):
    """The file's header is not the event header: the whole file is unusable."""


class RejectThresholdExceeded(ValueError):
    """Too many invalid rows: the run must not continue with a partial file."""


# --------------------------------------------------------------------------------------------
# Field checks. Each returns the JSON text of the value, or None when invalid. Caches keep the
# common case to one dict lookup; they are bounded so garbage input cannot grow them forever.
# --------------------------------------------------------------------------------------------
_CACHE_LIMIT = 200_000
_VALID_TIMES = frozenset(f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60))
_date_cache: dict[str, bool] = {}
_price_cache: dict[str, str | bool] = {}
_string_cache: dict[str, str] = {}


def _is_real_date(text: str) -> bool:
    known = _date_cache.get(text)
    if known is not None:
        return known
    ok = False
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        digits = text[:4] + text[5:7] + text[8:]
        if digits.isascii() and digits.isdigit():
            try:
                date(int(text[:4]), int(text[5:7]), int(text[8:]))
                ok = True
            except ValueError:
                ok = False
    if len(_date_cache) < _CACHE_LIMIT:
        _date_cache[text] = ok
    return ok


def _event_time_problem(text: str) -> str:
    if len(text) != 23 or text[10] != " " or text[19:] != " UTC":
        return f"event_time {text!r} is not 'YYYY-MM-DD HH:MM:SS UTC'"
    if not _is_real_date(text[:10]):
        return f"event_time {text!r} has no real date"
    return f"event_time {text!r} has no real time of day"


def _integral_json(text: str) -> str | None:
    """Canonical JSON integer for ``text`` if it is an int64 integer (slow path)."""
    body = text[1:] if text[:1] == "-" else text
    if not (body and body.isascii() and body.isdigit()):
        return None
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        return None
    return str(value)


def _integral_problem(column: str, text: str) -> str:
    body = text[1:] if text[:1] == "-" else text
    if body.isascii() and body.isdigit():
        return f"{column} {text!r} is outside the int64 range"
    return f"{column} {text!r} is not an integer"


def _price_json(text: str) -> str | bool:
    """JSON number for a valid price, else False (cached)."""
    known = _price_cache.get(text)
    if known is not None:
        return known
    whole, dot, fraction = text.partition(".")
    ok = (
        whole.isascii() and whole.isdigit()
        and (not dot or (fraction.isascii() and fraction.isdigit()))
    )
    result: str | bool = False
    if ok and len(whole.lstrip("0")) <= 300:  # beyond ~1e308 a double is infinite
        # JSON forbids leading zeros ("007.50" -> "7.50"); keep the written decimals.
        whole = whole.lstrip("0") or "0"
        result = whole + dot + fraction
    if len(_price_cache) < _CACHE_LIMIT:
        _price_cache[text] = result
    return result


def _price_problem(text: str) -> str:
    if text.startswith("-"):
        return f"price {text!r} is negative"
    if text.strip().lower().lstrip("+-") in {"nan", "inf", "infinity"}:
        return f"price {text!r} is not a finite number"
    if text.partition(".")[0].lstrip("0").isdigit():
        return f"price {text!r} is too large for a finite double"
    return f"price {text!r} is not a plain decimal number"


def _string_json(text: str) -> str:
    """JSON for a nullable string column: empty -> null. ASCII output (escapes the rest)."""
    if not text:
        return "null"
    if text.isascii() and text.isalnum():
        return '"' + text + '"'
    return json.dumps(text)


def _cached_string_json(text: str) -> str:
    known = _string_cache.get(text)
    if known is None:
        known = _string_json(text)
        if len(_string_cache) < _CACHE_LIMIT:
            _string_cache[text] = known
    return known


def _value_fragments() -> tuple[str, ...]:
    """The constant pieces of a staged message, from the schema's column names.

    The message is ``key \\t {"event_time":"<date>T<time>Z","event_type":<json>, ...}``; piece i
    is everything between two values, so a message is a plain str.join (faster than % or json).
    """
    names = [f'"{name}":' for name in EVENT_COLUMNS]
    return (
        "\t{" + names[0] + '"', "T", 'Z",' + names[1],
        *("," + name for name in names[2:]),
        "}\n",
    )


# The fast path below unpacks rows in this exact order.
assert EVENT_COLUMNS == (
    "event_time", "event_type", "product_id", "category_id", "category_code",
    "brand", "price", "user_id", "user_session",
), "validation.py's row unpacking must follow ecommerce_profiles.schemas.EVENT_COLUMNS"
assert [f.type for f in EVENT_FIELDS] == [
    "timestamp", "string", "long", "long", "string", "string", "double", "long", "string",
], "validation.py's row checks must follow ecommerce_profiles.schemas.EVENT_FIELDS types"
_FRAGMENTS = _value_fragments()
_EVENT_TYPE_JSON = {name: json.dumps(name) for name in EVENT_TYPES}


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass
class ValidationResult:
    files: list[str]
    staging_path: str
    quarantine_path: str
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    blank_lines: int = 0
    rejects_by_rule: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    rejects_by_file: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    events_by_date: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows_invalid(self) -> int:
        """Quarantined rows that count towards the reject threshold (not duplicates)."""
        return self.rows_quarantined - sum(self.rejects_by_rule[r] for r in THRESHOLD_EXEMPT_RULES)

    @property
    def reject_fraction(self) -> float:
        return self.rows_invalid / self.rows_read if self.rows_read else 0.0

    @property
    def min_event_date(self) -> str | None:
        return min(self.events_by_date) if self.events_by_date else None

    @property
    def max_event_date(self) -> str | None:
        return max(self.events_by_date) if self.events_by_date else None

    def report(self, **extra: Any) -> dict[str, Any]:
        """The JSON validation report (``extra`` adds run facts such as run_date and URIs)."""
        return {
            **extra,
            "files": self.files,
            "rows_read": self.rows_read,
            "rows_accepted": self.rows_accepted,
            "rows_quarantined": self.rows_quarantined,
            "rows_invalid": self.rows_invalid,
            "reject_fraction": round(self.reject_fraction, 6),
            "threshold_exempt_rules": sorted(THRESHOLD_EXEMPT_RULES),
            "blank_lines": self.blank_lines,
            "rejects_by_rule": self.rejects_by_rule,
            "rejects_by_file": self.rejects_by_file,
            "examples": self.examples,
            "min_event_date": self.min_event_date,
            "max_event_date": self.max_event_date,
            "distinct_event_dates": len(self.events_by_date),
            "events_by_date": dict(sorted(self.events_by_date.items())),
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_read / self.seconds) if self.seconds else None,
        }


# --------------------------------------------------------------------------------------------
# Core
# --------------------------------------------------------------------------------------------
def resolve_input(input_path: str | os.PathLike) -> list[Path]:
    """A file, or a glob of files (sorted). Raises FileNotFoundError when nothing matches."""
    text = os.fspath(input_path)
    if glob.has_magic(text):
        paths = [Path(p) for p in sorted(glob.glob(text)) if Path(p).is_file()]
    else:
        paths = [Path(text)] if Path(text).is_file() else []
    if not paths:
        raise FileNotFoundError(f"no input CSV file matches {text!r}")
    return paths


def _read_header(path: Path, handle: io.TextIOBase) -> None:
    first = handle.readline()
    found = next(csv.reader([first.lstrip("\ufeff")]), []) if first.strip() else []
    if found != list(EVENT_COLUMNS):
        raise HeaderError(
            f"{path}: header mismatch: expected {','.join(EVENT_COLUMNS)!r} "
            f"but found {first.rstrip(chr(13) + chr(10))!r}"
        )


def validate_files(
    paths: Sequence[str | os.PathLike],
    staging_path: str | os.PathLike,
    quarantine_path: str | os.PathLike,
    *,
    max_examples: int = MAX_EXAMPLES_PER_RULE,
) -> ValidationResult:
    """Validate ``paths`` (one run's input) into a staging file and a quarantine CSV.

    Both outputs are written under a temporary name and renamed at the end, so a failed run
    never leaves a half-written staging file that looks complete. Duplicates are detected
    across all files of the run. Raises HeaderError for a file whose header is not the event
    header.
    """
    started = time.perf_counter()
    staging_path, quarantine_path = Path(staging_path), Path(quarantine_path)
    staging_path.parent.mkdir(parents=True, exist_ok=True)
    quarantine_path.parent.mkdir(parents=True, exist_ok=True)
    result = ValidationResult(
        files=[str(p) for p in paths], staging_path=str(staging_path), quarantine_path=str(quarantine_path)
    )
    staging_tmp = staging_path.with_name(staging_path.name + ".tmp")
    quarantine_tmp = quarantine_path.with_name(quarantine_path.name + ".tmp")

    rejects: Counter = Counter()
    rejects_by_file: dict[str, Counter] = {}
    examples: dict[str, list[dict[str, Any]]] = {}
    events_by_date: dict[str, int] = {}
    seen: set[str] = set()
    rows_read = accepted = 0

    # Hot-loop locals: the loop body below runs once per row, so every lookup counts.
    n_columns = len(EVENT_COLUMNS)
    required = itemgetter(*(_COL[c] for c in _REQUIRED_COLUMNS))
    event_type_json = _EVENT_TYPE_JSON
    valid_times = _VALID_TIMES
    date_cache, price_cache, string_cache = _date_cache, _price_cache, _string_cache
    f_time, f_t, f_type, f_product, f_category, f_code, f_brand, f_price, f_user, f_session, f_end = _FRAGMENTS
    int64_max_text = str(INT64_MAX)
    join = "".join

    try:
        with open(staging_tmp, "w", encoding="ascii", buffering=1 << 20) as staging, open(
            quarantine_tmp, "w", encoding="utf-8", errors="surrogateescape", newline=""
        ) as quarantine_file:
            quarantine = csv.writer(quarantine_file)
            quarantine.writerow(QUARANTINE_COLUMNS)
            write = staging.write

            for path in paths:
                path = Path(path)
                source = str(path)
                file_rejects = rejects_by_file.setdefault(source, Counter())

                def reject(line_number: int, line: str, rule: str, detail: str) -> None:
                    rejects[rule] += 1
                    file_rejects[rule] += 1
                    quarantine.writerow((source, line_number, rule, detail, line))
                    bucket = examples.setdefault(rule, [])
                    if len(bucket) < max_examples:
                        bucket.append({"file": source, "line": line_number, "detail": detail, "raw_line": line})

                # newline="\n": only \n ends a row (a stray \r inside a value does not).
                with open(path, encoding="utf-8", errors="surrogateescape", newline="\n") as handle:
                    _read_header(path, handle)
                    # One physical line is one row: a quoted field with an embedded newline
                    # (which this dataset never has) becomes column_count rejects instead of a
                    # stray quote swallowing the following lines.
                    for line_number, line in enumerate(handle, 2):
                        line = line.rstrip("\r\n")
                        if not line:
                            result.blank_lines += 1
                            continue
                        rows_read += 1
                        if '"' in line:
                            try:
                                row = next(csv.reader([line], strict=True))
                            except csv.Error as err:
                                reject(line_number, line, "column_count", f"malformed CSV quoting: {err}")
                                continue
                        else:
                            row = line.split(",")
                        if len(row) != n_columns:
                            reject(line_number, line, "column_count", f"{len(row)} columns, expected {n_columns}")
                            continue
                        (event_time, event_type, product_id, category_id, category_code,
                         brand, price, user_id, user_session) = row
                        if "" in required(row):
                            missing = [c for c in _REQUIRED_COLUMNS if not row[_COL[c]]]
                            reject(line_number, line, "required_field_missing",
                                   "empty required column(s): " + ", ".join(missing))
                            continue

                        day = event_time[:10]
                        clock = event_time[11:19]
                        day_ok = date_cache.get(day)
                        if day_ok is None:
                            day_ok = _is_real_date(day)
                        if not (day_ok and clock in valid_times and event_time[19:] == " UTC"
                                and event_time[10] == " " and len(event_time) == 23):
                            reject(line_number, line, "event_time_format", _event_time_problem(event_time))
                            continue

                        line_is_ascii = line.isascii()
                        type_json = event_type_json.get(event_type)
                        if type_json is None:
                            reject(line_number, line, "event_type_domain",
                                   f"event_type {event_type!r} is not one of {', '.join(EVENT_TYPES)}")
                            continue

                        # Integral columns: the common case is up to 19 ASCII digits without a
                        # leading zero (same length -> text order is numeric order); anything else
                        # (sign, leading zeros, non-ASCII digits) takes the exact slow path.
                        if not (line_is_ascii and product_id.isdigit() and product_id[0] != "0" and (
                                len(product_id) < 19 or (len(product_id) == 19 and product_id <= int64_max_text))):
                            canonical = _integral_json(product_id)
                            if canonical is None:
                                reject(line_number, line, "product_id_integral",
                                       _integral_problem("product_id", product_id))
                                continue
                            product_id = canonical
                        if not (line_is_ascii and category_id.isdigit() and category_id[0] != "0" and (
                                len(category_id) < 19 or (len(category_id) == 19 and category_id <= int64_max_text))):
                            canonical = _integral_json(category_id)
                            if canonical is None:
                                reject(line_number, line, "category_id_integral",
                                       _integral_problem("category_id", category_id))
                                continue
                            category_id = canonical
                        if not (line_is_ascii and user_id.isdigit() and user_id[0] != "0" and (
                                len(user_id) < 19 or (len(user_id) == 19 and user_id <= int64_max_text))):
                            canonical = _integral_json(user_id)
                            if canonical is None:
                                reject(line_number, line, "user_id_integral", _integral_problem("user_id", user_id))
                                continue
                            user_id = canonical

                        price_text = price_cache.get(price)
                        if price_text is None:
                            price_text = _price_json(price)
                        if price_text is False:
                            reject(line_number, line, "price_decimal", _price_problem(price))
                            continue

                        before = len(seen)
                        seen.add(line)
                        if len(seen) == before:
                            reject(line_number, line, "duplicate_row", "exact copy of an earlier row")
                            continue

                        code_json = string_cache.get(category_code)
                        if code_json is None:
                            code_json = _cached_string_json(category_code)
                        brand_json = string_cache.get(brand)
                        if brand_json is None:
                            brand_json = _cached_string_json(brand)
                        if line_is_ascii and user_session.isalnum():
                            session_json = '"' + user_session + '"'
                        else:
                            session_json = _string_json(user_session)
                        events_by_date[day] = events_by_date.get(day, 0) + 1
                        write(join((
                            user_id, f_time, day, f_t, clock, f_type, type_json, f_product, product_id,
                            f_category, category_id, f_code, code_json, f_brand, brand_json, f_price,
                            price_text, f_user, user_id, f_session, session_json, f_end,
                        )))
                        accepted += 1
        os.replace(staging_tmp, staging_path)
        os.replace(quarantine_tmp, quarantine_path)
    finally:
        for tmp in (staging_tmp, quarantine_tmp):
            if tmp.exists():
                tmp.unlink()

    result.rows_read = rows_read
    result.rows_accepted = accepted
    result.rows_quarantined = sum(rejects.values())
    result.rejects_by_rule.update(rejects)
    result.rejects_by_file = {f: dict(c) for f, c in rejects_by_file.items()}
    result.examples = examples
    result.events_by_date = events_by_date
    result.seconds = time.perf_counter() - started
    assert result.rows_read == result.rows_accepted + result.rows_quarantined, (
        f"validation lost rows: read {result.rows_read}, accepted {result.rows_accepted}, "
        f"quarantined {result.rows_quarantined}"
    )
    return result


def reject_threshold_problem(result: ValidationResult, max_reject_fraction: float) -> str | None:
    """Why the run must fail, or None. Duplicates do not count (THRESHOLD_EXEMPT_RULES)."""
    if not 0 <= max_reject_fraction <= 1:
        raise ValueError(f"max_reject_fraction must be within [0, 1], got {max_reject_fraction}")
    if result.rows_read == 0 or result.reject_fraction <= max_reject_fraction:
        return None
    parts = []
    for source, by_rule in result.rejects_by_file.items():
        for rule, count in sorted(by_rule.items(), key=lambda kv: -kv[1]):
            if rule in THRESHOLD_EXEMPT_RULES or not count:
                continue
            samples = [e for e in result.examples.get(rule, []) if e["file"] == source][:2]
            shown = "; ".join(f"line {e['line']}: {e['detail']}: {e['raw_line']!r}" for e in samples)
            parts.append(f"{source}: {rule} x{count} (e.g. {shown})")
    return (
        f"{result.rows_invalid} of {result.rows_read} rows ({result.reject_fraction:.2%}) are invalid, "
        f"above max_reject_fraction={max_reject_fraction:.2%} (duplicate rows are not counted). "
        + " | ".join(parts)
    )


def check_reject_threshold(result: ValidationResult, max_reject_fraction: float) -> None:
    problem = reject_threshold_problem(result, max_reject_fraction)
    if problem:
        raise RejectThresholdExceeded(problem)


def read_staged_messages(path: str | os.PathLike) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) bytes of each staged message, as the producer sends them."""
    with open(path, "rb") as handle:
        for line in handle:
            key, _, value = line.rstrip(b"\n").partition(b"\t")
            yield key, value
