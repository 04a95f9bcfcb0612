"""Frequency and series checks: the frequency of the input, one summary row per series, and the
checks of the series rules over them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from fusioncast.contract import SINGLE_SERIES_ID, DataContract
from fusioncast.errors import DataValidationError
from fusioncast.validation.report import render_stamp
from fusioncast.validation.rule import Context, SeriesFinding

#: The frequency of a series is inferred from its first steps only.
FREQ_STEPS = 50
#: At most this many series (evenly spread over the sorted ids) vote on the frequency.
FREQ_MAX_SERIES = 200


def infer_frequency(
    frame: pd.DataFrame, contract: DataContract, utc_zone: str | None = None
) -> str:
    """The contract's frequency, or the one most series agree on (``pd.infer_freq``).

    Each voting series contributes its first ``FREQ_STEPS`` steps; at most ``FREQ_MAX_SERIES``
    series (with at least three rows) vote, evenly spread over the sorted series ids. With
    ``utc_zone``, the tz-naive timestamps are UTC instants of that zone and are read in it (days
    are calendar days there, hours are hours).

    Raises:
        DataValidationError: ``regular_frequency`` when no series has a frequency.
    """
    if contract.freq:
        return contract.freq
    timestamps = frame[contract.timestamp]
    if not ptypes.is_datetime64_any_dtype(timestamps):
        timestamps = pd.to_datetime(timestamps, errors="coerce")
    if contract.series_id is None:
        codes = np.zeros(len(frame), dtype=np.int64)
        names = pd.Index([SINGLE_SERIES_ID])
    else:
        codes, names = pd.factorize(frame[contract.series_id], sort=True)
    counts = np.bincount(codes[codes >= 0], minlength=len(names))
    candidates = np.flatnonzero(counts >= 3)
    if len(candidates) > FREQ_MAX_SERIES:
        candidates = candidates[np.linspace(0, len(candidates) - 1, FREQ_MAX_SERIES).astype(int)]
    keep = np.isin(codes, candidates)
    steps = (
        pd.DataFrame({"k": codes[keep], "t": timestamps.to_numpy()[keep]})
        .dropna()
        .drop_duplicates()
        .sort_values(["k", "t"], kind="stable")
    )
    steps = steps.groupby("k", sort=False).head(FREQ_STEPS + 1)
    votes: Counter[str] = Counter()
    for _, group in steps.groupby("k", sort=False):
        if len(group) >= 3:
            index = pd.DatetimeIndex(group["t"])
            if utc_zone is not None:
                index = index.tz_localize("UTC").tz_convert(utc_zone)
            inferred = pd.infer_freq(index)
            if inferred is not None:
                votes[pd.tseries.frequencies.to_offset(inferred).freqstr] += 1
    if not votes:
        raise DataValidationError(
            "regular_frequency",
            contract.timestamp,
            len(names),
            detail=(
                f"no frequency could be inferred from {len(candidates)} series with at least 3 "
                "steps; declare contract.freq or provide regular timestamps"
            ),
            example=str(names[0]) if len(names) else None,
        )
    return votes.most_common(1)[0][0]


def sort_series(
    out: pd.DataFrame, contract: DataContract
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rows sorted by (series, timestamp), the series code of each row and the series ids."""
    timestamps = out[contract.timestamp].to_numpy()
    if contract.series_id is None:
        codes = np.zeros(len(out), dtype=np.int64)
        names = np.array([SINGLE_SERIES_ID], dtype=object)
        order = np.argsort(timestamps, kind="stable")
    else:
        codes, uniques = pd.factorize(out[contract.series_id], sort=True)
        names = np.asarray(uniques, dtype=object)
        if _in_order(codes, timestamps):  # as most inputs come: no sort, no copy
            return out, codes, names
        order = np.lexsort((timestamps, codes))
    if np.array_equal(order, np.arange(len(out))):
        return out, codes, names
    return out.take(order), codes[order], names


def _in_order(codes: np.ndarray, timestamps: np.ndarray) -> bool:
    """Whether rows are already sorted by (series code, timestamp)."""
    same = codes[1:] == codes[:-1]
    return bool(
        np.all(codes[1:] >= codes[:-1]) and np.all(~same | (timestamps[1:] >= timestamps[:-1]))
    )


def repeated_steps(out: pd.DataFrame, codes: np.ndarray, ctx: Context) -> np.ndarray:
    """The rows whose (series, step) another row holds too, in rows sorted by (series, step):
    neighbours, so no hash of every row pair (every copy is marked)."""
    stamps = out[ctx.contract.timestamp].to_numpy()
    same = (codes[1:] == codes[:-1]) & (stamps[1:] == stamps[:-1])
    repeated = np.zeros(len(out), dtype=bool)
    repeated[1:] |= same
    repeated[:-1] |= same
    return repeated


