"""The label window of a point-in-time training set, and whether the archive covers it.

Pure date arithmetic shared by both sides: the training-set DAG decides which snapshot dates are
ready (``check_ready``) and the Spark job (spark_jobs/training_set.py) builds them with the same
rule, so neither side imports the other. The rule itself is in docs/profiles.md, "Training sets
(point in time)".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_PURCHASE_HORIZON_DAYS = 7
DEFAULT_REVENUE_HORIZON_DAYS = 30
MAX_HORIZON_DAYS = 366


def as_date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.datetime):
        raise TypeError("snapshot_date must be a date, not a datetime")
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def purchased_column(days: int) -> str:
    return f"purchased_within_{days}d"


def revenue_column(days: int) -> str:
    return f"revenue_within_{days}d"


def _days(values: int | Iterable[int], what: str) -> tuple[int, ...]:
    days: tuple[object, ...] = tuple(values) if isinstance(values, (tuple, list, set, frozenset)) else (values,)
    for n in days:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_HORIZON_DAYS:
            raise ValueError(f"{what} horizon must be a whole number of days in 1..{MAX_HORIZON_DAYS}, got {n!r}")
    return tuple(sorted({int(n) for n in days}))  # type: ignore[call-overload]  # every n was checked to be an int


@dataclass(frozen=True, init=False)
class LabelHorizons:
    """Which labels to compute: one ``purchased_within_{n}d`` per purchase horizon and one
    ``revenue_within_{n}d`` per revenue horizon (whole days; ints or iterables of ints, kept
    as sorted tuples)."""

    purchase_days: tuple[int, ...]
    revenue_days: tuple[int, ...]

    def __init__(
        self,
        purchase_days: int | Iterable[int] = (DEFAULT_PURCHASE_HORIZON_DAYS,),
        revenue_days: int | Iterable[int] = (DEFAULT_REVENUE_HORIZON_DAYS,),
    ) -> None:
        object.__setattr__(self, "purchase_days", _days(purchase_days, "purchase"))
        object.__setattr__(self, "revenue_days", _days(revenue_days, "revenue"))
        if not self.purchase_days and not self.revenue_days:
            raise ValueError("at least one label horizon is needed")

    @property
    def max_days(self) -> int:
        """The longest horizon: the label window of the whole set ends on S + max_days."""
        return max((*self.purchase_days, *self.revenue_days))

    @property
    def label_columns(self) -> list[str]:
        return [purchased_column(n) for n in self.purchase_days] + [revenue_column(n) for n in self.revenue_days]


def label_window_end(snapshot_date: dt.date | str, horizons: LabelHorizons) -> dt.date:
    """The last UTC date whose events any label of ``horizons`` uses: S + max horizon."""
    return as_date(snapshot_date) + dt.timedelta(days=horizons.max_days)


class TrainingSetNotReady(RuntimeError):
    """The archive cannot give a complete, point-in-time training set for S (nothing is written)."""


def check_ready(dates: list[dt.date], snapshot: dt.date, horizons: LabelHorizons) -> None:
    """Raise TrainingSetNotReady unless the archive covers S's features and its whole label window."""
    window_end = label_window_end(snapshot, horizons)
    if not dates:
        raise TrainingSetNotReady(f"the event archive is empty: no training set for {snapshot}")
    if dates[-1] < window_end:
        raise TrainingSetNotReady(
            f"labels not complete yet for snapshot {snapshot}: the {horizons.max_days}-day label window "
            f"ends on {window_end} but the archive's last event date is {dates[-1]} "
            f"(ready once events of {window_end} are archived, {(window_end - dates[-1]).days} day(s) from now)"
        )
    if dates[0] > snapshot:
        raise TrainingSetNotReady(
            f"no history for snapshot {snapshot}: the archive starts on {dates[0]}, so there are no "
            "features as of that date"
        )
