"""A deterministic retail demo dataset whose target is driven by numbers AND text.

:func:`generate_demo_frame` builds daily sales of ``n_stores x n_categories`` series (24 by
default, over 760 days from 2023-01-02), in the long format of :data:`DEMO_CONTRACT`:

=============  =========================  =================================================
column         dtype                      meaning
=============  =========================  =================================================
series_id      string                     ``"S01-dairy"``: store and category
date           datetime64[ns]             one row per series and day, no gaps
units_sold     float64 (whole numbers)    the target, >= 0
price          float64                    shelf price; discounts raise sales
store          string                     ``"S01"`` .. (static)
category       string                     ``"dairy"``, ``"bakery"``, ... (static)
day_of_week    string                     ``"Mon"`` .. ``"Sun"`` (dynamic)
note           string, nullable           a store note of the day; missing on most days
=============  =========================  =================================================

How ``units_sold`` is made (all multiplicative, per series)::

    level * trend * weekly * yearly * price_effect * event_effect * noise, rounded, >= 0

- *level*: a category base (e.g. produce 150, household 40) x a store factor x a series factor.
- *trend*: ``exp(slope * years)`` with a per-series slope in [-0.15, +0.25] per year.
- *weekly*: weekend peak (Sat highest), its strength and shape drawn per category.
- *yearly*: a small sine (amplitude 3-10 %) with a per-category phase.
- *price_effect*: ``(price / regular_price) ** -elasticity`` (elasticity 1.0-1.8 per category).
  Discounts cut the regular price by 10-30 % for 3-7 days, about once every 25-40 days.
- *noise*: log-normal, sigma 0.08.
- *event_effect*: ``1 + size`` on the days an announced event is in effect, else 1.

Events (the text signal). About once every :data:`EVENT_INTERVAL_RANGE` (15-25, drawn per series)
days, a series gets an *announcement note* for one of the twelve :data:`DEMO_EVENTS` (six up, six
down, equally likely). The event kind fixes

- ``lag`` (3-5 days): the effect starts exactly ``lag`` days after the day of the note,
- ``duration`` (2-4 days): the number of consecutive days the effect lasts,

and the note says when, consistently with the lag ("in 4 days", "4 days from now" or "on
Friday"). The size is drawn per event: +40..+80 % for up events, -30..-60 % for down events, of
what the series would otherwise sell. Notes are always posted *before* the effect (never on or
after its first day) and announcement notes are at least :data:`MIN_EVENT_GAP` days apart, so
effects never overlap and a note never falls inside an effect window. An effect may run past the
last day of the frame (it is cut there).

About once every :data:`NOISE_INTERVAL_RANGE` (7-10, per series) days, a *noise note* from
:data:`NOISE_NOTES` is posted; it does not move the target. When both kinds fall on the same day
the two are joined with ``". "``. Every other day has no note (about 83 % of the rows).

:func:`generate_demo_frame_with_effects` returns the ground truth of the event effect per row;
:func:`classify_note` maps a note back to the :class:`DemoEvent` it announces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from fusioncast import storage
from fusioncast.contract import DataContract
from fusioncast.demo.events import (
    DEMO_EVENT_DURATION_RANGE,
    DEMO_EVENT_LAG_RANGE,
    DEMO_EVENTS,
    DOWN_EVENTS,
    NOISE_NOTES,
    UP_EVENTS,
    WHEN_PHRASES,
    DemoEvent,
    classify_note,
)
from fusioncast.errors import ConfigError

__all__ = [
    "DEMO_CONTRACT",
    "DEMO_EVENTS",
    "DEMO_EVENT_DURATION_RANGE",
    "DEMO_EVENT_LAG_RANGE",
    "DOWN_EVENTS",
    "NOISE_NOTES",
    "UP_EVENTS",
    "DemoEvent",
    "classify_note",
    "generate_demo_frame",
    "generate_demo_frame_with_effects",
    "write_demo_dataset",
]

DEMO_CONTRACT = DataContract(
    series_id="series_id",
    timestamp="date",
    target="units_sold",
    numeric=("price",),
    static_categorical=("store", "category"),
    dynamic_categorical=("day_of_week",),
    text=("note",),
    freq="D",
)

#: (name, base daily units, base price) of the categories, used in this order.
CATEGORIES: tuple[tuple[str, float, float], ...] = (
    ("dairy", 120.0, 2.49),
    ("bakery", 90.0, 3.19),
    ("produce", 150.0, 1.99),
    ("beverages", 110.0, 1.79),
    ("frozen", 60.0, 4.49),
    ("household", 40.0, 5.99),
    ("snacks", 85.0, 2.29),
    ("personal_care", 35.0, 4.99),
    ("pet_supplies", 25.0, 7.99),
    ("deli", 55.0, 5.49),
)

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LONG_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

#: Days between announcement notes of a series: its mean is drawn uniformly from this range.
EVENT_INTERVAL_RANGE = (15.0, 25.0)
#: Announcement notes of one series are at least this many days apart (> lag + duration).
MIN_EVENT_GAP = 10
#: Relative size of an up event (+40..+80 %) and of a down event (-30..-60 %).
UP_EFFECT_RANGE = (0.40, 0.80)
DOWN_EFFECT_RANGE = (0.30, 0.60)
#: Days between noise notes of a series: its mean is drawn uniformly from this range.
NOISE_INTERVAL_RANGE = (7.0, 10.0)
#: Discounts: mean days between them (per series), length in days, and price cut.
PROMO_INTERVAL_RANGE = (25.0, 40.0)
PROMO_DURATION_RANGE = (3, 7)
PROMO_CUTS = (0.10, 0.15, 0.20, 0.25, 0.30)
NOISE_SIGMA = 0.08

_WEEKLY_SHAPE = np.array([0.88, 0.86, 0.90, 0.95, 1.08, 1.28, 1.05])


def _check(n_stores: int, n_categories: int, n_days: int) -> None:
    if not 1 <= n_stores <= 99:
        raise ConfigError(f"rule 'demo_n_stores' failed: n_stores must be 1..99, got {n_stores}")
    if not 1 <= n_categories <= len(CATEGORIES):
        raise ConfigError(
            f"rule 'demo_n_categories' failed: n_categories must be 1..{len(CATEGORIES)}, "
            f"got {n_categories}"
        )
    if n_days < 1:
        raise ConfigError(f"rule 'demo_n_days' failed: n_days must be >= 1, got {n_days}")


def _interval_starts(rng: np.random.Generator, n_days: int, mean: float, min_gap: int) -> list[int]:
    """Days of a renewal process: gaps of at least ``min_gap`` with mean ``mean``."""
    p = 1.0 / max(mean - min_gap + 1.0, 1.0)
    day = int(rng.integers(0, max(int(mean), 1)))
    days = []
    while day < n_days:
        days.append(day)
        day += min_gap - 1 + int(rng.geometric(p))
    return days


def generate_demo_frame_with_effects(
    *,
    n_stores: int = 4,
    n_categories: int = 6,
    n_days: int = 760,
    start: str = "2023-01-02",
    seed: int = 0,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The demo frame and, per row, the relative event effect (+0.6 = +60 %, 0 = no event)."""
    _check(n_stores, n_categories, n_days)
    dates = pd.date_range(pd.Timestamp(start).normalize(), periods=n_days, freq="D")
    dates = dates.astype("datetime64[ns]")
    weekday = np.asarray(dates.day_of_week)
    years = np.arange(n_days) / 365.25
    doy_angle = 2.0 * np.pi * np.asarray(dates.day_of_year) / 365.25

    categories = CATEGORIES[:n_categories]
    cat_params = []
    for c, (_, base_level, base_price) in enumerate(categories):
        rng = np.random.default_rng([seed, 2, c])
        strength = rng.uniform(0.5, 1.5)
        weekly = 1.0 + strength * (_WEEKLY_SHAPE - 1.0) + rng.normal(0.0, 0.03, 7)
        weekly = weekly / weekly.mean()
        yearly = 1.0 + rng.uniform(0.03, 0.10) * np.sin(doy_angle + rng.uniform(0, 2 * np.pi))
        elasticity = rng.uniform(1.0, 1.8)
        cat_params.append((base_level, base_price, weekly[weekday] * yearly, elasticity))
    store_params = []
    for s in range(n_stores):
        rng = np.random.default_rng([seed, 1, s])
        store_params.append((float(np.exp(rng.normal(0.0, 0.3))), rng.uniform(0.95, 1.05)))

    columns: dict[str, list[Any]] = {k: [] for k in ("series_id", "store", "category", "note")}
    units_parts, price_parts, effect_parts = [], [], []
    for s in range(n_stores):
        store = f"S{s + 1:02d}"
        store_level, store_price = store_params[s]
        for c in sorted(range(n_categories), key=lambda c: categories[c][0]):
            category = categories[c][0]
            base_level, base_price, seasonal, elasticity = cat_params[c]
            rng = np.random.default_rng([seed, 3, s, c])
            level = base_level * store_level * float(np.exp(rng.normal(0.0, 0.1)))
            trend = np.exp(rng.uniform(-0.15, 0.25) * years)

            regular = round(base_price * store_price, 2)
            price = np.full(n_days, regular)
            promo_mean = rng.uniform(*PROMO_INTERVAL_RANGE)
            for day in _interval_starts(rng, n_days, promo_mean, PROMO_DURATION_RANGE[1] + 2):
                length = int(rng.integers(PROMO_DURATION_RANGE[0], PROMO_DURATION_RANGE[1] + 1))
                price[day : day + length] = round(regular * (1.0 - rng.choice(PROMO_CUTS)), 2)
            price_effect = (price / regular) ** -elasticity

            notes: list[str | None] = [None] * n_days
            effect = np.zeros(n_days)
            event_mean = rng.uniform(*EVENT_INTERVAL_RANGE)
            for day in _interval_starts(rng, n_days, event_mean, MIN_EVENT_GAP):
                event = DEMO_EVENTS[int(rng.integers(len(DEMO_EVENTS)))]
                low, high = UP_EFFECT_RANGE if event.direction > 0 else DOWN_EFFECT_RANGE
                effect[day + event.lag : day + event.lag + event.duration] = (
                    event.direction * rng.uniform(low, high)
                )
                when = WHEN_PHRASES[int(rng.integers(len(WHEN_PHRASES)))].format(
                    n=event.lag, day=_LONG_DAY_NAMES[(weekday[day] + event.lag) % 7]
                )
                template = event.templates[int(rng.integers(len(event.templates)))]
                notes[day] = template.format(when=when)
            noise_p = 1.0 / rng.uniform(*NOISE_INTERVAL_RANGE)
            noise_days = np.flatnonzero(rng.random(n_days) < noise_p)
            picks = rng.integers(len(NOISE_NOTES), size=len(noise_days))
            first = rng.random(len(noise_days)) < 0.5
            for day, pick, noise_first in zip(noise_days, picks, first, strict=True):
                text = NOISE_NOTES[pick]
                if notes[day] is None:
                    notes[day] = text
                else:
                    pair = (text, notes[day]) if noise_first else (notes[day], text)
                    notes[day] = ". ".join(pair)

            noise = np.exp(rng.normal(0.0, NOISE_SIGMA, n_days))
            units = level * trend * seasonal * price_effect * (1.0 + effect) * noise
            units_parts.append(np.maximum(np.round(units), 0.0))
            price_parts.append(price)
            effect_parts.append(effect)
            columns["series_id"].extend([f"{store}-{category}"] * n_days)
            columns["store"].extend([store] * n_days)
            columns["category"].extend([category] * n_days)
            columns["note"].extend(notes)

    n_series = n_stores * n_categories
    frame = pd.DataFrame(
        {
            "series_id": pd.array(columns["series_id"], dtype="string"),
            "date": np.tile(dates.to_numpy(), n_series),
            "units_sold": np.concatenate(units_parts).astype("float64"),
            "price": np.concatenate(price_parts).astype("float64"),
            "store": pd.array(columns["store"], dtype="string"),
            "category": pd.array(columns["category"], dtype="string"),
            "day_of_week": pd.array(np.tile(np.array(DAY_NAMES)[weekday], n_series), "string"),
            "note": pd.array(columns["note"], dtype="string"),
        }
    )
    return frame, np.concatenate(effect_parts)


