"""Validate clickstream CSVs, stage the accepted events for Kafka, quarantine the rest.

Pure-Python core, no Airflow (``ValidateEventsOperator`` in ``ecommerce_profiles.operators.validate``
adds the MinIO upload and the reject threshold; ``ecommerce_profiles.core.inputs`` decides which
files a run may read). The core streams each file once, in bounded memory: lines are read in
1 MiB blocks, no line is held beyond 2 MiB, and the duplicate check keeps a 16-byte digest per
accepted row in one numpy table (``_DigestSet``, ~23 bytes a row), not the rows themselves.

Rules, checked in this order, the first failing one is the row's rule (names are stable). The
limits are what downstream can store: a row that passes all of them reaches Kafka, the lake
and Elasticsearch unchanged. ``_validate_file`` applies the rules of a record (up to
``column_count``, with ``_record_row``), ``_row_checker`` those of its values, one block per
rule in this order, and ``_Outputs.flush`` ``duplicate_row``: a new rule is a name in ``RULES``
and its block there.

===========================  =================================================================
``invalid_utf8``             the row has bytes that are not UTF-8; it is quarantined as it is
                             (invalid bytes written as ``\\xNN`` in raw_line), never altered
``column_count``             the row does not have one value per header column (also: bad CSV
                             quoting, a quoted field that is never closed)
``field_too_long``           a value is over 32 KiB (``MAX_FIELD_BYTES`` = 32768 bytes of
                             UTF-8): Elasticsearch's keyword limit
``control_character``        a value holds a C0 control character other than tab, LF and CR
                             (NUL, BEL, the ESC of an ANSI escape sequence, ...), DEL or a C1
                             control (U+0080-U+009F): it would reach Kafka, the lake,
                             Elasticsearch and terminals (raw_line shows each as ``\\xNN``).
                             Tab, LF and CR stay data: CSV allows them in a quoted value
``required_field_missing``   a non-nullable column (``ecommerce_profiles.core.schemas.EVENT_FIELDS``) is empty
``event_time_format``        not ``YYYY-MM-DD HH:MM:SS UTC`` with a real date and time
``event_time_range``         before 1970-01-01 00:00:00 UTC or after ``max_event_time`` (default:
                             now + 1 day, UTC): Spark's Parquet writer refuses ancient dates and
                             a far-future event would become the snapshot date
``event_type_domain``        not one of ``ecommerce_profiles.core.schemas.EVENT_TYPES``
``<column>_integral``        product_id / category_id / user_id: not an integer in int64 range
``price_decimal``            not a plain decimal number >= 0 (no sign, exponent, NaN or inf)
``price_range``              does not fit ``decimal(18,2)`` exactly, the type revenue is summed
                             in: >= 1e16, a non-zero third decimal, or more significant digits
                             than the double the price travels as can hold
``message_too_large``        the staged Kafka message (key + value) is over
                             ``max_message_bytes`` (default 1,000,000; the broker's
                             message.max.bytes is 1,048,588), or the line is over 2 MiB
                             (``MAX_LINE_CHARS``; raw_line keeps its first 64 KiB)
``duplicate_row``            an exact copy of an earlier accepted row of the same run (the first
                             copy is kept); quarantined and reported, but NOT counted against the
                             reject threshold: the real dataset has them, they are not corruption
===========================  =================================================================

Records are read as CSV records: a quoted field may hold commas and newlines (the record's
line number is the line it starts on). A quoted field still open at the end of the file or
after ``max_message_bytes`` characters quarantines only its first line (``column_count``) and
reading goes on with the next line, so one stray quote never swallows the rest of a file.

A header with other column names (or no header) is a file-level error: ``HeaderError`` names
the file and, when the first line is a short list of column-like names, the expected and found
names. Any other first line is described by its size only, never echoed (the file may be
``/proc/self/environ``). ``FileFormatError`` (a HeaderError) is raised for a file that is not
readable as text CSV: classic-Mac CR-only line ends, a corrupt ``.gz``. ``.csv.gz`` files are
read transparently.

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
import gzip
import io
import json
import os
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import compress, repeat
from operator import add, itemgetter
from pathlib import Path
from typing import IO, Any, NamedTuple, cast

import numpy as np

from ecommerce_profiles.core.schemas import EVENT_COLUMNS, EVENT_FIELDS, EVENT_TYPES

STAGING_FILE_NAME = "messages.tsv"
QUARANTINE_FILE_NAME = "quarantine.csv"
REPORT_FILE_NAME = "validation_report.json"
QUARANTINE_COLUMNS = ("source_file", "line_number", "rule", "detail", "raw_line")
DEFAULT_MAX_REJECT_FRACTION = 0.01
MAX_EXAMPLES_PER_RULE = 5
EXAMPLE_RAW_LINE_CHARS = 2_000  # examples in the report (and the threshold message) are cut here

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
_INT64_MAX_TEXT = str(INT64_MAX)

# Limits = what downstream can store.
MIN_EVENT_TIME = "1970-01-01 00:00:00"  # Spark's Parquet writer (and epoch-based tools) start here
MAX_EVENT_TIME_AHEAD = timedelta(days=1)  # default max_event_time = now (UTC) + this
MAX_FIELD_BYTES = 32_768  # Elasticsearch keyword fields refuse terms over 32766 bytes
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000  # Kafka's default message.max.bytes is 1,048,588
PRICE_LIMIT_DIGITS = 16  # decimal(18,2): 16 integer digits, 2 decimals
MAX_LINE_CHARS = 2 * 1024 * 1024  # a longer physical line is quarantined truncated (memory bound)
TRUNCATED_LINE_KEEP_CHARS = 64 * 1024  # what raw_line keeps of such a line

_COL = {name: i for i, name in enumerate(EVENT_COLUMNS)}
_INTEGRAL_COLUMNS = tuple(f.name for f in EVENT_FIELDS if f.type == "long")
_REQUIRED_COLUMNS = tuple(f.name for f in EVENT_FIELDS if not f.nullable)
_NULLABLE_STRING_COLUMNS = tuple(f.name for f in EVENT_FIELDS if f.nullable and f.type == "string")

RULES: tuple[str, ...] = (
    "invalid_utf8",
    "column_count",
    "field_too_long",
    "control_character",
    "required_field_missing",
    "event_time_format",
    "event_time_range",
    "event_type_domain",
    *(f"{name}_integral" for name in _INTEGRAL_COLUMNS),
    "price_decimal",
    "price_range",
    "message_too_large",
    "duplicate_row",
)
# Rules quarantined and reported, but not counted towards max_reject_fraction.
THRESHOLD_EXEMPT_RULES = frozenset({"duplicate_row"})


class HeaderError(ValueError):
    """The file is unusable as a whole (its header is not the event header): the run fails."""


class FileFormatError(HeaderError):
    """The file cannot be read as text CSV at all (CR-only line ends, corrupt gzip)."""


class RejectThresholdExceeded(ValueError):
    """Too many invalid rows: the run must not continue with a partial file."""


# --------------------------------------------------------------------------------------------
# Field checks. Each returns the JSON text of the value, or a marker when invalid. Caches keep
# the common case to one dict lookup; they are bounded in entries and only hold short values,
# so garbage input cannot grow them beyond a few tens of MB.
# --------------------------------------------------------------------------------------------
_CACHE_LIMIT = 200_000
_CACHED_VALUE_CHARS = 64
_VALID_TIMES = frozenset(f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60))
_date_cache: dict[str, bool] = {}
_price_cache: dict[str, str | bool] = {}


class _Memo(dict):
    """``function(text)``, remembered for short texts: a value seen before costs one dict lookup
    (``memo[text]``), no Python call. At most _CACHE_LIMIT entries of _CACHED_VALUE_CHARS characters."""

    def __init__(self, function: Callable[[str], Any]) -> None:
        super().__init__()
        self.function = function

    def __missing__(self, text: str) -> Any:
        value = self.function(text)
        if len(self) < _CACHE_LIMIT and len(text) <= _CACHED_VALUE_CHARS:
            self[text] = value
        return value


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
    if len(_date_cache) < _CACHE_LIMIT and len(text) <= _CACHED_VALUE_CHARS:
        _date_cache[text] = ok
    return ok


def _event_time_problem(text: str) -> str:
    if len(text) != 23 or text[10] != " " or text[19:] != " UTC":
        return f"event_time {_short(text)} is not 'YYYY-MM-DD HH:MM:SS UTC'"
    if not _is_real_date(text[:10]):
        return f"event_time {text!r} has no real date"
    return f"event_time {text!r} has no real time of day"


def _int64_json(text: str) -> str | None:
    """The JSON integer of an int64 column's value, or None when it is not one (``<column>_integral``).

    The common case is up to 19 ASCII digits without a leading zero (same length -> text order is
    numeric order): the text is its own JSON. Anything else (sign, leading zeros, non-ASCII
    digits, 20 digits) takes the exact path.
    """
    if (
        text.isascii()
        and text.isdigit()
        and text[0] != "0"
        and (len(text) < 19 or (len(text) == 19 and text <= _INT64_MAX_TEXT))
    ):
        return text
    body = text[1:] if text[:1] == "-" else text
    if not (body and body.isascii() and body.isdigit()) or len(body) > 25:
        return None
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        return None
    return str(value)


def _integral_problem(column: str, text: str) -> str:
    body = text[1:] if text[:1] == "-" else text
    if body.isascii() and body.isdigit():
        return f"{column} {_short(text)} is outside the int64 range"
    return f"{column} {_short(text)} is not an integer"


# A price is a valid decimal (str: its JSON text), not a decimal (False: price_decimal), or a
# decimal that decimal(18,2) cannot hold exactly (True: price_range).
_PRICE_NOT_DECIMAL = False
_PRICE_OUT_OF_RANGE = True


def _price_json(text: str) -> str | bool:
    """JSON number for a valid price, else _PRICE_NOT_DECIMAL / _PRICE_OUT_OF_RANGE (cached)."""
    known = _price_cache.get(text)
    if known is not None:
        return known
    whole, dot, fraction = text.partition(".")
    ok = whole.isascii() and whole.isdigit() and (not dot or (fraction.isascii() and fraction.isdigit()))
    result: str | bool = _PRICE_NOT_DECIMAL
    if ok:
        # JSON forbids leading zeros ("007.50" -> "7.50"); keep the written decimals.
        whole = whole.lstrip("0") or "0"
        result = whole + dot + fraction if _fits_money(whole, fraction) else _PRICE_OUT_OF_RANGE
    if len(_price_cache) < _CACHE_LIMIT and len(text) <= _CACHED_VALUE_CHARS:
        _price_cache[text] = result
    return result


def _fits_money(whole: str, fraction: str) -> bool:
    """Does the price survive JSON -> Spark double -> decimal(18,2) unchanged?

    Below 1e16, at most two non-zero decimals, and (when it has more than the 15 significant
    digits every double holds) the nearest double must read back as the same number.
    """
    significant_fraction = fraction.rstrip("0")
    if len(whole) > PRICE_LIMIT_DIGITS or len(significant_fraction) > 2:
        return False
    digits = (len(whole) if whole != "0" else 0) + len(significant_fraction)
    if digits <= 15:
        return True
    written = Decimal(whole + "." + (significant_fraction or "0"))
    return Decimal(repr(float(written))) == written and written < 10**PRICE_LIMIT_DIGITS


def _price_problem(text: str) -> str:
    if text.startswith("-"):
        return f"price {_short(text)} is negative"
    if text.strip().lower().lstrip("+-") in {"nan", "inf", "infinity"}:
        return f"price {_short(text)} is not a finite number"
    return f"price {_short(text)} is not a plain decimal number"


def _price_range_problem(text: str) -> str:
    whole, _, fraction = text.partition(".")
    whole = whole.lstrip("0")
    if len(whole) > PRICE_LIMIT_DIGITS:
        return f"price {_short(text)} is 1e16 or more: decimal(18,2) cannot hold it"
    if len(fraction.rstrip("0")) > 2:
        return f"price {_short(text)} has more than 2 decimals: decimal(18,2) would round it"
    return f"price {_short(text)} has more significant digits than a double holds: it would change on the way"


def _text_json(text: str) -> str | None:
    """JSON for a nullable string column (empty -> null; ASCII output, escapes the rest), or None
    when it holds a control character (``control_character``)."""
    if not text:
        return "null"
    if text.isascii() and text.isalnum():
        return '"' + text + '"'
    if not text.isprintable() and _CONTROL_CHARACTER.search(text):
        return None
    return json.dumps(text)


_texts = _Memo(_text_json)  # category codes and brands


def _short(text: str, limit: int = 80) -> str:
    """repr of a value for a detail message, cut to ``limit`` characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text):,} characters)"


