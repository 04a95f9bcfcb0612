"""The demo generator's ground truth: every parameter that shapes a series, kept as it is drawn.

The generator draws a :class:`SeriesTruth` per series and makes that series' price, event effect
and structural mean from it with the methods here, then multiplies them with :func:`units_sold`;
the reference forecasts of :mod:`fusioncast.demo.limit` use the same methods, so the generator's
arithmetic exists once. Days are indices into the frame's dates (0 = its first day).

A :class:`DemoTruth` is JSON (:meth:`DemoTruth.to_json` / :meth:`DemoTruth.from_json`); floats
survive the round trip exactly, so arrays rebuilt from JSON equal the generator's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from fusioncast.errors import ModelStateError

TRUTH_VERSION = 1


class Calendar(NamedTuple):
    """What the seasonal and trend terms read from the dates, each ``[n_days]``."""

    weekday: np.ndarray  # 0 = Monday
    years: np.ndarray  # days since the first day / 365.25
    doy_angle: np.ndarray  # 2 pi * day of year / 365.25

    @classmethod
    def of(cls, dates: pd.DatetimeIndex) -> Calendar:
        return cls(
            weekday=np.asarray(dates.day_of_week),
            years=np.arange(len(dates)) / 365.25,
            doy_angle=2.0 * np.pi * np.asarray(dates.day_of_year) / 365.25,
        )


@dataclass(frozen=True)
class Promotion:
    """A discount: the shelf price is ``price`` on days ``start .. start + length - 1``."""

    start: int
    length: int
    cut: float  # share of the regular price taken off, as drawn
    price: float  # the discounted price (the cut price rounded to cents)


@dataclass(frozen=True)
class Event:
    """An announced event: a note on ``note_day``; sales times ``1 + size`` from ``lag`` days
    later, for ``duration`` days (cut at the frame's end)."""

    kind: str  # the DemoEvent key
    note_day: int
    lag: int
    duration: int
    size: float  # signed: +0.6 = +60 %, -0.4 = -40 %

    @property
    def first_day(self) -> int:
        return self.note_day + self.lag


@dataclass(frozen=True)
class SeriesTruth:
    """The parameters of one series: ``units_sold`` is
    ``level * exp(trend_slope * years) * seasonal * price_effect * (1 + event effect) * noise``."""

    series_id: str
    store: str
    category: str
    level: float  # daily units before trend, seasonality, price and events
    trend_slope: float  # per year of 365.25 days
    weekly: tuple[float, ...]  # multiplier per weekday, Monday first, mean 1
    yearly_amplitude: float
    yearly_phase: float  # radians
    elasticity: float  # price effect = (price / regular_price) ** -elasticity
    regular_price: float
    promotions: tuple[Promotion, ...]
    events: tuple[Event, ...]

    def seasonal(self, calendar: Calendar) -> np.ndarray:
        """Weekly times yearly multiplier per day, ``[n_days]``."""
        yearly = 1.0 + self.yearly_amplitude * np.sin(calendar.doy_angle + self.yearly_phase)
        return np.asarray(self.weekly)[calendar.weekday] * yearly

    def structural(self, calendar: Calendar) -> np.ndarray:
        """Level times trend times seasonal multiplier per day, ``[n_days]``."""
        return self.level * np.exp(self.trend_slope * calendar.years) * self.seasonal(calendar)

    def promotion_index(self, n_days: int) -> np.ndarray:
        """Per day, the index in :attr:`promotions` of the one running, or -1; ``[n_days]``."""
        return _covering(n_days, [(p.start, p.length) for p in self.promotions])

    def event_index(self, n_days: int) -> np.ndarray:
        """Per day, the index in :attr:`events` of the one in effect, or -1; ``[n_days]``."""
        return _covering(n_days, [(e.first_day, e.duration) for e in self.events])

    def price(self, n_days: int) -> np.ndarray:
        """The shelf price per day, ``[n_days]``."""
        prices = np.array([p.price for p in self.promotions] + [self.regular_price])
        return prices[self.promotion_index(n_days)]  # index -1: the regular price

    def price_effect(self, price: np.ndarray) -> np.ndarray:
        """The sales multiplier of a price path (1 at the regular price)."""
        return (price / self.regular_price) ** -self.elasticity

    def event_effect(self, n_days: int) -> np.ndarray:
        """The relative event effect per day (0 where none), ``[n_days]``."""
        sizes = np.array([e.size for e in self.events] + [0.0])
        return sizes[self.event_index(n_days)]


def units_sold(
    structural: np.ndarray, price_effect: np.ndarray, event_effect: np.ndarray, noise: Any
) -> np.ndarray:
    """The generator's model of sales before rounding: every term multiplies."""
    return structural * price_effect * (1.0 + event_effect) * noise


@dataclass(frozen=True)
class DemoTruth:
    """Everything the generator drew for a demo frame but its noise: the frame's series in
    order (the frame's rows are ``series`` x ``n_days``)."""

    start: str  # ISO date of the first day
    n_days: int
    seed: int
    noise_sigma: float  # noise is exp(normal(0, noise_sigma)) per day
    series: tuple[SeriesTruth, ...]

    @property
    def dates(self) -> pd.DatetimeIndex:
        dates = pd.date_range(pd.Timestamp(self.start), periods=self.n_days, freq="D")
        return dates.astype("datetime64[ns]")

    def calendar(self) -> Calendar:
        return Calendar.of(self.dates)

    def event_effects(self) -> np.ndarray:
        """The relative event effect per series and day, ``[n_series, n_days]``."""
        return np.stack([s.event_effect(self.n_days) for s in self.series])

    def to_json(self) -> dict[str, Any]:
        return {"version": TRUTH_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> DemoTruth:
        if payload.get("version") != TRUTH_VERSION:
            raise ModelStateError(
                f"rule 'state_version' failed: demo truth version {payload.get('version')!r}, "
                f"expected {TRUTH_VERSION}"
            )
        try:
            series = tuple(
                SeriesTruth(
                    **{
                        **s,
                        "weekly": tuple(s["weekly"]),
                        "promotions": tuple(Promotion(**p) for p in s["promotions"]),
                        "events": tuple(Event(**e) for e in s["events"]),
                    }
                )
                for s in payload["series"]
            )
            return cls(
                start=payload["start"],
                n_days=payload["n_days"],
                seed=payload["seed"],
                noise_sigma=payload["noise_sigma"],
                series=series,
            )
        except (KeyError, TypeError) as error:
            raise ModelStateError(
                f"rule 'state_json' failed: not a demo truth ({type(error).__name__}: {error})"
            ) from None


def _covering(n_days: int, spans: list[tuple[int, int]]) -> np.ndarray:
    """Index of the span (first day, length) covering each day, -1 where none; spans of one
    series never overlap (the generator keeps them apart)."""
    index = np.full(n_days, -1, dtype=np.int64)
    for i, (first, length) in enumerate(spans):
        index[first : first + length] = i
    return index
