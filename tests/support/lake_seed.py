"""Archive files written straight into the lake, for tests of what reads the archive (the
training-set job and DAG) without running the profile job first.

The Parquet types come from the one event schema (``ecommerce_profiles.core.schemas``) and the
paths from ``ecommerce_profiles.core.lake``, as the profile job's archive stage writes them.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from ecommerce_profiles.core import lake
from ecommerce_profiles.core.schemas import EVENT_COLUMNS, EVENT_FIELDS

_ARROW_TYPES = {
    "string": pa.string(),
    "int": pa.int32(),
    "long": pa.int64(),
    "double": pa.float64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
ARCHIVE_EVENT_SCHEMA = pa.schema([(f.name, _ARROW_TYPES[f.type]) for f in EVENT_FIELDS])


def archive_file_key(event_date: object, batch: str, part: str = "part-00000.parquet") -> str:
    """raw/events/event_date=<date>/batch=<batch>/<part>: one batch's file of one event date."""
    return f"{lake.archive_key()}/{lake.EVENT_DATE_PARTITION}={event_date}/{lake.BATCH_PARTITION}={batch}/{part}"


def events_table(rows: list[dict]) -> pa.Table:
    """Archive rows (event columns only, extra keys ignored) with the archive's types."""
    return pa.Table.from_pylist([{c: r[c] for c in EVENT_COLUMNS} for r in rows], schema=ARCHIVE_EVENT_SCHEMA)


def events_parquet(rows: list[dict]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(events_table(rows), buffer)
    return buffer.getvalue()