def _utf8_bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogateescape"))


# C0 controls but tab, LF and CR; DEL; C1 controls (rule control_character).
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_C0_NAMES = (
    "NUL SOH STX ETX EOT ENQ ACK BEL BS HT LF VT FF CR SO SI DLE DC1 DC2 DC3 DC4 NAK SYN ETB CAN EM SUB ESC FS GS RS US"
).split()


def _escape_control(match: re.Match) -> str:
    return f"\\x{ord(match.group()):02x}"


def _printable(text: str) -> str:
    """Text safe to write as UTF-8 and to show in a terminal: bytes that were not UTF-8 and
    control characters (``_CONTROL_CHARACTER``: not tab, LF, CR) become ``\\xNN`` (shown, not lost)."""
    if text.isascii() and text.isprintable():
        return text
    if not text.isascii():
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _CONTROL_CHARACTER.sub(_escape_control, text)


def _control_character_problem(row: Sequence[str]) -> str | None:
    """Which value holds a control character (tab, LF and CR are data), or None."""
    for name, value in zip(EVENT_COLUMNS, row):
        found = _CONTROL_CHARACTER.search(value)
        if found:
            code = ord(found.group())
            label = _C0_NAMES[code] if code < 32 else "DEL" if code == 127 else "C1 control"
            return f"{name} holds the control character U+{code:04X} ({label}) at character {found.start() + 1}"
    return None


