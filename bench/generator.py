"""Deterministic generator of clickstream CSVs shaped like the Kaggle electronics-store dataset.

The real file (``events.csv``, 885,129 rows, 2020-09-24 -> 2021-02-28) cannot be downloaded in CI,
so tests, demos and benchmarks use files written here instead. Same columns and formats, and the
same shape where it matters to the pipeline:

* event mix view/cart/purchase as in the real file (remove_from_cart optional, 0 by default);
* heavy-tailed users: most have one session of one or two events, a few have hundreds of events;
* sessions hold several events; carts and purchases repeat the product viewed just before in
  the same session;
* category_code empty in ~26.7% of rows and brand in ~24.0% (per category / per product, so a
  product always shows the same values), a few 0.00 prices, ~1 exact duplicate row per 1000;
* rows sorted by event_time; user_id 19 digits, user_session 10 alphanumeric characters.

Everything is drawn from one seeded numpy Generator, so the same arguments give the same bytes.
The work is vectorised per column and the lines are assembled in chunks, which keeps it well
above 300k rows/s (20M-row benchmark files take about a minute).

Optionally ``bad_rows_per_rule`` corrupted rows per validation rule are planted (for tests and
the demo); ``BAD_ROW_VARIANTS`` says how each rule is broken.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from ecommerce_profiles.core.schemas import EVENT_COLUMNS

# Facts about the real dataset that the defaults reproduce.
DATASET_SHAPE = {
    "rows": 885_129,
    "event_types": {"view": 793_748, "cart": 54_035, "purchase": 37_346},
    "users": 407_283,
    "products": 53_453,
    "first_date": "2020-09-24",
    "last_date": "2021-02-28",
    "empty_category_code_rate": 0.267,
    "empty_brand_rate": 0.240,
}
DEFAULT_EVENT_MIX = {name: count / DATASET_SHAPE["rows"] for name, count in DATASET_SHAPE["event_types"].items()}
USERS_PER_EVENT = DATASET_SHAPE["users"] / DATASET_SHAPE["rows"]
EVENTS_PER_PRODUCT = DATASET_SHAPE["rows"] / DATASET_SHAPE["products"]

CATEGORY_CODES = (
    "electronics.telephone",
    "electronics.smartphone",
    "electronics.tablet",
    "electronics.clocks",
    "electronics.video.tv",
    "electronics.video.projector",
    "electronics.audio.headphone",
    "electronics.audio.acoustic",
    "electronics.audio.microphone",
    "electronics.camera.photo",
    "electronics.camera.video",
    "computers.notebook",
    "computers.desktop",
    "computers.ebooks",
    "computers.components.videocards",
    "computers.components.cpu",
    "computers.components.motherboard",
    "computers.components.memory",
    "computers.components.hdd",
    "computers.components.power_supply",
    "computers.components.cooler",
    "computers.components.sound_card",
    "computers.peripherals.printer",
    "computers.peripherals.monitor",
    "computers.peripherals.mouse",
    "computers.peripherals.keyboard",
    "computers.peripherals.camera",
    "computers.network.router",
    "stationery.cartrige",
    "appliances.kitchen.refrigerators",
    "appliances.kitchen.microwave",
    "appliances.environment.vacuum",
    "appliances.personal.scales",
    "auto.accessories.player",
    "auto.accessories.videoregister",
    "furniture.office.chair",
    "construction.tools.drill",
    "sport.bicycle",
    "country_yard.cultivator",
    "kids.toys",
)
BRANDS = (
    "samsung",
    "apple",
    "asus",
    "lenovo",
    "hp",
    "acer",
    "msi",
    "gigabyte",
    "xiaomi",
    "huawei",
    "sony",
    "lg",
    "canon",
    "nikon",
    "logitech",
    "kingston",
    "palit",
    "sapphire",
    "amd",
    "intel",
    "western digital",
    "seagate",
    "toshiba",
    "philips",
    "panasonic",
    "dell",
    "epson",
    "brother",
    "tp-link",
    "d-link",
    "zalman",
    "thermaltake",
    "corsair",
    "crucial",
    "transcend",
    "sandisk",
    "jbl",
    "sven",
    "defender",
    "a4tech",
    "genius",
    "razer",
    "steelseries",
    "hyperx",
    "benq",
    "aoc",
    "viewsonic",
    "iiyama",
    "garmin",
    "nokia",
    "motorola",
    "oppo",
    "vivo",
    "realme",
    "honor",
    "zte",
    "alcatel",
    "meizu",
    "pioneer",
    "kenwood",
)

# How ``bad_rows_per_rule`` breaks a row for each validation rule (names as in validation.py).
# Each entry is a function of the row's fields (list of 9 strings) returning the corrupted line
# (str; written as UTF-8 with surrogateescape, so "\udcXX" plants the raw byte 0xXX).
BAD_ROW_VARIANTS: dict[str, tuple[Callable[[list[str]], str], ...]] = {
    "column_count": (
        lambda f: ",".join(f[:-1]),
        lambda f: ",".join(f + ["extra"]),
    ),
    "required_field_missing": (
        lambda f: ",".join(f[:2] + [""] + f[3:]),  # product_id
        lambda f: ",".join(f[:7] + [""] + f[8:]),  # user_id
        lambda f: ",".join(f[:6] + [""] + f[7:]),  # price
        lambda f: ",".join([f[0], ""] + f[2:]),  # event_type
    ),
    "event_time_format": (
        lambda f: ",".join([f[0][:4] + "-02-30" + f[0][10:]] + f[1:]),  # not a real date
        lambda f: ",".join([f[0][:10] + "T" + f[0][11:19] + "Z"] + f[1:]),  # ISO, not the CSV form
        lambda f: ",".join([f[0][:19]] + f[1:]),  # no " UTC"
        lambda f: ",".join([f[0][:11] + "25:61:00 UTC"] + f[1:]),  # impossible time
    ),
    "event_type_domain": (
        lambda f: ",".join([f[0], "click"] + f[2:]),
        lambda f: ",".join([f[0], "View"] + f[2:]),
    ),
    "product_id_integral": (
        lambda f: ",".join(f[:2] + [f[2] + ".5"] + f[3:]),
        lambda f: ",".join(f[:2] + ["P" + f[2]] + f[3:]),
    ),
    "category_id_integral": (
        lambda f: ",".join(f[:3] + [f[3] + "0"] + f[4:]),  # 20 digits: beyond int64
        lambda f: ",".join(f[:3] + ["cat-" + f[3][:6]] + f[4:]),
    ),
    "price_decimal": (
        lambda f: ",".join(f[:6] + ["-" + f[6]] + f[7:]),
        lambda f: ",".join(f[:6] + ["NaN"] + f[7:]),
        lambda f: ",".join(f[:6] + ["inf"] + f[7:]),
        lambda f: ",".join(f[:6] + [f[6] + ".5"] + f[7:]),
    ),
    "user_id_integral": (
        lambda f: ",".join(f[:7] + ["9" * 20] + f[8:]),  # beyond int64
        lambda f: ",".join(f[:7] + [f[7][:10] + "x" + f[7][11:]] + f[8:]),
    ),
    # The limits of what downstream can store. Out-of-range times are quoted, so that
    # scripts/split_daily_drops.py (which reads a row's date from its first 10 bytes) keeps them
    # with the row before instead of opening a drop for 9999-12-31.
    "event_time_range": (
        lambda f: ",".join(['"9999-12-31 23:59:59 UTC"'] + f[1:]),
        lambda f: ",".join(['"1969-12-31 23:59:59 UTC"'] + f[1:]),
    ),
    "price_range": (
        lambda f: ",".join(f[:6] + ["10000000000000000.00"] + f[7:]),  # 1e16: beyond decimal(18,2)
        lambda f: ",".join(f[:6] + [f[6] + "1"] + f[7:]),  # a third decimal
    ),
    "field_too_long": (
        lambda f: ",".join(f[:5] + ["b" * 40_000] + f[6:]),  # a 40 KB brand
    ),
    "message_too_large": (
        lambda f: ",".join(f[:5] + ["b" * (2 * 1024 * 1024 + 1)] + f[6:]),  # a line over 2 MiB
    ),
    "control_character": (
        lambda f: ",".join(f[:5] + ["\x1b[31m" + (f[5] or "brand") + "\x1b[0m"] + f[6:]),  # ANSI colours in brand
        lambda f: ",".join(f[:8] + [f[8][:3] + "\x00" + f[8][3:]]),  # a NUL byte in user_session
        lambda f: ",".join(f[:4] + [f[4] + "\x07"] + f[5:]),  # BEL in category_code
    ),
    # Written with surrogateescape: \udcff becomes the byte 0xff, \udcc3 a lone UTF-8 lead byte.
    "invalid_utf8": (
        lambda f: ",".join(f[:5] + ["caf\udcc3"] + f[6:]),
        lambda f: ",".join(f[:8] + [f[8][:5] + "\udcff" + f[8][6:]]),
    ),
}

_USER_ID_PREFIX = b"1515915625"
_TOKEN_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)
# Share of events per UTC hour (a store with European/Russian customers: busy 6-18 UTC).
_HOUR_WEIGHTS = np.array(
    [
        1.0,
        0.7,
        0.6,
        0.8,
        1.5,
        2.5,
        3.8,
        4.8,
        5.4,
        5.8,
        5.9,
        5.9,
        5.8,
        5.7,
        5.6,
        5.6,
        5.5,
        5.2,
        4.7,
        4.0,
        3.2,
        2.5,
        1.8,
        1.3,
    ]
)


def _greedy_share(rng: np.random.Generator, weights: np.ndarray, target: float) -> np.ndarray:
    """Pick items (in random order) whose weights add up as close as possible to target * total."""
    chosen = np.zeros(len(weights), dtype=bool)
    goal = target * float(weights.sum())
    acc = 0.0
    for i in rng.permutation(len(weights)).tolist():
        w = float(weights[i])
        if abs(acc + w - goal) < abs(acc - goal):
            chosen[i] = True
            acc += w
    return chosen


def _weighted_draw(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    cumulative = np.cumsum(weights, dtype=np.float64)
    cumulative /= cumulative[-1]
    return np.searchsorted(cumulative, rng.random(size), side="right").clip(0, len(weights) - 1)


def _brand_names(rng: np.random.Generator, n: int) -> list[str]:
    names = list(BRANDS[:n])
    syllables = ("ka", "ro", "tex", "vi", "lo", "mi", "zen", "tra", "no", "pex", "sa", "dor", "lux", "qi")
    seen = set(names)
    while len(names) < n:
        name = "".join(syllables[i] for i in rng.integers(0, len(syllables), rng.integers(2, 4)))
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _epoch_day(day: str | date) -> int:
    d = date.fromisoformat(day) if isinstance(day, str) else day
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) // 86400


def write_events_csv(
    path: str | Path,
    n_events: int,
    seed: int = 42,
    start: str = DATASET_SHAPE["first_date"],
    end: str = DATASET_SHAPE["last_date"],
    *,
    duplicate_rate: float = 0.001,
    event_mix: dict[str, float] | None = None,
    empty_category_code_rate: float = DATASET_SHAPE["empty_category_code_rate"],
    empty_brand_rate: float = DATASET_SHAPE["empty_brand_rate"],
    zero_price_rate: float = 0.002,
    empty_session_rate: float = 0.0005,
    n_users: int | None = None,
    n_products: int | None = None,
    bad_rows_per_rule: int = 0,
    chunk_rows: int = 250_000,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write ``n_events`` data rows (plus the header) to ``path``; return summary statistics.

    ``n_events`` counts every data row, including the planted duplicates and bad rows.
    ``start``/``end`` are inclusive UTC dates. ``event_mix`` maps event types to shares (default:
    the real file's view/cart/purchase mix). ``progress(rows_written, n_events)`` is called
    after each chunk.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    mix = dict(event_mix or DEFAULT_EVENT_MIX)
    if "view" not in mix:
        raise ValueError("event_mix must include 'view'")

    n_bad = bad_rows_per_rule * len(BAD_ROW_VARIANTS)
    n_dups = int(round(n_events * duplicate_rate))
    n_base = n_events - n_dups - n_bad
    if n_base < 1:
        raise ValueError(f"n_events={n_events} is too small for {n_dups} duplicates and {n_bad} bad rows")

    # ---- catalogue: categories, brands, products ---------------------------------------------
    n_products = n_products or int(min(DATASET_SHAPE["products"], max(20, n_base / EVENTS_PER_PRODUCT)))
    n_categories = int(min(700, max(8, n_products // 60)))
    n_brands = int(min(1000, max(8, n_products // 50)))

    product_weight = 1.0 / (rng.permutation(n_products) + 10.0)  # Zipf-like popularity
    product_category = _weighted_draw(rng, 1.0 / (np.arange(n_categories) + 3.0), n_products)
    product_brand = _weighted_draw(rng, 1.0 / (np.arange(n_brands) + 2.0), n_products)
    category_weight = np.bincount(product_category, weights=product_weight, minlength=n_categories)
    category_code_empty = _greedy_share(rng, category_weight, empty_category_code_rate)
    brand_empty = _greedy_share(rng, product_weight, empty_brand_rate)

    category_ids = (2144415922528452715 + np.sort(rng.choice(10**12, n_categories, replace=False))).tolist()
    category_codes = [
        "" if category_code_empty[c] else CATEGORY_CODES[i]
        for c, i in enumerate(rng.integers(0, len(CATEGORY_CODES), n_categories).tolist())
    ]
    brand_names = _brand_names(rng, n_brands)
    product_ids = (1_000_000 + np.sort(rng.choice(4_000_000, n_products, replace=False))).tolist()
    category_price = np.exp(rng.normal(4.3, 1.1, n_categories))
    product_cents = np.maximum(
        1, np.round(category_price[product_category] * np.exp(rng.normal(0, 0.45, n_products)) * 100)
    ).astype(np.int64)
    # "product_id,category_id,category_code,brand," per product; price and the rest come later.
    product_text = [
        f"{pid},{category_ids[c]},{category_codes[c]},{'' if empty else brand_names[b]},"
        for pid, c, b, empty in zip(
            product_ids, product_category.tolist(), product_brand.tolist(), brand_empty.tolist()
        )
    ]
    prices = [f"{c // 100}.{c % 100:02d}," for c in product_cents.tolist()]

    # ---- sessions: length mixes short visits and a few long browsing sessions ----------------
    estimate = int(n_base / 1.8 * 1.1) + 16
    lengths = np.where(rng.random(estimate) < 0.04, rng.geometric(0.12, estimate), rng.geometric(0.62, estimate))
    ends = np.cumsum(lengths)
    while ends[-1] < n_base:  # practically never: the estimate has 10% headroom
        lengths = np.concatenate([lengths, rng.geometric(0.5, estimate)])
        ends = np.cumsum(lengths)
    n_sessions = int(np.searchsorted(ends, n_base) + 1)
    lengths = lengths[:n_sessions].copy()
    lengths[-1] -= int(ends[n_sessions - 1] - n_base)

    # ---- users: every user gets one session, the rest go to heavy-tailed "regulars" ----------
    n_users = int(min(n_sessions, n_users or max(1, round(n_base * USERS_PER_EVENT))))
    # 19 digits like the real ids: a fixed 10-digit prefix + a distinct 9-digit suffix per user.
    user_suffix = np.cumsum(rng.integers(1, max(2, 10**9 // n_users), n_users))[rng.permutation(n_users)]
    session_user = np.empty(n_sessions, dtype=np.int64)
    order = rng.permutation(n_sessions)
    session_user[order[:n_users]] = np.arange(n_users)
    session_user[order[n_users:]] = _weighted_draw(rng, rng.lognormal(0.0, 1.8, n_users), n_sessions - n_users)

    # "user_id,user_session" per session, assembled as bytes without int -> str conversions.
    user_digits = np.empty((n_users, 9), dtype=np.uint8)
    remaining = user_suffix.copy()
    for digit in range(8, -1, -1):
        remaining, user_digits[:, digit] = np.divmod(remaining, 10)
    user_digits += ord("0")
    session_text = np.zeros((n_sessions, 30), dtype=np.uint8)
    session_text[:, :10] = np.frombuffer(_USER_ID_PREFIX, dtype=np.uint8)
    session_text[:, 10:19] = user_digits[session_user]
    session_text[:, 19] = ord(",")
    session_text[:, 20:] = _TOKEN_ALPHABET[rng.integers(0, len(_TOKEN_ALPHABET), (n_sessions, 10))]
    session_text[rng.random(n_sessions) < empty_session_rate, 20:] = 0  # empty user_session
    session_text = session_text.view("S30").ravel()
    del user_digits, remaining

    # ---- events: position in session, product chain, type ------------------------------------
    session_of = np.repeat(np.arange(n_sessions), lengths)
    first_of_session = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    is_first = np.zeros(n_base, dtype=bool)
    is_first[first_of_session] = True

    non_view_share = sum(v for k, v in mix.items() if k != "view") / sum(mix.values())
    n_non_first = n_base - n_sessions
    # About 55% of repeated products turn into a cart/purchase; the rest are repeated views.
    repeat_prob = min(0.95, non_view_share * n_base / 0.55 / max(1, n_non_first))
    repeat = ~is_first & (rng.random(n_base) < repeat_prob)
    drawn = _weighted_draw(rng, product_weight, n_base)
    chain_head = np.maximum.accumulate(np.where(repeat, 0, np.arange(n_base)))
    product = drawn[chain_head]

    type_names = ["view"] + [k for k in mix if k != "view"]
    event_type = np.zeros(n_base, dtype=np.int8)
    repeat_idx = np.flatnonzero(repeat)[rng.permutation(int(repeat.sum()))]
    cursor = 0
    for code, name in enumerate(type_names[1:], start=1):
        count = min(len(repeat_idx) - cursor, int(round(mix[name] / sum(mix.values()) * n_base)))
        event_type[repeat_idx[cursor : cursor + count]] = code
        cursor += count

    # ---- times: session start by day and hour of day, then gaps inside the session -----------
    first_day, last_day = _epoch_day(start), _epoch_day(end)
    if last_day < first_day:
        raise ValueError(f"end {end} is before start {start}")
    gaps = 1 + rng.exponential(45.0, n_base).astype(np.int64)
    gaps[first_of_session] = 0
    elapsed = np.cumsum(gaps)
    offset = elapsed - elapsed[first_of_session][session_of]
    duration = offset[np.cumsum(lengths) - 1]
    day = rng.integers(first_day, last_day + 1, n_sessions)
    hour = _weighted_draw(rng, _HOUR_WEIGHTS, n_sessions)
    session_start = day * 86400 + hour * 3600 + rng.integers(0, 3600, n_sessions)
    session_start = np.minimum(session_start, (last_day + 1) * 86400 - 1 - duration)
    session_start = np.maximum(session_start, first_day * 86400)
    event_ts = session_start[session_of] + offset

    zero_price = (rng.random(n_base) < zero_price_rate).astype(np.int64)

    # ---- duplicates (copies sort right after their original), then time order ----------------
    dup_src = np.sort(rng.choice(n_base, n_dups, replace=False)) if n_dups else np.empty(0, np.int64)
    rows = np.concatenate([np.arange(n_base), dup_src])
    rows = rows[np.argsort(event_ts[rows], kind="stable")]
    n_rows = len(rows)

    # Bad rows are corrupted copies of a row, written right after it.
    bad_after: dict[int, list[tuple[str, int]]] = {}
    bad_counts: dict[str, int] = {}
    if n_bad:
        positions = rng.choice(n_rows, n_bad, replace=False).tolist()
        k = 0
        for rule, variants in BAD_ROW_VARIANTS.items():
            for i in range(bad_rows_per_rule):
                bad_after.setdefault(positions[k], []).append((rule, i % len(variants)))
                k += 1
            bad_counts[rule] = bad_rows_per_rule

    # ---- write ---------------------------------------------------------------------------------
    # "event_type,product_id,category_id,category_code,brand,price," per (type, zero price, product)
    middle_text = np.array(
        [
            f"{name},{text}{'0.00,' if free else price}".encode()
            for name in type_names
            for free in (False, True)
            for text, price in zip(product_text, prices)
        ],
        dtype=object,
    )
    middle_index = (event_type.astype(np.int64) * 2 + zero_price) * n_products + product
    del product_text, prices

    day_text = np.datetime_as_string(np.arange(first_day, last_day + 1).astype("datetime64[D]"), unit="D").astype("S10")
    seconds_of_day = np.arange(86400)
    time_of_day_text = np.zeros((86400, 8), dtype=np.uint8)
    for col, value in ((0, seconds_of_day // 3600), (3, seconds_of_day // 60 % 60), (6, seconds_of_day % 60)):
        time_of_day_text[:, col] = 48 + value // 10
        time_of_day_text[:, col + 1] = 48 + value % 10
    time_of_day_text[:, [2, 5]] = ord(":")
    time_suffix = np.frombuffer(b" UTC,", dtype=np.uint8)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(path, "wb") as out:
        out.write((",".join(EVENT_COLUMNS) + "\n").encode())
        for lo in range(0, n_rows, chunk_rows):
            idx = rows[lo : lo + chunk_rows]
            ts = event_ts[idx]
            stamp = np.empty((len(idx), 24), dtype=np.uint8)
            stamp[:, :10] = day_text[ts // 86400 - first_day].view(np.uint8).reshape(-1, 10)
            stamp[:, 10] = ord(" ")
            stamp[:, 11:19] = time_of_day_text[ts % 86400]
            stamp[:, 19:] = time_suffix
            lines = list(
                map(
                    b"".join,
                    zip(
                        stamp.view("S24").ravel().tolist(),
                        middle_text[middle_index[idx]].tolist(),
                        session_text[session_of[idx]].tolist(),
                    ),
                )
            )
            for pos in sorted((p for p in bad_after if lo <= p < lo + chunk_rows), reverse=True):
                fields = lines[pos - lo].decode().split(",")
                lines[pos - lo + 1 : pos - lo + 1] = [
                    BAD_ROW_VARIANTS[r][v](fields).encode("utf-8", "surrogateescape") for r, v in bad_after[pos]
                ]
            out.write(b"\n".join(lines))
            out.write(b"\n")
            written += len(lines)
            if progress:
                progress(written, n_events)
    assert written == n_events, (written, n_events)

    final_types = event_type[rows]
    final_products = product[rows]
    seconds = time.perf_counter() - started
    return {
        "path": str(path),
        "rows": n_events,
        "unique_events": n_base,
        "duplicates": n_dups,
        "bad_rows": n_bad,
        "bad_rows_by_rule": bad_counts,
        "event_types": {name: int((final_types == code).sum()) for code, name in enumerate(type_names)},
        "users": int(np.count_nonzero(np.bincount(session_user, minlength=n_users))),
        "sessions": n_sessions,
        "products": n_products,
        "empty_category_code_rows": int(category_code_empty[product_category[final_products]].sum()),
        "empty_brand_rows": int(brand_empty[final_products].sum()),
        "zero_price_rows": int(zero_price[rows].sum()),
        "first_event_time": str(np.datetime64(int(event_ts[rows[0]]), "s")).replace("T", " ") + " UTC",
        "last_event_time": str(np.datetime64(int(event_ts[rows[-1]]), "s")).replace("T", " ") + " UTC",
        "seed": seed,
        "seconds": round(seconds, 3),
        "rows_per_second": round(n_events / seconds) if seconds else None,
    }
