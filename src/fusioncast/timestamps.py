"""Timestamps of the input: parsing, time zones, and how validated frames hold them.

Tz-naive timestamps are wall-clock time and stay as they are. A tz-aware column names instants in
one time zone: validation checks them as instants (a step is unique as an instant; "now" is an
instant) and hands the later stages tz-naive timestamps, the zone going with its report:

- at a sub-daily frequency (a fixed step: hours, minutes, ...) as UTC: the steps are evenly spaced
  instants, across a change of daylight saving time too;
- at a daily or longer one (days, weeks, months, business days) as wall-clock time in the zone: the
  steps are calendar steps, a day being 23 or 25 hours long at a change of daylight saving time.

:func:`attach_zone` turns them back into tz-aware timestamps for publishing. Strings with UTC
offsets carry no zone: one offset is a fixed zone (``UTC+09:00``); several offsets (a zone across
daylight saving time, or several zones) are converted to UTC.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

UTC = "UTC"


def parse_timestamps(values: pd.Series) -> tuple[pd.Series | None, np.ndarray | None, object]:
    """(parsed, bad, example): ``datetime64[ns]`` (tz-aware when the values carry a zone) and the
    present values that do not parse.

    Numbers (epochs or years are ambiguous) are a type error: ``parsed`` is None.
    """
    if ptypes.is_numeric_dtype(values) and not ptypes.is_bool_dtype(values):
        present = values.notna().to_numpy()
        if present.any():
            return None, present, values.dropna().iloc[0]
    parsed = _to_datetime(values)
    bad = parsed.isna() & values.notna()
    if bad.any():  # a second, slower pass for formats other than the first value's
        parsed[bad] = _in_zone_of(_to_datetime(values[bad], format="mixed"), parsed)
        bad = parsed.isna() & values.notna()
    example = values[bad.to_numpy()].iloc[0] if bad.any() else None
    return parsed, bad.to_numpy(), example


def split_zone(stamps: pd.Series) -> tuple[pd.Series, str | None]:
    """Tz-aware ``stamps`` as tz-naive UTC and the name of their zone; tz-naive ones unchanged."""
    zone = getattr(stamps.dtype, "tz", None)
    if zone is None:
        return stamps, None
    name = getattr(zone, "key", None) or getattr(zone, "zone", None) or str(zone)
    return stamps.dt.tz_convert(UTC).dt.tz_localize(None), name


def held_in_utc(freq: str) -> bool:
    """Whether tz-aware timestamps at ``freq`` are held as UTC (else as wall-clock time)."""
    offset = pd.tseries.frequencies.to_offset(freq)
    # a day is a calendar day, held as wall-clock time (pandas 2 counts it among the fixed ticks)
    return isinstance(offset, pd.offsets.Tick) and not isinstance(offset, pd.offsets.Day)


def wall_clock(utc: pd.Series, zone: str) -> pd.Series:
    """Tz-naive UTC instants as tz-naive wall-clock time in ``zone``."""
    return utc.dt.tz_localize(UTC).dt.tz_convert(zone).dt.tz_localize(None)


def attach_zone(stamps: Any, zone: str | None, freq: str) -> pd.DatetimeIndex:
    """Timestamps held as validation hands them on, tz-aware in ``zone`` (unchanged without one).

    A wall-clock time that a change of daylight saving time skips moves forward; one it repeats
    is taken the first time (daylight saving time).
    """
    index = pd.DatetimeIndex(stamps)
    if zone is None:
        return index
    if held_in_utc(freq):
        return index.tz_localize(UTC).tz_convert(zone)
    first = np.ones(len(index), dtype=bool)
    return index.tz_localize(zone, ambiguous=first, nonexistent="shift_forward")


def future_steps(origins: np.ndarray, freq: str, horizon: int) -> np.ndarray:
    """The ``horizon`` steps of frequency ``freq`` after each origin, ``datetime64 [B, H]``.

    One vectorised offset per step (not one date range per origin).
    """
    offset = pd.tseries.frequencies.to_offset(freq)
    index = pd.DatetimeIndex(origins)
    steps = np.empty((len(index), horizon), dtype="datetime64[ns]")
    for k in range(horizon):
        steps[:, k] = (index + (k + 1) * offset).as_unit("ns").to_numpy()
    return steps


def _to_datetime(values: pd.Series, **kwargs: Any) -> pd.Series:
    """Parse to ``datetime64[ns]``; values in one zone keep it, mixed UTC offsets become UTC."""
    if ptypes.is_datetime64_any_dtype(values):
        parsed = values
    else:
        if "format" not in kwargs:  # pandas guesses from the first value only, which may be bad
            kwargs["format"] = _guess_format(values)
        try:
            parsed = pd.to_datetime(values, errors="coerce", **kwargs)
        except (ValueError, TypeError):  # mixed UTC offsets: convert to UTC
            parsed = pd.to_datetime(values, errors="coerce", utc=True, **kwargs)
        if not ptypes.is_datetime64_any_dtype(parsed):  # object of mixed-offset Timestamps
            parsed = pd.to_datetime(parsed, errors="coerce", utc=True)
    zone = getattr(parsed.dtype, "tz", None)
    return parsed.astype(pd.DatetimeTZDtype("ns", zone) if zone is not None else "datetime64[ns]")


def _in_zone_of(values: pd.Series, like: pd.Series) -> pd.Series:
    """``values`` in the zone of ``like``; tz-naive ones are taken as wall-clock time there."""
    zone, own = getattr(like.dtype, "tz", None), getattr(values.dtype, "tz", None)
    if own is None:
        return (
            values
            if zone is None
            else values.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
        )
    return values.dt.tz_localize(None) if zone is None else values.dt.tz_convert(zone)


def _guess_format(values: pd.Series, tries: int = 20) -> str | None:
    """The strftime format of the first of the leading string values that has one."""
    from pandas.tseries.api import guess_datetime_format

    for value in values.dropna().iloc[:tries]:
        if isinstance(value, str) and (found := guess_datetime_format(value)):
            return found
    return None