def _required_problem(row: Sequence[str]) -> str:
    return "empty required column(s): " + ", ".join(c for c in _REQUIRED_COLUMNS if not row[_COL[c]])


def _invalid_utf8_problem(text: str) -> str | None:
    """None when the text decoded from valid UTF-8; else where the first invalid byte is."""
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as err:
        bad = text[err.start : err.end].encode("utf-8", "surrogateescape")
        return (
            f"{err.end - err.start} byte(s) that are not UTF-8 at character {err.start + 1} "
            f"(first 0x{bad[0]:02x}); the row is quarantined unaltered"
        )


def _long_field_problem(row: Sequence[str]) -> str | None:
    for name, value in zip(EVENT_COLUMNS, row):
        if len(value) > MAX_FIELD_BYTES // 4:
            size = _utf8_bytes(value)
            if size > MAX_FIELD_BYTES:
                return f"{name} is {size:,} bytes of UTF-8, over the {MAX_FIELD_BYTES:,}-byte field limit"
    return None


def _quote_open(text: str, in_quotes: bool) -> bool:
    """Does a quoted field stay open at the end of this physical line?

    Follows the csv module's default dialect: a quote opens a quoted field only at the start of
    a field; inside one, ``""`` is a quote and a lone ``"`` closes it. ``in_quotes`` says the
    line starts inside a quoted field (a continuation line).
    """
    n = len(text)
    i = 0
    while True:
        if not in_quotes:
            if i < n and text[i] == '"':
                in_quotes = True
                i += 1
            else:
                comma = text.find(",", i)
                if comma < 0:
                    return False
                i = comma + 1
                continue
        while True:  # inside a quoted field: find the closing quote
            quote = text.find('"', i)
            if quote < 0:
                return True
            if quote + 1 < n and text[quote + 1] == '"':
                i = quote + 2
                continue
            break
        in_quotes = False
        comma = text.find(",", quote + 1)
        if comma < 0:
            return False
        i = comma + 1


def _value_fragments() -> tuple[str, ...]:
    """The constant pieces of a staged message, from the schema's column names.

    The message is ``key \\t {"event_time":"<date>T<time>Z","event_type":<json>, ...}``; piece i
    is everything between two values, so a message is a plain str.join (faster than % or json).
    """
    names = [f'"{name}":' for name in EVENT_COLUMNS]
    return (
        "\t{" + names[0] + '"',
        "T",
        'Z",' + names[1],
        *("," + name for name in names[2:]),
        "}\n",
    )


# The fast path below unpacks rows in this exact order.
assert EVENT_COLUMNS == (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
), "validation.py's row unpacking must follow ecommerce_profiles.core.schemas.EVENT_COLUMNS"
assert [f.type for f in EVENT_FIELDS] == [
    "timestamp",
    "string",
    "long",
    "long",
    "string",
    "string",
    "double",
    "long",
    "string",
], "validation.py's row checks must follow ecommerce_profiles.core.schemas.EVENT_FIELDS types"
_FRAGMENTS = _value_fragments()
_EVENT_TYPE_JSON = {name: json.dumps(name) for name in EVENT_TYPES}
# The longest message a line of n characters can become: every character escaped as a JSON
# surrogate pair (12 characters) plus the constant pieces. Shorter lines skip the size check.
_MESSAGE_OVERHEAD = sum(map(len, _FRAGMENTS)) + 64


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
    limits: dict[str, Any] = field(default_factory=dict)
    duplicate_check: dict[str, Any] = field(default_factory=dict)

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
            "limits": self.limits,
            "duplicate_check": self.duplicate_check,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_read / self.seconds) if self.seconds else None,
        }


# --------------------------------------------------------------------------------------------
# Duplicate memory
# --------------------------------------------------------------------------------------------
_DIGEST = np.dtype([("hi", "<u8"), ("lo", "<u8")])


