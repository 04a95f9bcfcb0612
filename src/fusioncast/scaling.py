"""Per-series standard scaling of the target and numeric covariates, fitted on training steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fusioncast.contract import DataContract
from fusioncast.errors import ModelStateError
from fusioncast.frames import row_blocks, series_codes

SCALER_VERSION = 1
_MIN_SCALE = 1e-8
#: Largest distance from a series' training mean, in its training standard deviations, that a
#: value may have (rule ``within_scale``). Training steps are never that far (at most the square
#: root of their count); beyond it a value is a unit or data error, and the model's forecast of it
#: overflows.
SCALE_BOUND = 1e6


@dataclass
class SeriesScaler:
    """Location and scale per (series, column); column 0 is always the target.

    ``stats[series_id][column] == [location, scale]``. A series unseen in training is added with
    statistics of its own history by :meth:`with_series` before forecasting it.
    """

    columns: list[str]
    stats: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    @classmethod
    def fit(cls, frame: pd.DataFrame, contract: DataContract, fit_mask: np.ndarray) -> SeriesScaler:
        """Fit on the rows where ``fit_mask`` is true (the training steps)."""
        columns = [contract.target, *contract.numeric]
        codes, ids = series_codes(frame, contract)
        rows = np.asarray(fit_mask, dtype=bool)
        return cls(columns=columns, stats=_stats(frame[columns], codes, ids, rows))

    def transform(
        self,
        frame: pd.DataFrame,
        contract: DataContract,
        series: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Scaled values ``[rows, len(columns)]`` float32; missing covariates become 0 (mean).

        ``series``: the frame's :func:`~fusioncast.frames.series_codes`, when already at hand.
        Works in blocks of rows, in float32, so memory stays at one copy of the table.
        """
        codes, ids = series or series_codes(frame, contract)
        self._require(ids)
        loc, scale = self._matrices(ids)
        scaled = frame[self.columns].to_numpy(dtype=np.float32, na_value=np.nan, copy=True)
        for block in row_blocks(len(scaled)):
            scaled[block] -= loc[codes[block]]
            scaled[block] /= scale[codes[block]]
        np.nan_to_num(scaled[:, 1:], copy=False, nan=0.0)
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
        ids = np.asarray(ids, dtype=object)
        self._require(ids)
        target = self.columns[0]
        stats = np.array([self.stats[k][target] for k in ids], dtype=np.float64).reshape(-1, 2)
        expand = (slice(None),) + (None,) * (ndim - 1)
        return stats[codes, 0][expand], stats[codes, 1][expand]

    def _matrices(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Location and scale ``[len(ids), len(columns)]`` float32 of the series ``ids``."""
        pairs = np.array(
            [[self.stats[k][c] for c in self.columns] for k in ids], dtype=np.float32
        ).reshape(len(ids), len(self.columns), 2)
        return pairs[..., 0], pairs[..., 1]

    def with_series(self, frame: pd.DataFrame, contract: DataContract) -> SeriesScaler:
        """A copy that also holds statistics for series of ``frame`` this scaler has not seen
        (fitted on their whole history in ``frame``)."""
        codes, ids = series_codes(frame, contract)
        new = np.array([k not in self.stats for k in ids], dtype=bool)
        if not new.any():
            return self
        keys = np.where(new[codes], codes, -1)
        stats = dict(self.stats)
        stats.update(_stats(frame[self.columns], keys, ids))
        return SeriesScaler(self.columns, stats)

    def _require(self, keys: np.ndarray) -> None:
        missing = sorted(set(pd.unique(keys)) - set(self.stats))
        if missing:
            raise ModelStateError(
                f"scaler has no statistics for {len(missing)} series (e.g. {missing[0]!r}); "
                "call with_series() first to scale series unseen in training"
            )

    def to_json(self) -> dict[str, Any]:
        return {"version": SCALER_VERSION, "columns": self.columns, "stats": self.stats}

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> SeriesScaler:
        if payload.get("version") != SCALER_VERSION:
            raise ModelStateError(
                f"scaler state version {payload.get('version')!r} is not supported"
            )
        return cls(columns=list(payload["columns"]), stats=payload["stats"])


def _stats(
    values: pd.DataFrame, keys: np.ndarray, ids: np.ndarray, fit: np.ndarray | None = None
) -> dict[str, dict[str, list]]:
    """``[location, scale]`` per column of ``values`` for each series ``ids[k]`` with rows whose
    key is ``k`` (rows keyed -1, and with ``fit`` the rows where it is false, are left out):
    mean and population standard deviation of the non-missing values; 0 and 1 where there are
    none, 1 for a constant column.

    Two passes (sums, then squared deviations from the mean) of ``bincount`` over blocks of rows:
    linear, and each block's temporaries are small enough to be reused from one to the next.
    """
    n, groups = len(keys), len(ids)
    columns = list(values.columns)
    data = [values[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in columns]
    rows = np.zeros(groups)
    count = np.zeros((len(columns), groups))
    total = np.zeros((len(columns), groups))
    for block in row_blocks(n):
        key = keys[block]
        used = key >= 0 if fit is None else (key >= 0) & fit[block]
        rows += np.bincount(key[used], minlength=groups)
        for j, column in enumerate(data):
            x = column[block]
            ok = used & ~np.isnan(x)
            count[j] += np.bincount(key[ok], minlength=groups)
            total[j] += np.bincount(key[ok], weights=x[ok], minlength=groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    squares = np.zeros((len(columns), groups))
    for block in row_blocks(n):
        key = keys[block]
        used = key >= 0 if fit is None else (key >= 0) & fit[block]
        for j, column in enumerate(data):
            x = column[block]
            ok = used & ~np.isnan(x)
            deviation = x[ok] - mean[j, key[ok]]
            squares[j] += np.bincount(key[ok], weights=deviation * deviation, minlength=groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(squares / count)
    loc = np.where(np.isfinite(mean), mean, 0.0).T
    scale = np.where(np.isfinite(std) & (std > _MIN_SCALE), std, 1.0).T
    present = np.flatnonzero(rows)
    return {
        str(ids[g]): {c: [lv, sv] for c, lv, sv in zip(columns, l_row, s_row, strict=True)}
        for g, l_row, s_row in zip(
            present.tolist(), loc[present].tolist(), scale[present].tolist(), strict=True
        )
    }
