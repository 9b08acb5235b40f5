"""Data of the daily-run scenario: an archive of N days of daily operation, and the next day's drop.

The archive is written with pyarrow in exactly the layout and schema the Spark job writes and
reads (``raw/events/event_date=<D>/batch=<B>/part-*.snappy.parquet``, the job's archive columns
minus the two partition columns, REQUIRED where the event schema says not-null, timestamps as
INT64 micros UTC), so building 150 days takes seconds instead of a Spark backfill.

It looks like N days of the DAG's daily runs: every distinct event stored once; an event is in
the batch ``drop-<its date>``, except a ``late_share`` that arrived with the next day's drop and
is stored beside the others in ``batch=drop-<next date>``. The next day's drop (the one the
benchmark runs through the whole DAG) holds that day's events, the last archived day's late
events, and ``redelivered_share`` copies of events the archive already holds.

Built once per (days, events per day, seed, shares) under ``<data dir>/bench/`` and reused.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
import uuid
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from ecommerce_profiles.core import lake
from ecommerce_profiles.core.inputs import DROP_COMPLETE_MARKER, drop_dir
from ecommerce_profiles.core.schemas import EVENT_COLUMNS, EVENT_FIELDS, EVENT_TIME_FORMAT

FIRST_DAY = "2020-09-24"  # the Kaggle file's first date
PARQUET_COMPRESSION = "snappy"  # Spark's default, as the job writes
_ARROW_TYPES = {
    "timestamp": ("timestamp", "us", "UTC"),
    "string": ("string",),
    "long": ("int64",),
    "double": ("float64",),
}


@dataclass(frozen=True)
class DailyScenario:
    archive_days: int = 150
    daily_events: int = 6_000
    seed: int = 42
    late_share: float = 0.05
    redelivered_share: float = 0.01
    first_day: str = FIRST_DAY

    @property
    def run_date(self) -> str:
        """The date of the drop run through the DAG: the day after the archive's last."""
        return (date.fromisoformat(self.first_day) + timedelta(days=self.archive_days)).isoformat()

    @property
    def name(self) -> str:
        return (
            f"daily_{self.archive_days}d_{self.daily_events}_seed{self.seed}"
            f"_late{self.late_share:g}_again{self.redelivered_share:g}"
        )


def archive_arrow_schema():
    """The columns of an archive Parquet file: the event schema (ecommerce_profiles.core.schemas)
    with its nullability; event_date and batch are Hive partitions, not columns."""
    import pyarrow as pa

    def arrow_type(field):
        kind, *args = _ARROW_TYPES[field.type]
        return pa.timestamp(args[0], tz=args[1]) if kind == "timestamp" else getattr(pa, kind)()

    return pa.schema([pa.field(f.name, arrow_type(f), nullable=f.nullable) for f in EVENT_FIELDS])