class _DigestSet:
    """16-byte digests of the accepted rows in one open-addressing numpy table.

    A digest is two 64-bit SipHash values of the row (``hash(row)``, ``hash(row + "\\0")``:
    Python's own string hash, keyed with a random 128-bit key per process), the lowest bit set
    because an all-zero slot is empty. 16 bytes a slot, at most 70 % full: ~23 bytes per
    distinct row (~480 MB at 20M rows) instead of the rows themselves in a Python set (~200
    bytes per row). Two different rows get the same digest with probability about
    n^2 / 2^128 (~1e-24 at 20M rows); 8 bytes would have been ~1e-5 at 20M, i.e. now and then
    one unique row quarantined as a duplicate. Rows are added in batches (``add_batch``), which
    tells which were seen before (earlier in the batch or in an earlier batch). The table is
    sized from ``expected`` rows and doubles (a rehash) when it runs full.
    """

    MAX_LOAD = 0.7

    def __init__(self, expected: int = 0) -> None:
        self._size = 0
        self._allocate(max(1024, int(expected / self.MAX_LOAD) + 1))

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        return self._table.nbytes

    def _allocate(self, capacity: int) -> None:
        self._capacity = capacity
        self._table = np.zeros(capacity, dtype=_DIGEST)

    def add_batch(self, digests: np.ndarray) -> np.ndarray:
        """Add a batch (``_DIGEST`` array, in row order); True where the row was seen before."""
        seen = np.zeros(len(digests), dtype=bool)
        if not len(digests):
            return seen
        # Within the batch: a stable sort puts later copies right after the first one. Sorting
        # by the high half is enough unless two different rows share it (~2^-64 a pair).
        order = np.argsort(digests["hi"], kind="stable")
        ordered = digests[order]
        equal_hi = ordered["hi"][1:] == ordered["hi"][:-1]
        same = equal_hi & (ordered["lo"][1:] == ordered["lo"][:-1])
        if (equal_hi & ~same).any():
            order = np.lexsort((digests["lo"], digests["hi"]))
            ordered = digests[order]
            same = (ordered["hi"][1:] == ordered["hi"][:-1]) & (ordered["lo"][1:] == ordered["lo"][:-1])
        seen[order[1:][same]] = True
        first = np.flatnonzero(~seen)
        seen[first[self._insert(digests[first])]] = True
        return seen

    def _insert(self, keys: np.ndarray) -> np.ndarray:
        """Insert distinct keys (linear probing, vectorised); True where a key was already there."""
        if self._size + len(keys) > self.MAX_LOAD * self._capacity:
            self._grow(self._size + len(keys))
        table, capacity = self._table, self._capacity
        found = np.zeros(len(keys), dtype=bool)
        position = (keys["hi"] % np.uint64(capacity)).astype(np.int64)
        pending = np.arange(len(keys))
        while pending.size:
            slots = position[pending]
            current = table[slots]
            wanted = keys[pending]
            done = (current["hi"] == wanted["hi"]) & (current["lo"] == wanted["lo"])
            found[pending[done]] = True
            empty = np.flatnonzero((current["hi"] == 0) & (current["lo"] == 0))
            if empty.size:
                # Several keys may want the same empty slot: one write wins, the others move on.
                claimed = slots[empty]
                table[claimed] = wanted[empty]
                stored = table[claimed]
                won = (stored["hi"] == wanted["hi"][empty]) & (stored["lo"] == wanted["lo"][empty])
                self._size += int(won.sum())
                done[empty[won]] = True
            pending = pending[~done]
            step = position[pending] + 1
            step[step == capacity] = 0
            position[pending] = step
        return found

    def _grow(self, needed: int) -> None:
        old = self._table
        kept = old[(old["hi"] != 0) | (old["lo"] != 0)]
        del old
        self._allocate(max(2 * self._capacity, int(needed / self.MAX_LOAD) + 1))
        self._size = 0
        self._insert(kept)


def _digests(records: list[str]) -> np.ndarray:
    """The ``_DIGEST`` of each record: ``hash(record)``, ``hash(record + "\\0")`` (lowest bit set)."""
    n = len(records)
    digests = np.empty(n, dtype=_DIGEST)
    digests["hi"] = np.fromiter(map(hash, records), dtype=np.int64, count=n).view(np.uint64)
    lo = np.fromiter(map(hash, map(add, records, repeat("\0"))), dtype=np.int64, count=n).view(np.uint64)
    digests["lo"] = lo | np.uint64(1)  # never all-zero: that marks an empty slot
    return digests


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
_READ_CHARS = 1 << 20
_HEADER_PROBE_CHARS = 64 * 1024
_HEADER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class _EndOfFile(str):
    """The marker the line reader yields at the end (after any pushed-back lines)."""


class _TruncatedLine(str):
    """The first TRUNCATED_LINE_KEEP_CHARS of a physical line over MAX_LINE_CHARS."""

    total_chars: int


_EOF = _EndOfFile("")


def _is_gzip(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def _open_text(path: Path) -> IO[str]:
    """The file as text: UTF-8 with undecodable bytes kept (surrogateescape), no newline
    translation (the reader splits on \\n itself), gzip-decompressed for ``*.gz``."""
    raw = gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")


def _physical_lines(handle: IO[str], carry: str, pushback: list[str], max_chars: int) -> Iterator[str]:
    """Lines without their \\n, read in 1 MiB blocks; then _EOF forever.

    ``pushback`` holds lines the caller gave back (last one first): they are yielded before
    anything else. A line over ``max_chars`` is skipped to its end and yielded as a
    _TruncatedLine holding its start, so memory stays bounded whatever the input.
    """
    while True:
        block = handle.read(_READ_CHARS)
        if not block:
            break
        if carry:
            block = carry + block
        lines = block.split("\n")
        carry = lines.pop()
        for line in lines:
            while pushback:
                yield pushback.pop()
            yield line
        if len(carry) > max_chars:
            head = _TruncatedLine(carry[:TRUNCATED_LINE_KEEP_CHARS])
            total, carry = len(carry), ""
            while True:
                block = handle.read(_READ_CHARS)
                if not block:
                    break
                newline = block.find("\n")
                if newline >= 0:
                    total += newline
                    carry = block[newline + 1 :]
                    break
                total += len(block)
            head.total_chars = total
            while pushback:
                yield pushback.pop()
            yield head
            if carry:  # lines after the long one, already read: split them on the next pass
                block, carry = carry, ""
                lines = block.split("\n")
                carry = lines.pop()
                for line in lines:
                    while pushback:
                        yield pushback.pop()
                    yield line
    if carry:  # the last line has no \n (or the whole file fitted in the header's read)
        lines = carry.split("\n")
        if not lines[-1]:
            lines.pop()
        for line in lines:
            while pushback:
                yield pushback.pop()
            yield line
    while True:
        while pushback:
            yield pushback.pop()
        yield _EOF


def _header_problem(path: Path, first: str, *, more: bool, empty: bool) -> tuple[type[HeaderError], str] | None:
    """Why the first line is not the event header (None when it is). Shows column names only
    when the line is a short list of identifier-like names sharing some with the header."""
    text = first.rstrip("\r")
    if text.startswith("\ufeff"):
        text = text[1:]
    expected = ",".join(EVENT_COLUMNS)
    if not more and "\r" not in text:
        try:
            found = next(csv.reader([text]), [])
        except csv.Error:
            found = None
        if found == list(EVENT_COLUMNS):
            return None
    else:
        found = None
    size = len(first.encode("utf-8", "surrogateescape"))
    if empty:
        return HeaderError, f"{path}: the file is empty: expected the header {expected!r}"
    if "\r" in text and text.split("\r", 1)[0] == expected:
        return FileFormatError, (
            f"{path}: lines end with a bare CR (classic Mac line ends): only LF or CRLF line ends are "
            f"read. Convert the file (e.g. tr '\\r' '\\n') and rerun"
        )
    names = [name.strip() for name in found] if found else []
    if (
        2 <= len(names) <= 64
        and all(_HEADER_NAME.fullmatch(name) for name in names)
        and set(names) & set(EVENT_COLUMNS)
    ):
        missing = [c for c in EVENT_COLUMNS if c not in names]
        unexpected = [n for n in names if n not in EVENT_COLUMNS]
        diff = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unexpected {', '.join(unexpected)}" if unexpected else "",
                "same names in another order" if not missing and not unexpected else "",
            )
            if part
        )
        return HeaderError, f"{path}: header mismatch: expected {expected!r} but found {','.join(names)!r} ({diff})"
    shown = f"more than {size:,} bytes" if more else f"{size:,} bytes"
    return HeaderError, (
        f"{path}: the first line is not a CSV header ({shown}; its content is not shown): "
        f"expected the header {expected!r}"
    )