def generate_demo_frame(
    *,
    n_stores: int = 4,
    n_categories: int = 6,
    n_days: int = 760,
    start: str = "2023-01-02",
    seed: int = 0,
) -> pd.DataFrame:
    """The demo dataset (see the module docstring): one row per series and day, sorted."""
    frame, _ = generate_demo_frame_with_effects(
        n_stores=n_stores, n_categories=n_categories, n_days=n_days, start=start, seed=seed
    )
    return frame


def write_demo_dataset(path: str | Path, **kwargs: Any) -> Path:
    """Write the demo dataset as Parquet and return ``path``.

    A path ending in ``.parquet`` gets a single file; any other path becomes a dataset directory
    partitioned by store (hive: ``store=S01/part-0.parquet``); a store directory written before is
    replaced, other files in ``path`` are left alone.
    ``kwargs`` go to :func:`generate_demo_frame`.
    """
    path = Path(path)
    table = pa.Table.from_pandas(generate_demo_frame(**kwargs), preserve_index=False)
    if path.suffix == ".parquet":
        return storage.write_parquet(path, table)
    with storage.failures_name(path):
        _write_partitioned(table, path)
    return path


def _write_partitioned(table: pa.Table, path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    ds.write_dataset(
        table,
        path,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("store", pa.string())]), flavor="hive"),
        basename_template="part-{i}.parquet",
        existing_data_behavior="delete_matching",
    )