def events_table(rows: list[list[str]]):
    """CSV rows (strings, as validated) -> the typed events the job archives for them.

    Typed as the job types them (profile_transforms._typed_events): the time is UTC, empty
    category_code / brand / user_session are null, ids are int64 and the price a double.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = archive_arrow_schema()
    columns = list(zip(*rows)) if rows else [[] for _ in EVENT_COLUMNS]
    arrays = []
    for field, values in zip(EVENT_FIELDS, columns):
        text = pa.array(values, pa.string())
        if field.type == "timestamp":
            # "2020-09-24 11:57:06 UTC" (schemas.EVENT_TIME_FORMAT, as the generator writes it): UTC
            naive = pc.strptime(pc.utf8_slice_codeunits(text, 0, 19), format=EVENT_TIME_FORMAT[:-4], unit="us")
            array = naive.cast(schema.field(field.name).type)  # the text is UTC: attach the zone
        elif field.nullable:
            array = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        else:
            array = text.cast(schema.field(field.name).type)
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=schema)


def write_archive_partition(rows: list[list[str]], root: Path, event_date: str, batch: str) -> Path:
    """One (event_date, batch) partition under ``root`` (the bucket's top), as a Spark task writes it."""
    import pyarrow.parquet as pq

    folder = root / lake.archive_key() / f"{lake.EVENT_DATE_PARTITION}={event_date}" / f"{lake.BATCH_PARTITION}={batch}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-00000-{uuid.uuid4()}.c000.{PARQUET_COMPRESSION}.parquet"
    table = events_table(sorted(rows))
    pq.write_table(table, path, compression=PARQUET_COMPRESSION)
    return path


def _read_rows(csv_path: Path) -> tuple[list[str], list[list[str]]]:
    with open(csv_path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, [row for row in reader if row]


def split_history(
    rows: list[list[str]], scenario: DailyScenario
) -> tuple[dict[tuple[str, str], list[list[str]]], list[list[str]]]:
    """Rows of ``archive_days + 1`` days -> ({(event_date, batch): distinct rows}, the drop's rows).

    Deterministic for the scenario's seed. Every distinct archived event is in exactly one
    partition; the drop holds the run date's rows as generated (their duplicates included), the
    late rows of the last archived day, and re-delivered copies of archived events.
    """
    rng = random.Random(scenario.seed)
    run_date = scenario.run_date
    partitions: dict[tuple[str, str], list[list[str]]] = {}
    drop: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for row in rows:
        day = row[0][:10]
        if day >= run_date:
            drop.append(row)
            continue
        key = tuple(row)
        if key in seen:  # an exact duplicate: the archive stores the event once
            continue
        seen.add(key)
        arrived = day
        if rng.random() < scenario.late_share:
            arrived = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        if arrived >= run_date:  # late for the last archived day: comes with the benchmark's drop
            drop.append(row)
            seen.discard(key)
            continue
        partitions.setdefault((day, lake.daily_batch_id(arrived)), []).append(row)
    archived = [list(k) for k in seen]
    archived.sort()
    again = rng.sample(archived, min(len(archived), int(round(len(drop) * scenario.redelivered_share))))
    drop += again
    rng.shuffle(drop)
    return partitions, drop


def build(scenario: DailyScenario, cache_root: Path, progress=print) -> dict[str, Any]:
    """The scenario's archive and drop under ``cache_root/<name>/`` (built once); its metadata.

    Layout: ``lake/raw/events/...`` (upload ``lake/`` to a bucket's top) and
    ``incoming/<run date>/events.csv`` + ``_SUCCESS`` (copy into a data directory).
    """
    from bench.generator import write_events_csv

    folder = cache_root / scenario.name
    meta_path = folder / "scenario.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        meta["cached"] = True
        return meta
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    days = scenario.archive_days + 1
    source = partial / "history.csv"
    last_day = (date.fromisoformat(scenario.first_day) + timedelta(days=days - 1)).isoformat()
    progress(f"daily scenario: generating {days} days x {scenario.daily_events:,} events -> {source}")
    generated = write_events_csv(
        source, days * scenario.daily_events, seed=scenario.seed, start=scenario.first_day, end=last_day
    )
    header, rows = _read_rows(source)
    partitions, drop = split_history(rows, scenario)
    progress(f"daily scenario: writing {len(partitions)} archive partitions with pyarrow")
    for (event_date, batch), part_rows in sorted(partitions.items()):
        write_archive_partition(part_rows, partial / "lake", event_date, batch)
    drop_folder = drop_dir(partial, scenario.run_date)
    drop_folder.mkdir(parents=True)
    with open(drop_folder / "events.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(drop)
    (drop_folder / DROP_COMPLETE_MARKER).touch()
    archived = {tuple(r) for part in partitions.values() for r in part}
    drop_distinct = {tuple(r) for r in drop}
    meta = {
        **asdict(scenario),
        "run_date": scenario.run_date,
        "generated_rows": generated["rows"],
        "archive_events": len(archived),
        "archive_dates": len({d for d, _b in partitions}),
        "archive_partitions": len(partitions),
        "archive_bytes": sum(p.stat().st_size for p in (partial / "lake").rglob("*.parquet")),
        "drop_rows": len(drop),
        # what the job must report for the drop (its summary keys); the validator quarantines
        # exact duplicate rows of a drop, so Kafka gets each distinct row once
        "expected": {
            "kafka_records": len(drop_distinct),
            "events_in_run": len(drop_distinct),
            "already_archived_by_other_batches": len(drop_distinct & archived),
            "events_archived": len(drop_distinct - archived),
            "archive_events_total": len(archived | drop_distinct),
        },
    }
    source.unlink()  # the archive and the drop are what the scenario needs
    meta_path_partial = partial / "scenario.json"
    meta_path_partial.write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    meta["cached"] = False
    return meta


def install_drop(scenario_dir: Path, data_dir: Path, run_date: str) -> Path:
    """Copy the scenario's drop into ``data_dir/incoming/<run date>/`` (events first, _SUCCESS last)."""
    source = drop_dir(scenario_dir, run_date)
    target = drop_dir(data_dir, run_date)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "events.csv", target / "events.csv")
    (target / DROP_COMPLETE_MARKER).touch()
    return target