def _read_header(path: Path, handle: IO[str]) -> str:
    """Check the header line; return what was read after it (the start of the data)."""
    probe = handle.read(_HEADER_PROBE_CHARS)
    newline = probe.find("\n")
    if newline >= 0:
        first, rest, more = probe[:newline], probe[newline + 1 :], False
    else:
        first, rest, more = probe, "", len(probe) == _HEADER_PROBE_CHARS
    problem = _header_problem(path, first, more=more, empty=not probe)
    if problem:
        error, message = problem
        raise error(message)
    return rest


def _max_event_time_text(value: datetime | date | str | None) -> str:
    """The latest accepted event time as ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    if value is None:
        value = datetime.now(UTC) + MAX_EVENT_TIME_AHEAD
    elif isinstance(value, str):
        value = datetime.fromisoformat(value.strip().removesuffix(" UTC").replace("Z", "+00:00"))
    elif not isinstance(value, datetime):  # a date: events through the end of that day
        value = datetime(value.year, value.month, value.day, 23, 59, 59)
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    text = f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    if text < MIN_EVENT_TIME:
        raise ValueError(f"max_event_time {text} UTC is before {MIN_EVENT_TIME} UTC")
    return text


_BATCH_ROWS = 65_536  # rows held back per duplicate-check batch
_BATCH_CHARS = 32 * 1024 * 1024  # ... or fewer, when long rows add up to this many characters
_LONG_LINE_CHARS = 256  # lines longer than this are counted towards _BATCH_CHARS


class Reject(NamedTuple):
    """The first rule a row breaks (a name in RULES) and why, for the quarantine CSV."""

    rule: str
    detail: str


class _Limits:
    """One run's limits (``validate_files``' arguments) and the reading bounds that follow."""

    def __init__(self, max_event_time: datetime | date | str | None, max_message_bytes: int) -> None:
        if max_message_bytes < 1024:
            raise ValueError(f"max_message_bytes must be at least 1024, got {max_message_bytes}")
        self.max_time = _max_event_time_text(max_event_time)
        self.max_message_bytes = max_message_bytes
        # Lines up to this length cannot hold a field over the limit nor make a message over it.
        self.short_line = min(MAX_FIELD_BYTES // 4, (max_message_bytes - _MESSAGE_OVERHEAD) // 12)
        self.record_limit = max_message_bytes  # a quoted field still open after this many characters ends
        self.line_limit = max(MAX_LINE_CHARS, max_message_bytes + TRUNCATED_LINE_KEEP_CHARS)

    def report(self) -> dict[str, Any]:
        return {
            "min_event_time": MIN_EVENT_TIME + " UTC",
            "max_event_time": self.max_time + " UTC",
            "max_field_bytes": MAX_FIELD_BYTES,
            "max_message_bytes": self.max_message_bytes,
            "price": "decimal(18,2)",
        }


# --------------------------------------------------------------------------------------------
# Records: physical lines -> CSV records -> rows (rules invalid_utf8, column_count, and
# message_too_large / field_too_long for what cannot even be read as a row)
# --------------------------------------------------------------------------------------------
def _record_row(line: str, line_is_ascii: bool) -> list[str] | Reject:
    """The values of a record, or the Reject of a record that is not a row of values (invalid
    UTF-8, bad quoting, wrong column count). The plain case (no quote, ASCII) is inlined in
    ``_validate_file``."""
    row = (not line_is_ascii and _invalid_utf8_reject(line)) or (_quoted_row(line) if '"' in line else line.split(","))
    if type(row) is list and len(row) != len(EVENT_COLUMNS):
        return Reject("column_count", f"{len(row)} columns, expected {len(EVENT_COLUMNS)}")
    return row


def _truncated(raw: str) -> _TruncatedLine:
    """A line over the line limit as the reader gives it (one read whole in a block is cut here)."""
    if type(raw) is _TruncatedLine:
        return raw
    head = _TruncatedLine(raw[:TRUNCATED_LINE_KEEP_CHARS])
    head.total_chars = len(raw)
    return head


def _line_too_long(raw: _TruncatedLine, line_limit: int) -> str:
    return f"the line has {raw.total_chars:,} characters, over the {line_limit:,}-character line limit"


def _quoted_record(
    first: str, lines: Iterator[str], pushback: list[str], record_limit: int
) -> tuple[list[str], Reject | None]:
    """The physical lines of a record whose quoted field is open at the end of ``first``.

    When the field is not closed before the end of the file, a truncated line or
    ``record_limit`` characters, only the first line is the record (column_count) and the lines
    read after it are given back to the reader through ``pushback`` (``lines`` yields them again).
    """
    parts, size, at_end = [first], len(first), False
    for more in lines:
        if more is _EOF or type(more) is _TruncatedLine:
            at_end = more is _EOF
            if not at_end:
                parts.append(more)
            break
        parts.append(more)
        size += len(more) + 1
        if not _quote_open(more, True):
            return parts, None
        if size > record_limit:
            break
    pushback.extend(reversed(parts[1:]))
    where = "before the end of the file" if at_end else f"within {record_limit:,} characters"
    return [first], Reject(
        "column_count",
        f"a quoted field opened on this line is not closed {where}; "
        "only this line is quarantined, reading goes on with the next",
    )


def _invalid_utf8_reject(line: str) -> Reject | None:
    problem = _invalid_utf8_problem(line)
    return Reject("invalid_utf8", problem) if problem else None


def _quoted_row(line: str) -> list[str] | Reject:
    """The values of a record with quotes (the csv module's default dialect, strict)."""
    try:
        return next(csv.reader([line], strict=True))
    except csv.Error as err:
        if "field larger than field limit" in str(err):
            return Reject(
                "field_too_long",
                f"a quoted field is over {csv.field_size_limit():,} characters, "
                f"over the {MAX_FIELD_BYTES:,}-byte field limit",
            )
        return Reject("column_count", f"malformed CSV quoting: {err}")


# --------------------------------------------------------------------------------------------
# Rows: the value rules, in RULES order, and the staged message of a row that passes them
# --------------------------------------------------------------------------------------------
def _row_checker(limits: _Limits, accepted_days: list[str]) -> Callable[[list[str], str, bool], str | Reject]:
    """``check(row, line, line_is_ascii)``: the row's staged message, or the Reject of the first
    rule it breaks. The rules after the record's (``_validate_file``), one block each, in RULES order.

    It runs once per row, so each block is the rule's fast test inline (a repeated category code
    or brand is one dict lookup in a ``_Memo``; ids take ``_int64_json``'s fast path: a memo of
    50k product ids ran slower than the digit test); its ``_*_problem`` helper only runs for a
    broken row, to say why.
    ``control_character`` costs nothing on a clean row: the text columns' JSON (``_text_json``)
    finds it, and every other column's rule refuses it, so a row that breaks one of those is
    first searched for a control character (``_control_or``).
    """
    required = itemgetter(*(_COL[c] for c in _REQUIRED_COLUMNS))
    event_type_json = _EVENT_TYPE_JSON
    valid_times = _VALID_TIMES
    date_cache, price_cache, texts = _date_cache, _price_cache, _texts
    int64_json = _int64_json
    f_time, f_t, f_type, f_product, f_category, f_code, f_brand, f_price, f_user, f_session, f_end = _FRAGMENTS
    join = "".join
    add_day = accepted_days.append
    max_time = limits.max_time
    min_day, max_day = MIN_EVENT_TIME[:10], max_time[:10]
    short_line, max_message_bytes = limits.short_line, limits.max_message_bytes

    def check(row: list[str], line: str, line_is_ascii: bool) -> str | Reject:
        long_line = len(line) > short_line
        if long_line:
            problem = _long_field_problem(row)
            if problem:
                return Reject("field_too_long", problem)
        event_time, event_type, product_id, category_id, category_code, brand, price, user_id, user_session = row
        if "" in required(row):
            return _control_or(row, "required_field_missing", _required_problem(row))

        day, clock = event_time[:10], event_time[11:19]
        day_ok = date_cache.get(day)
        if day_ok is None:
            day_ok = _is_real_date(day)
        if not (
            day_ok
            and clock in valid_times
            and event_time[19:] == " UTC"
            and event_time[10] == " "
            and len(event_time) == 23
        ):
            return _control_or(row, "event_time_format", _event_time_problem(event_time))
        if (day < min_day or day >= max_day) and not (MIN_EVENT_TIME <= event_time[:19] <= max_time):
            return _control_or(
                row,
                "event_time_range",
                f"event_time {event_time!r} is outside [{MIN_EVENT_TIME} UTC, {max_time} UTC]",
            )

        type_json = event_type_json.get(event_type)
        if type_json is None:
            return _control_or(
                row, "event_type_domain", f"event_type {_short(event_type)} is not one of {', '.join(EVENT_TYPES)}"
            )

        product_json = int64_json(product_id)
        if product_json is None:
            return _control_or(row, "product_id_integral", _integral_problem("product_id", product_id))
        category_json = int64_json(category_id)
        if category_json is None:
            return _control_or(row, "category_id_integral", _integral_problem("category_id", category_id))
        user_json = int64_json(user_id)
        if user_json is None:
            return _control_or(row, "user_id_integral", _integral_problem("user_id", user_id))

        price_json = price_cache.get(price)
        if price_json is None:
            price_json = _price_json(price)
        if price_json is _PRICE_NOT_DECIMAL:
            return _control_or(row, "price_decimal", _price_problem(price))
        if price_json is _PRICE_OUT_OF_RANGE:
            return _control_or(row, "price_range", _price_range_problem(price))

        code_json = texts[category_code]
        brand_json = texts[brand]
        session_json: str | None
        if line_is_ascii and user_session.isalnum():
            session_json = '"' + user_session + '"'
        else:
            session_json = _text_json(user_session)
        if code_json is None or brand_json is None or session_json is None:
            return Reject("control_character", _control_character_problem(row) or "a value holds a control character")
        message = join(
            (  # type: ignore[arg-type]  # price_json's sentinels (bools) were returned as rejects above
                user_json,
                f_time,
                day,
                f_t,
                clock,
                f_type,
                type_json,
                f_product,
                product_json,
                f_category,
                category_json,
                f_code,
                code_json,
                f_brand,
                brand_json,
                f_price,
                price_json,
                f_user,
                user_json,
                f_session,
                session_json,
                f_end,
            )
        )
        if long_line:
            size = len(message) - 2  # key + value: without the tab and the newline
            if size > max_message_bytes:
                return Reject(
                    "message_too_large",
                    f"the Kafka message would be {size:,} bytes, over max_message_bytes={max_message_bytes:,}",
                )
        add_day(day)
        return message

    return check


def _control_or(row: Sequence[str], rule: str, detail: str) -> Reject:
    """The Reject of a row that breaks ``rule``, unless it holds a control character: that rule
    (``control_character``) comes first."""
    problem = _control_character_problem(row)
    return Reject("control_character", problem) if problem else Reject(rule, detail)


# --------------------------------------------------------------------------------------------
# Outputs: the staging file, the quarantine CSV, the duplicate check and the counts
# --------------------------------------------------------------------------------------------
class _Outputs:
    """Where rows go. Accepted rows are held back in batches until their duplicate check
    (``duplicate_row``); quarantine rows wait with them, so the quarantine CSV stays in line order."""

    def __init__(
        self, staging: IO[str], quarantine_file: IO[str], input_bytes: int, max_examples: int, long_record: int
    ) -> None:
        self.write = staging.write
        self.quarantine = csv.writer(quarantine_file)
        self.quarantine.writerow(QUARANTINE_COLUMNS)
        self.input_bytes = input_bytes
        self.max_examples = max_examples
        self.rejects: Counter = Counter()
        self.rejects_by_file: dict[str, Counter] = {}
        self.examples: dict[str, list[dict[str, Any]]] = {}
        self.events_by_date: Counter = Counter()
        self.seen: _DigestSet | None = None
        self.accepted = 0
        self.duplicate_check_seconds = 0.0
        # The held batch: the staged message, the record and its line number of each accepted
        # row, the quarantine rows; characters of long records and of held quarantine rows.
        self.messages: list[str] = []
        self.records: list[str] = []
        self.line_numbers: list[int] = []
        self.days: list[str] = []  # the event date of each held message (appended by the row checker)
        self.held: list[tuple[str, int, str, str, str]] = []
        self.held_chars = [0, 0]
        self.long_record = long_record
        self.source = ""
        self.file_rejects: Counter = Counter()

    def start_file(self, source: str) -> None:
        self.source = source
        self.file_rejects = self.rejects_by_file.setdefault(source, Counter())

    def reject(self, line_number: int, line: str, rule: str, detail: str, *, may_flush: bool = True) -> None:
        if type(line) is _TruncatedLine:
            line = line + f"...[truncated: the line has {line.total_chars:,} characters]"
        line, detail = _printable(line), _printable(detail)
        self.rejects[rule] += 1
        self.file_rejects[rule] += 1
        self.held.append((self.source, line_number, rule, detail, line))
        self.held_chars[1] += len(line)
        bucket = self.examples.setdefault(rule, [])
        if len(bucket) < self.max_examples:
            shown = (
                line
                if len(line) <= EXAMPLE_RAW_LINE_CHARS
                else (line[:EXAMPLE_RAW_LINE_CHARS] + f"...[{len(line):,} characters]")
            )
            bucket.append({"file": self.source, "line": line_number, "detail": detail, "raw_line": shown})
        if may_flush and (len(self.held) >= _BATCH_ROWS or self.held_chars[1] > _BATCH_CHARS):
            self.flush()

    def flush(self) -> None:
        """Duplicate-check the held rows, stage the new ones, write the quarantine rows."""
        messages, records = self.messages, self.records
        if messages:
            check_started = time.perf_counter()
            if self.seen is None:  # size the table from the input: bytes / bytes per row
                per_row = sum(map(len, records)) / len(records) + 1
                self.seen = _DigestSet(int(self.input_bytes / per_row * 1.05))
            repeated = self.seen.add_batch(_digests(records))
            self.duplicate_check_seconds += time.perf_counter() - check_started
            if repeated.any():
                for i in np.flatnonzero(repeated).tolist():
                    self.reject(
                        self.line_numbers[i],
                        records[i],
                        "duplicate_row",
                        "exact copy of an earlier row",
                        may_flush=False,
                    )
                kept = [not r for r in repeated.tolist()]
                messages = list(compress(messages, kept))
                self.days[:] = compress(self.days, kept)
            self.events_by_date.update(self.days)
            for start in range(0, len(messages), 2048):  # ~600 KB at a time: one huge
                self.write("".join(messages[start : start + 2048]))  # join would cost 5x more
            self.accepted += len(messages)
        if self.held:
            self.held.sort(key=itemgetter(1))
            self.quarantine.writerows(self.held)
        self.messages.clear()
        self.records.clear()
        self.line_numbers.clear()
        self.days.clear()
        self.held.clear()
        self.held_chars[0] = self.held_chars[1] = 0

    def fill(self, result: ValidationResult) -> None:
        result.rows_accepted = self.accepted
        result.rows_quarantined = sum(self.rejects.values())
        result.rejects_by_rule.update(self.rejects)
        result.rejects_by_file = {f: dict(c) for f, c in self.rejects_by_file.items()}
        result.examples = self.examples
        result.events_by_date = {day: n for day, n in self.events_by_date.items() if n}
        result.duplicate_check = {
            "distinct_rows": len(self.seen) if self.seen else 0,
            "table_bytes": self.seen.nbytes if self.seen else 0,
            "seconds": round(self.duplicate_check_seconds, 3),
        }


# --------------------------------------------------------------------------------------------
# Core
# --------------------------------------------------------------------------------------------
def resolve_input(input_path: str | os.PathLike) -> list[Path]:
    """A file, or a glob of files (sorted). Raises FileNotFoundError when nothing matches.

    For trusted paths (CLI, tests, benchmarks). The DAG resolves user-given paths with
    ``ecommerce_profiles.core.inputs`` instead, which confines them to the data directory.
    """
    text = os.fspath(input_path)
    if glob.has_magic(text):
        paths = [Path(p) for p in sorted(glob.glob(text)) if Path(p).is_file()]
    else:
        paths = [Path(text)] if Path(text).is_file() else []
    if not paths:
        raise FileNotFoundError(f"no input CSV file matches {text!r}")
    return paths


def validate_files(
    paths: Sequence[str | os.PathLike],
    staging_path: str | os.PathLike,
    quarantine_path: str | os.PathLike,
    *,
    max_examples: int = MAX_EXAMPLES_PER_RULE,
    max_event_time: datetime | date | str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> ValidationResult:
    """Validate ``paths`` (one run's input) into a staging file and a quarantine CSV.

    :param max_event_time: latest accepted event_time (rule ``event_time_range``); a datetime
        (naive = UTC), a date (through its end) or ISO text. Default: now (UTC) + 1 day.
    :param max_message_bytes: largest staged Kafka message, key + value in bytes (rule
        ``message_too_large``); keep it under the broker's ``message.max.bytes``.

    Both outputs are written under a temporary name and renamed at the end, so a failed run
    never leaves a half-written staging file that looks complete. Duplicates are detected
    across all files of the run. ``*.gz`` files are decompressed on the fly. Raises
    HeaderError for a file whose header is not the event header (FileFormatError, a
    HeaderError, for one that is not readable as text CSV).
    """
    started = time.perf_counter()
    limits = _Limits(max_event_time, max_message_bytes)
    staging_path, quarantine_path = Path(staging_path), Path(quarantine_path)
    staging_path.parent.mkdir(parents=True, exist_ok=True)
    quarantine_path.parent.mkdir(parents=True, exist_ok=True)
    files = [Path(p) for p in paths]
    result = ValidationResult(
        files=[str(p) for p in files], staging_path=str(staging_path), quarantine_path=str(quarantine_path)
    )
    result.limits = limits.report()
    staging_tmp = staging_path.with_name(staging_path.name + ".tmp")
    quarantine_tmp = quarantine_path.with_name(quarantine_path.name + ".tmp")
    input_bytes = sum(os.path.getsize(p) * (6 if _is_gzip(p) else 1) for p in files if p.is_file())
    try:
        with (
            open(staging_tmp, "w", encoding="ascii", buffering=1 << 20) as staging,
            open(quarantine_tmp, "w", encoding="utf-8", newline="") as quarantine_file,
        ):
            # Records longer than this count towards a batch's _BATCH_CHARS.
            long_record = min(limits.short_line, _LONG_LINE_CHARS)
            outputs = _Outputs(staging, quarantine_file, input_bytes, max_examples, long_record)
            check = _row_checker(limits, outputs.days)
            for path in files:
                result.rows_read += _validate_file(path, limits, check, outputs, result)
        os.replace(staging_tmp, staging_path)
        os.replace(quarantine_tmp, quarantine_path)
    finally:
        for tmp in (staging_tmp, quarantine_tmp):
            if tmp.exists():
                tmp.unlink()
    outputs.fill(result)
    result.seconds = time.perf_counter() - started
    assert result.rows_read == result.rows_accepted + result.rows_quarantined, (
        f"validation lost rows: read {result.rows_read}, accepted {result.rows_accepted}, "
        f"quarantined {result.rows_quarantined}"
    )
    return result


def _validate_file(
    path: Path,
    limits: _Limits,
    check: Callable[[list[str], str, bool], str | Reject],
    outputs: _Outputs,
    result: ValidationResult,
) -> int:
    """Read one file's rows into ``outputs``; return how many rows it had.

    The loop runs once per physical line: it turns lines into records (``_quoted_record``),
    records into rows (``_record_row``; the common ASCII, quote-free case inline) and rows into
    staged messages or quarantine rows (``check``, ``_row_checker``)."""
    outputs.start_file(str(path))
    reject, flush = outputs.reject, outputs.flush
    # An accepted row is held for its batch's duplicate check (``_Outputs.flush``); this runs
    # once per row, so the batch's lists are local names here.
    messages, records, line_numbers, held_chars = (
        outputs.messages,
        outputs.records,
        outputs.line_numbers,
        outputs.held_chars,
    )
    long_record = outputs.long_record
    n_columns = len(EVENT_COLUMNS)
    short_line, line_limit, record_limit = limits.short_line, limits.line_limit, limits.record_limit
    rows_read = blank_lines = 0
    pushback: list[str] = []  # lines _quoted_record gives back to the reader
    handle = _open_text(path)
    try:
        lines = _physical_lines(handle, _read_header(path, handle), pushback, limits.line_limit)
        line_number = 1
        joined = 0  # extra physical lines of the last record (quoted newlines)
        for raw in lines:
            # A physical line -> a record: blank lines are not rows; a line over the line limit
            # is message_too_large; a quoted field may go on over the next lines (the record is
            # numbered by its first line), unless it is never closed (column_count).
            line_number += 1
            if joined:
                line_number += joined
                joined = 0
            line = raw.rstrip("\r")
            if not line:
                if raw is _EOF:
                    break
                blank_lines += 1
                continue
            rows_read += 1
            if len(line) > short_line and (type(raw) is _TruncatedLine or len(raw) > line_limit):
                raw = _truncated(raw)
                reject(line_number, raw, "message_too_large", _line_too_long(raw, line_limit))
                continue
            if '"' in line and _quote_open(line, False):
                parts, problem = _quoted_record(raw, lines, pushback, record_limit)
                if problem:
                    reject(line_number, line, problem.rule, problem.detail)
                    continue
                joined = len(parts) - 1
                line = "\n".join(parts).rstrip("\r")
            # The record -> its values -> the row's staged message, or the first rule it breaks.
            line_is_ascii = line.isascii()
            if line_is_ascii and '"' not in line:
                fields = line.split(",")
                outcome = check(fields, line, True) if len(fields) == n_columns else _record_row(line, True)
            else:
                row = _record_row(line, line_is_ascii)
                outcome = row if isinstance(row, Reject) else check(row, line, line_is_ascii)
            if type(outcome) is str:  # accepted: held for its batch's duplicate check
                if len(line) > long_record:
                    held_chars[0] += len(line) + len(outcome)
                messages.append(outcome)
                records.append(line)
                line_numbers.append(line_number)
                if len(messages) >= _BATCH_ROWS or held_chars[0] > _BATCH_CHARS:
                    flush()
            else:  # a Reject (a record with the wrong column count never becomes a row)
                rejected = cast(Reject, outcome)
                reject(line_number, line, rejected.rule, rejected.detail)
        outputs.flush()
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        # Not the message's text: BadGzipFile quotes the file's first bytes.
        raise FileFormatError(f"{path}: not a readable gzip file ({type(err).__name__})") from None
    finally:
        handle.close()
    result.blank_lines += blank_lines
    return rows_read


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
        f"above max_reject_fraction={max_reject_fraction:.2%} (duplicate rows are not counted). " + " | ".join(parts)
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