@dataclass
class SeriesView:
    """A frame sorted by (series, timestamp) with unique timestamps per series, seen per series.

    ``summary`` has one row per series (steps, usable steps, missing steps, gap share, off-grid
    steps, the step after which the first one is missing); ``off_grid`` marks the rows off the
    frequency's grid.
    """

    frame: pd.DataFrame
    codes: np.ndarray  # the series of each row
    names: np.ndarray  # the series ids
    freq: str
    summary: pd.DataFrame
    off_grid: np.ndarray

    @property
    def starts(self) -> np.ndarray:
        """The first row of each series."""
        return np.flatnonzero(np.r_[True, self.codes[1:] != self.codes[:-1]])

    @classmethod
    def of(
        cls,
        out: pd.DataFrame,
        codes: np.ndarray,
        names: np.ndarray,
        freq: str,
        contract: DataContract,
    ) -> SeriesView:
        """A step is on the grid of a fixed frequency (``D``, ``h``, ...) when it is a whole
        number of steps after the series' first timestamp; for calendar frequencies (``W-MON``,
        ``MS``, ``B``, ...) when it is on the offset.
        """
        stamps = out[contract.timestamp].to_numpy().astype("datetime64[ns]").view(np.int64)
        n = len(stamps)
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        counts = np.diff(np.r_[starts, n])
        offset = pd.tseries.frequencies.to_offset(freq)
        # full-length temporaries are few and reused: at 40 M rows each int64 one is 320 MB
        if isinstance(offset, pd.offsets.Tick | pd.offsets.Day):
            step = pd.Timedelta(offset).value
            index = np.repeat(stamps[starts], counts)
            np.subtract(stamps, index, out=index)  # since the series' first step
            off_grid = np.remainder(index, step) != 0
            np.floor_divide(index, step, out=index)
        else:
            low = offset.rollback(pd.Timestamp(stamps.min()))
            grid = pd.date_range(low, pd.Timestamp(stamps.max()), freq=offset).asi8
            position = np.clip(np.searchsorted(grid, stamps), 0, len(grid) - 1)
            off_grid = grid[position] != stamps
            index = position.astype(np.int64)
        ends = starts + counts - 1
        on_grid = np.add.reduceat(~off_grid, starts, dtype=np.int64) if n else np.array([])
        span = index[ends] - index[starts] + 1
        missing = np.maximum(span - on_grid, 0)
        # the first step after which one is missing, per series (for the example)
        jump = np.zeros(n, dtype=bool)
        np.greater(index[1:] - index[:-1], 1, out=jump[:-1])
        del index
        jump[ends] = False
        first_jump = np.full(len(starts), -1, dtype=np.int64)
        hits = np.flatnonzero(jump)
        if len(hits):
            series_of_hit = np.searchsorted(starts, hits, side="right") - 1
            unique_series, first_hit = np.unique(series_of_hit, return_index=True)
            first_jump[unique_series] = hits[first_hit]
        after = out[contract.timestamp].to_numpy()[np.where(first_jump >= 0, first_jump, starts)]
        observed = np.add.reduceat(out[contract.target].notna().to_numpy(), starts, dtype=np.int64)
        summary = pd.DataFrame(
            {
                "series": names[codes[starts]].astype(str),
                "steps": counts,
                "usable_steps": np.where(observed > 0, counts, 0),  # no target at all: unusable
                "missing_steps": missing,
                "gap_share": missing / np.maximum(span, 1),
                "off_frequency_steps": counts - on_grid,
                "first_gap_after": after,
            }
        )
        return cls(out, codes, names, freq, summary, off_grid)


def fill_targets(out: pd.DataFrame, contract: DataContract) -> pd.DataFrame:
    """Missing targets (the tolerated ones) filled: the series' previous value, else the next."""
    target = contract.target
    if not out[target].isna().any():
        return out
    if contract.series_id is None:
        out[target] = out[target].ffill().bfill()
    else:
        filled = out.groupby(contract.series_id, sort=False, observed=True)[target].ffill()
        out[target] = filled.groupby(out[contract.series_id], sort=False, observed=True).bfill()
    return out


# -- the checks of the series rules -----------------------------------------------------------


def on_frequency(view: SeriesView, column: str, ctx: Context) -> SeriesFinding:
    """Series with steps off the frequency's grid; each off-grid step counts."""
    off = view.summary["off_frequency_steps"].to_numpy()

    def example(series_mask: np.ndarray) -> str:
        first = np.flatnonzero(view.off_grid & series_mask[view.codes])[0]
        stamp = render_stamp(view.frame[column].iloc[first], ctx.utc_zone)
        series = view.names[view.codes[first]]
        return f"{stamp} in series {series} is not on the '{view.freq}' grid"

    return SeriesFinding("off_frequency_steps", off, off > 0, off, example)


def gaps(view: SeriesView, column: str, ctx: Context) -> SeriesFinding:
    """Series with missing steps (beyond: more than ``max_gap_share``); each one counts."""
    summary = view.summary
    share = summary["gap_share"].to_numpy()
    missing = summary["missing_steps"].to_numpy()

    def example(series_mask: np.ndarray) -> str:
        row = summary[series_mask].iloc[0]
        return (
            f"series {row['series']}: {int(row['missing_steps'])} of "
            f"{int(row['missing_steps'] + row['steps'])} steps missing "
            f"(first after {render_stamp(row['first_gap_after'], ctx.utc_zone)})"
        )

    beyond = share > ctx.config.max_gap_share
    return SeriesFinding("gap_share", share, missing > 0, missing, example, beyond)


def length(view: SeriesView, column: str, ctx: Context) -> SeriesFinding:
    """Series with fewer than ``min_length`` usable steps (a series without a target has none)."""
    summary = view.summary
    usable = summary["usable_steps"].to_numpy()

    def example(series_mask: np.ndarray) -> str:
        row = summary[series_mask].iloc[0]
        return f"{row['series']} ({int(row['usable_steps'])} steps)"

    return SeriesFinding(
        "usable_steps", usable, usable < ctx.min_length, np.ones(len(usable)), example
    )
