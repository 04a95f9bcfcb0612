"""The demo's knowable limit: the best forecast anyone could make from what is known at the origin.

The reference forecaster knows the generator's parameters of every series (:class:`DemoTruth`)
and, at a forecast origin, only what has happened by then:

- the structural mean (level, trend, weekly and yearly shape) of every day, and the price effect
  of a promotion running at the origin until its last day as generated; a promotion that starts
  after the origin is not known, so every other day is forecast at the regular price;
- with text, the effect ``1 + size`` of every event whose note was posted on or before the origin
  (the realised size: it is a generator parameter the note does not state, so the limit is a
  little better than a reader of the notes could be); no event announced after the origin.

Its twin without text, the no-text limit, knows only the event in effect at the origin, if any:
its size shows in the sales a model without text reads, but not its end, so it expects the
effect to go on as the event kinds' durations make likely (:func:`_running_effect`). Neither is
ever a candidate model; :func:`write_reference_forecasts` stores both beside a demo dataset as
reference forecasts (:mod:`fusioncast.references`), so a run scores them like any forecast without
knowing the generator, and reports how much of what the text could give its model takes
(:func:`fusioncast.references.text_gain_share`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from fusioncast import storage
from fusioncast.config import ModelConfig
from fusioncast.contract import ForecastColumn as F
from fusioncast.demo.events import DEMO_EVENTS
from fusioncast.demo.truth import DemoTruth, SeriesTruth, units_sold
from fusioncast.errors import ConfigError
from fusioncast.references import LIMIT, NO_TEXT_LIMIT, REFERENCE, reference_dir

#: Steps forecast per origin by default: the model's default horizon.
DEFAULT_HORIZON: int = ModelConfig.model_fields["horizon"].default
REFERENCE_FILES = {LIMIT: "limit.parquet", NO_TEXT_LIMIT: "no_text_limit.parquet"}


def knowable_forecasts(
    truth: DemoTruth,
    origins: Iterable[object] | None = None,
    horizon: int = DEFAULT_HORIZON,
    *,
    with_text: bool = True,
) -> pd.DataFrame:
    """Expected ``units_sold`` of every series at each of ``horizon`` days after each origin,
    given what is known at the origin (see the module docstring).

    The expectation is over the noise, log-normal with sigma ``truth.noise_sigma``: its mean
    ``exp(sigma**2 / 2)`` multiplies the structure. The generator's rounding to whole units (and
    at 0) is ignored: where the mean is 5 units or more (above 6 in the default demo) it moves the
    mean by less than 0.01 unit.

    Args:
        truth: the parameters of the demo frame to forecast.
        origins: forecast origins (dates of the frame), the same for every series; ``None``: every
            day that leaves ``horizon`` days in the frame.
        with_text: whether the events announced by the origin are known; without, only the
            event in effect at the origin is, with its size but not its end.

    Returns:
        One row per series, origin and step (in that order): ``series_id``, ``forecast_origin``,
        ``target_timestamp``, ``horizon_step`` (1 .. horizon, int32) and ``forecast`` (float64).

    Raises:
        ConfigError: ``demo_reference_origins`` when an origin is not a day of the frame that
            leaves ``horizon`` days after it, or ``horizon`` is below 1.
    """
    dates = truth.dates
    days = _origin_days(dates, origins, horizon)
    n_days, calendar = truth.n_days, truth.calendar()

    def per_series(values: Callable[[SeriesTruth], np.ndarray]) -> np.ndarray:
        return np.stack([values(s) for s in truth.series])

    structural = per_series(lambda s: s.structural(calendar))
    price_effect = per_series(lambda s: s.price_effect(s.price(n_days)))
    promotion = per_series(lambda s: s.promotion_index(n_days))
    # [n_series, n_origins, horizon] through broadcasting
    series = np.arange(len(truth.series))[:, None, None]
    origin = days[None, :, None]
    steps = np.arange(1, horizon + 1, dtype=np.int32)
    target = origin + steps[None, None, :]
    running = promotion[series, origin]
    known_price = (running >= 0) & (promotion[series, target] == running)
    realised = per_series(lambda s: s.event_effect(n_days))
    if with_text:
        # per day, the note day of the event then in effect (days without one: never announced)
        note_day = per_series(
            lambda s: np.array([e.note_day for e in s.events] + [n_days])[s.event_index(n_days)]
        )
        effect = np.where(note_day[series, target] <= origin, realised[series, target], 0.0)
    else:
        effect = _running_effect(truth, n_days, series, origin, target)
    forecast = units_sold(
        structural[series, target],
        np.where(known_price, price_effect[series, target], 1.0),
        effect,
        np.exp(truth.noise_sigma**2 / 2.0),
    )
    n_series, n_origins = len(truth.series), len(days)
    return pd.DataFrame(
        {
            F.SERIES_ID: pd.array(
                np.repeat([s.series_id for s in truth.series], n_origins * horizon), "string"
            ),
            F.FORECAST_ORIGIN: dates.to_numpy()[np.broadcast_to(origin, forecast.shape)].ravel(),
            F.TARGET_TIMESTAMP: dates.to_numpy()[np.broadcast_to(target, forecast.shape)].ravel(),
            F.HORIZON_STEP: np.tile(steps, n_series * n_origins),
            F.FORECAST: forecast.ravel(),
        }
    )


def _running_effect(
    truth: DemoTruth, n_days: int, series: np.ndarray, origin: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """Without the notes: the expected effect, on each target day, of the event in effect at the
    origin. Its size shows in the sales; its end does not: the event may be of any kind (equally
    likely) whose duration is at least the days it has run, so a step ``k`` days on keeps the
    size times the share of those kinds still in effect then. ``[series, origins, steps]``."""
    durations = np.array([event.duration for event in DEMO_EVENTS])

    def lasting(days: np.ndarray) -> np.ndarray:  # kinds whose effect lasts at least ``days``
        return (durations[:, None] >= np.ravel(days)[None, :]).sum(axis=0).reshape(np.shape(days))

    first = np.stack(
        [
            np.array([e.first_day for e in s.events] + [n_days])[s.event_index(n_days)]
            for s in truth.series
        ]
    )
    realised = np.stack([s.event_effect(n_days) for s in truth.series])
    started = first[series, origin]  # the event in effect at the origin (n_days: none)
    in_effect = started <= origin
    run_so_far = np.where(in_effect, origin - started + 1, 1)
    still_on = lasting(target - np.where(in_effect, started, target) + 1) / np.maximum(
        lasting(run_so_far), 1
    )
    return np.where(in_effect, realised[series, origin] * still_on, 0.0)


def _origin_days(
    dates: pd.DatetimeIndex, origins: Iterable[object] | None, horizon: int
) -> np.ndarray:
    if horizon < 1:
        raise ConfigError(f"rule 'demo_reference_origins' failed: horizon {horizon} is below 1")
    last = len(dates) - 1 - horizon
    if origins is None:
        return np.arange(max(last + 1, 0))
    wanted = pd.DatetimeIndex(list(origins))  # type: ignore[arg-type]
    days = dates.get_indexer(wanted)
    bad = (days < 0) | (days > last)
    if bad.any():
        raise ConfigError(
            f"rule 'demo_reference_origins' failed: {int(bad.sum())} origin(s) are not days of "
            f"the demo frame ({dates[0].date()} .. {dates[-1].date()}) followed by {horizon} "
            f"days in it (example: {wanted[bad][0]})"
        )
    return days.astype(np.int64)


def write_reference_forecasts(
    truth: DemoTruth, data_path: str | Path, horizon: int = DEFAULT_HORIZON
) -> dict[str, Path]:
    """Write the limit and the no-text limit for every origin of the frame (each file written
    whole or not at all) and return their paths by reference name.

    Each file holds :func:`knowable_forecasts`' columns (``forecast`` as float32, to keep the
    files small) plus ``reference``, the reference's name.
    """
    directory = reference_dir(data_path)
    written = {}
    for name, file_name in REFERENCE_FILES.items():
        forecasts = knowable_forecasts(truth, None, horizon, with_text=name == LIMIT)
        forecasts[F.FORECAST] = forecasts[F.FORECAST].astype(np.float32)
        forecasts[REFERENCE] = pd.array([name] * len(forecasts), dtype="string")
        written[name] = storage.write_parquet(directory / file_name, forecasts)
    return written


def remove_reference_forecasts(data_path: str | Path) -> None:
    """Remove the reference forecasts of the dataset at ``data_path``, if any: a dataset written
    anew must not keep the references of the one it replaces should writing its own fail."""
    directory = reference_dir(data_path)
    if not directory.is_dir():
        return
    for file_name in REFERENCE_FILES.values():
        with storage.failures_name(directory / file_name, "remove"):
            (directory / file_name).unlink(missing_ok=True)
