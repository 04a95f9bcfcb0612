"""Per-series standard scaling of the target and numeric covariates, fitted on training steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fusioncast.contract import DataContract
from fusioncast.errors import ModelStateError
from fusioncast.frames import series_keys

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
        keys = series_keys(frame, contract)
        stats = _stats(frame.loc[fit_mask, columns], keys[fit_mask])
        return cls(columns=columns, stats=stats)

    def transform(self, frame: pd.DataFrame, contract: DataContract) -> np.ndarray:
        """Scaled values ``[rows, len(columns)]`` float32; missing covariates become 0 (mean).

        Works block by block over series, in float32, so memory stays at one copy of the table.
        """
        keys = series_keys(frame, contract)
        self._require(keys)
        scaled = frame[self.columns].to_numpy(dtype=np.float32, na_value=np.nan, copy=True)
        codes, uniques = pd.factorize(keys)
        loc = np.array([[self.stats[k][c][0] for c in self.columns] for k in uniques], np.float32)
        scale = np.array([[self.stats[k][c][1] for c in self.columns] for k in uniques], np.float32)
        boundaries = np.flatnonzero(np.diff(codes)) + 1
        for start, stop in zip(
            np.concatenate([[0], boundaries]),
            np.concatenate([boundaries, [len(codes)]]),
            strict=True,
        ):
            code = codes[start]
            block = scaled[start:stop]
            block -= loc[code]
            block /= scale[code]
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
        target = self.columns[0]
        self._require(keys)
        stats = np.array([self.stats[k][target] for k in keys], dtype=np.float64).reshape(-1, 2)
        expand = (slice(None),) + (None,) * (ndim - 1)
        return stats[:, 0][expand], stats[:, 1][expand]

    def with_series(self, frame: pd.DataFrame, contract: DataContract) -> SeriesScaler:
        """A copy that also holds statistics for series of ``frame`` this scaler has not seen."""
        keys = series_keys(frame, contract)
        unseen = np.isin(keys, sorted(set(pd.unique(keys)) - set(self.stats)))
        stats = dict(self.stats)
        stats.update(_stats(frame.loc[unseen, self.columns], keys[unseen]))
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


def _stats(values: pd.DataFrame, keys: np.ndarray) -> dict[str, dict[str, list[float]]]:
    grouped = values.astype(np.float64).groupby(keys, sort=False)
    mean = grouped.mean()
    std = grouped.std(ddof=0)
    out: dict[str, dict[str, list[float]]] = {}
    for key in mean.index:
        out[str(key)] = {}
        for column in values.columns:
            loc = float(mean.at[key, column]) if np.isfinite(mean.at[key, column]) else 0.0
            scale = float(std.at[key, column]) if np.isfinite(std.at[key, column]) else 1.0
            out[str(key)][column] = [loc, scale if scale > _MIN_SCALE else 1.0]
    return out
