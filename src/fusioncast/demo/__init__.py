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

Events (the text signal, drawn in :mod:`fusioncast.demo.events`). About once every 15-25 days
(the mean drawn per series), a series gets an *announcement note* for one of the twelve
:data:`DEMO_EVENTS` (six up, six down, equally likely). The event kind fixes

- ``lag`` (3-5 days): the effect starts exactly ``lag`` days after the day of the note,
- ``duration`` (2-4 days): the number of consecutive days the effect lasts,

and the note says when, consistently with the lag ("in 4 days", "4 days from now" or "on
Friday"). The size is drawn per event: +40..+80 % for up events, -30..-60 % for down events, of
what the series would otherwise sell. Notes are always posted *before* the effect (never on or
after its first day) and announcement notes are at least 10 days apart, so effects never overlap
and a note never falls inside an effect window. An effect may run past the last day of the frame
(it is cut there).

About once every 7-10 days (per series), a *noise note* from :data:`NOISE_NOTES` is posted; it
does not move the target. When both kinds fall on the same day the two are joined with ``". "``.
Every other day has no note (about 83 % of the rows).

:func:`generate_demo_frame_with_truth` also returns the parameters the frame was made from
(:class:`~fusioncast.demo.truth.DemoTruth`); :mod:`fusioncast.demo.limit` turns them into the
forecasts of what could be known at each forecast origin. :func:`classify_note` maps a note back to
the :class:`DemoEvent` it announces.
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
    DemoEvent,
    add_noise_notes,
    classify_note,
    draw_events,
    interval_starts,
)
from fusioncast.demo.limit import (
    DEFAULT_HORIZON,
    remove_reference_forecasts,
    write_reference_forecasts,
)
from fusioncast.demo.truth import (
    Calendar,
    DemoTruth,
    Promotion,
    SeriesTruth,
    units_sold,
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
    "DemoTruth",
    "classify_note",
    "generate_demo_frame",
    "generate_demo_frame_with_truth",
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


def generate_demo_frame_with_truth(
    *,
    n_stores: int = 4,
    n_categories: int = 6,
    n_days: int = 760,
    start: str = "2023-01-02",
    seed: int = 0,
) -> tuple[pd.DataFrame, DemoTruth]:
    """The demo frame and every parameter it was made from but the noise (:class:`DemoTruth`)."""
    _check(n_stores, n_categories, n_days)
    dates = pd.date_range(pd.Timestamp(start).normalize(), periods=n_days, freq="D")
    dates = dates.astype("datetime64[ns]")
    calendar = Calendar.of(dates)

    categories = CATEGORIES[:n_categories]
    cat_params = []
    for c in range(n_categories):
        rng = np.random.default_rng([seed, 2, c])
        strength = rng.uniform(0.5, 1.5)
        weekly = 1.0 + strength * (_WEEKLY_SHAPE - 1.0) + rng.normal(0.0, 0.03, 7)
        weekly = weekly / weekly.mean()
        amplitude, phase = rng.uniform(0.03, 0.10), rng.uniform(0, 2 * np.pi)
        cat_params.append((weekly, float(amplitude), float(phase), float(rng.uniform(1.0, 1.8))))
    store_params = []
    for s in range(n_stores):
        rng = np.random.default_rng([seed, 1, s])
        store_params.append((float(np.exp(rng.normal(0.0, 0.3))), rng.uniform(0.95, 1.05)))

    truths: list[SeriesTruth] = []
    notes: list[str | None] = []
    units_parts, price_parts = [], []
    for s in range(n_stores):
        store = f"S{s + 1:02d}"
        store_level, store_price = store_params[s]
        for c in sorted(range(n_categories), key=lambda c: categories[c][0]):
            category, base_level, base_price = categories[c]
            weekly, amplitude, phase, elasticity = cat_params[c]
            rng = np.random.default_rng([seed, 3, s, c])
            level = base_level * store_level * float(np.exp(rng.normal(0.0, 0.1)))
            slope = float(rng.uniform(-0.15, 0.25))
            regular = round(base_price * store_price, 2)
            promotions = _draw_promotions(rng, n_days, regular)
            events, series_notes = draw_events(rng, n_days, calendar.weekday)
            add_noise_notes(rng, series_notes)
            truth = SeriesTruth(
                series_id=f"{store}-{category}",
                store=store,
                category=category,
                level=level,
                trend_slope=slope,
                weekly=tuple(float(w) for w in weekly),
                yearly_amplitude=amplitude,
                yearly_phase=phase,
                elasticity=elasticity,
                regular_price=float(regular),
                promotions=promotions,
                events=events,
            )
            price = truth.price(n_days)
            noise = np.exp(rng.normal(0.0, NOISE_SIGMA, n_days))
            units = units_sold(
                truth.structural(calendar),
                truth.price_effect(price),
                truth.event_effect(n_days),
                noise,
            )
            units_parts.append(np.maximum(np.round(units), 0.0))
            price_parts.append(price)
            truths.append(truth)
            notes.extend(series_notes)

    def per_series(values: list[str]) -> pd.arrays.StringArray:
        return pd.array(np.repeat(values, n_days), dtype="string")

    n_series = len(truths)
    frame = pd.DataFrame(
        {
            "series_id": per_series([t.series_id for t in truths]),
            "date": np.tile(dates.to_numpy(), n_series),
            "units_sold": np.concatenate(units_parts).astype("float64"),
            "price": np.concatenate(price_parts).astype("float64"),
            "store": per_series([t.store for t in truths]),
            "category": per_series([t.category for t in truths]),
            "day_of_week": pd.array(
                np.tile(np.array(DAY_NAMES)[calendar.weekday], n_series), "string"
            ),
            "note": pd.array(notes, dtype="string"),
        }
    )
    truth = DemoTruth(
        start=dates[0].date().isoformat(),
        n_days=n_days,
        seed=seed,
        noise_sigma=NOISE_SIGMA,
        series=tuple(truths),
    )
    return frame, truth


def _draw_promotions(
    rng: np.random.Generator, n_days: int, regular: float
) -> tuple[Promotion, ...]:
    promotions = []
    promo_mean = rng.uniform(*PROMO_INTERVAL_RANGE)
    for day in interval_starts(rng, n_days, promo_mean, PROMO_DURATION_RANGE[1] + 2):
        length = int(rng.integers(PROMO_DURATION_RANGE[0], PROMO_DURATION_RANGE[1] + 1))
        cut = rng.choice(PROMO_CUTS)
        # rounded as numpy rounds (regular is a numpy float): the frame's prices stay as they were
        price = round(regular * (1.0 - cut), 2)
        promotions.append(Promotion(day, length, float(cut), float(price)))
    return tuple(promotions)


def generate_demo_frame(
    *,
    n_stores: int = 4,
    n_categories: int = 6,
    n_days: int = 760,
    start: str = "2023-01-02",
    seed: int = 0,
) -> pd.DataFrame:
    """The demo dataset (see the module docstring): one row per series and day, sorted."""
    frame, _ = generate_demo_frame_with_truth(
        n_stores=n_stores, n_categories=n_categories, n_days=n_days, start=start, seed=seed
    )
    return frame


def write_demo_dataset(path: str | Path, *, horizon: int = DEFAULT_HORIZON, **kwargs: Any) -> Path:
    """Write the demo dataset as Parquet, and its reference forecasts beside it; return ``path``.

    A path ending in ``.parquet`` gets a single file; any other path becomes a dataset directory
    partitioned by store (hive: ``store=S01/part-0.parquet``); a store directory written before is
    replaced, other files in ``path`` are left alone.
    The knowable limit and its no-text twin (:mod:`fusioncast.demo.limit`), ``horizon`` steps from
    every origin, go to :func:`~fusioncast.demo.limit.reference_dir` (a name the dataset reader
    skips); those of an earlier dataset there are removed first, so a failed write leaves none
    rather than another dataset's. ``kwargs`` go to :func:`generate_demo_frame`.
    """
    path = Path(path)
    frame, truth = generate_demo_frame_with_truth(**kwargs)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    remove_reference_forecasts(path)
    if path.suffix == ".parquet":
        storage.write_parquet(path, table)
    else:
        with storage.failures_name(path):
            _write_partitioned(table, path)
    write_reference_forecasts(truth, path, horizon)
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
