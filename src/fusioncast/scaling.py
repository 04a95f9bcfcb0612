"""Per-series standard scaling of the target and numeric covariates, fitted on training steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fusioncast.contract import DataContract
from fusioncast.errors import ModelStateError
from fusioncast.frames import row_blocks, series_codes

SCALER_VERSION = 2
_MIN_SCALE = 1e-8
#: Largest distance from a series' training mean, in its training standard deviations, that a
#: value may have (rule ``within_scale``). Training steps are never that far (at most the square
#: root of their count); beyond it a value is a unit or data error, and the model's forecast of it
#: overflows.
SCALE_BOUND = 1e6


@dataclass(eq=False)
class SeriesScaler:
    """Location and scale per (series, column); column 0 is always the target.

    ``location[i, j]`` and ``scale[i, j]`` are series ``series[i]``'s statistics of
    ``columns[j]``: arrays, one row per series, so that fitting and looking up 100,000 series
    make no Python object per series. A series unseen in training is added with statistics of
    its own history by :meth:`with_series` before forecasting it.
    """

    columns: list[str]
    series: np.ndarray  # str, object [S]
    location: np.ndarray  # float64 [S, C]
    scale: np.ndarray  # float64 [S, C]
    _index: pd.Index = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.series = np.asarray(self.series, dtype=object)
        shape = (len(self.series), len(self.columns))
        self.location = np.asarray(self.location, dtype=np.float64).reshape(shape)
        self.scale = np.asarray(self.scale, dtype=np.float64).reshape(shape)
        self._index = pd.Index(self.series, dtype=object)

    @classmethod
    def fit(cls, frame: pd.DataFrame, contract: DataContract, fit_mask: np.ndarray) -> SeriesScaler:
        """Fit on the rows where ``fit_mask`` is true (the training steps)."""
        columns = [contract.target, *contract.numeric]
        codes, ids = series_codes(frame, contract)
        rows = np.asarray(fit_mask, dtype=bool)
        return cls(columns, *_stats([_floats(frame[c]) for c in columns], codes, ids, rows))

    def statistics(self, series_id: str, column: str) -> tuple[float, float]:
        """``(location, scale)`` of one series' column."""
        row, j = self.positions(np.array([series_id]))[0], self.columns.index(column)
        return float(self.location[row, j]), float(self.scale[row, j])

    def positions(self, keys: np.ndarray) -> np.ndarray:
        """Row of each of ``keys`` (series ids) in :attr:`location` and :attr:`scale`.

        Raises :class:`ModelStateError` when the scaler has no statistics for some of them.
        """
        rows = self._index.get_indexer(np.asarray(keys, dtype=object))
        if (rows < 0).any():
            missing = sorted(set(pd.unique(np.asarray(keys, dtype=object)[rows < 0])))
            raise ModelStateError(
                f"scaler has no statistics for {len(missing)} series (e.g. {missing[0]!r}); "
                "call with_series() first to scale series unseen in training"
            )
        return rows

    def transform(
        self,
        frame: pd.DataFrame,
        contract: DataContract,
        series: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Scaled values ``[rows, len(columns)]`` float32; missing covariates become 0 (mean).

        ``series``: the frame's :func:`~fusioncast.frames.series_codes`, when already at hand.
        Works column by column in blocks of rows, in float32: the output is the only array the
        length of the frame.
        """
        codes, ids = series or series_codes(frame, contract)
        rows = self.positions(ids)
        loc = self.location[rows].astype(np.float32).T  # [C, len(ids)]
        scale = self.scale[rows].astype(np.float32).T
        scaled = np.empty((len(frame), len(self.columns)), dtype=np.float32)
        for j, column in enumerate(self.columns):
            values = _floats(frame[column])
            for block in row_blocks(len(frame)):
                key = codes[block]
                x = values[block].astype(np.float32)
                x -= loc[j].take(key)
                x /= scale[j].take(key)
                if j:  # a missing covariate is its series' mean
                    np.nan_to_num(x, copy=False, nan=0.0)
                scaled[block, j] = x
        return scaled

    def inverse_target(self, values: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Undo the target scaling; ``values`` has the rows of ``keys`` first, any shape after."""
        loc, scale = self._target_stats(keys, values.ndim)
        return values * scale + loc

    def scale_target(self, values: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """The target on the scale the model sees (the inverse of :meth:`inverse_target`)."""
        loc, scale = self._target_stats(keys, values.ndim)
        return (values - loc) / scale

    def _target_stats(self, keys: np.ndarray, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        """Location and scale of the target for each of ``keys``, shaped to broadcast against
        values of ``ndim`` dimensions whose first is the keys'."""
        codes, ids = pd.factorize(np.asarray(keys, dtype=object))
        rows = self.positions(np.asarray(ids, dtype=object))[codes]
        expand = (slice(None),) + (None,) * (ndim - 1)
        return self.location[rows, 0][expand], self.scale[rows, 0][expand]

    def with_series(self, frame: pd.DataFrame, contract: DataContract) -> SeriesScaler:
        """A copy that also holds statistics for series of ``frame`` this scaler has not seen
        (fitted on their whole history in ``frame``)."""
        codes, ids = series_codes(frame, contract)
        new = self._index.get_indexer(ids) < 0
        if not new.any():
            return self
        rows = np.flatnonzero(new[codes])  # the unseen series' rows only
        data = [_floats(frame[c])[rows] for c in self.columns]
        series, location, scale = _stats(data, codes[rows], ids)
        return SeriesScaler(
            self.columns,
            np.concatenate([self.series, series]),
            np.concatenate([self.location, location]),
            np.concatenate([self.scale, scale]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SCALER_VERSION,
            "columns": self.columns,
            "series": self.series.tolist(),
            "location": self.location.tolist(),
            "scale": self.scale.tolist(),
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> SeriesScaler:
        version = payload.get("version")
        if version == 1:  # {series: {column: [location, scale]}}, as models registered before
            columns, stats = list(payload["columns"]), payload["stats"]
            pairs = np.array([[stats[k][c] for c in columns] for k in stats], dtype=np.float64)
            pairs = pairs.reshape(len(stats), len(columns), 2)
            return cls(columns, np.array(list(stats), dtype=object), pairs[..., 0], pairs[..., 1])
        if version != SCALER_VERSION:
            raise ModelStateError(f"scaler state version {version!r} is not supported")
        return cls(
            list(payload["columns"]), payload["series"], payload["location"], payload["scale"]
        )


def _floats(values: pd.Series) -> np.ndarray:
    """A numeric column as float64, missing as NaN (a view of a float64 column, no copy)."""
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _stats(
    data: list[np.ndarray], keys: np.ndarray, ids: np.ndarray, fit: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Statistics of each series ``ids[k]`` in the columns ``data`` (float64, NaN missing),
    from the rows whose key is ``k`` (with ``fit``, only the rows where it is true): the series
    that have rows, and their location and scale ``[series, columns]``, the mean and population
    standard deviation of the non-missing values; 0 and 1 where there are none, 1 for a
    constant column.

    Two passes (sums, then squared deviations from the mean) of ``bincount`` over blocks of rows:
    linear, and each block's temporaries are small enough to be reused from one to the next.
    """
    n, groups, columns = len(keys), len(ids), range(len(data))
    rows = np.zeros(groups)
    count = np.zeros((len(columns), groups))
    total = np.zeros((len(columns), groups))
    for block in row_blocks(n):
        key = keys[block].astype(np.intp)  # bincount's index type: cast once, not per call
        used = key >= 0 if fit is None else (key >= 0) & fit[block]
        rows += np.bincount(key[used], minlength=groups)
        for j, column in enumerate(data):
            x = column[block]
            ok = used & ~np.isnan(x)
            held = key[ok]
            count[j] += np.bincount(held, minlength=groups)
            total[j] += np.bincount(held, weights=x[ok], minlength=groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    squares = np.zeros((len(columns), groups))
    for block in row_blocks(n):
        key = keys[block].astype(np.intp)
        used = key >= 0 if fit is None else (key >= 0) & fit[block]
        for j, column in enumerate(data):
            x = column[block]
            ok = used & ~np.isnan(x)
            held = key[ok]
            deviation = x[ok] - mean[j].take(held)
            squares[j] += np.bincount(held, weights=deviation * deviation, minlength=groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(squares / count)
    loc = np.where(np.isfinite(mean), mean, 0.0).T
    scale = np.where(np.isfinite(std) & (std > _MIN_SCALE), std, 1.0).T
    present = np.flatnonzero(rows)
    return np.asarray(ids, dtype=object)[present], loc[present], scale[present]
