"""Classical baseline forecasts on the scaled target, computed on the same windows as the model.

All return ``[B, H]`` forecasts for the windows ending at ``origins``:
  last value; window mean; seasonal naive; ridge regression from the lookback to the horizon, on
  the raw lookback or on the lookback minus its last value (the forecast then adds it back).
The ridge is fitted on training windows, its penalty chosen on validation windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusioncast.split import TRAIN, VALIDATION
from fusioncast.windows import SeriesArrays, gather_targets, window_origins

LAST_VALUE = "last_value"
WINDOW_MEAN = "window_mean"
SEASONAL_NAIVE = "seasonal_naive"
RIDGE = "ridge"
RIDGE_NORMALISED = "ridge_normalised"

_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


def lookback_target(arrays: SeriesArrays, origins: np.ndarray, lookback: int) -> np.ndarray:
    """The scaled target over each window's lookback, ``[B, L]`` (oldest first)."""
    return arrays.numeric[origins[:, None] + np.arange(-lookback + 1, 1), 0]


def last_value(arrays: SeriesArrays, origins: np.ndarray, horizon: int) -> np.ndarray:
    return np.repeat(arrays.numeric[origins, 0][:, None], horizon, axis=1)


def window_mean(
    arrays: SeriesArrays, origins: np.ndarray, lookback: int, horizon: int
) -> np.ndarray:
    mean = lookback_target(arrays, origins, lookback).mean(axis=1)
    return np.repeat(mean[:, None], horizon, axis=1)


def seasonal_naive(
    arrays: SeriesArrays, origins: np.ndarray, horizon: int, season: int
) -> np.ndarray:
    """The value one season before each horizon step (needs ``season <= lookback``)."""
    steps = np.arange(1, horizon + 1)
    back = steps - season * np.ceil(steps / season).astype(np.int64)
    return arrays.numeric[origins[:, None] + back[None, :], 0]


@dataclass
class RidgeBaseline:
    """Linear map from the lookback (plus an intercept) to every horizon step."""

    weights: np.ndarray  # [L + 1, H]
    alpha: float
    normalised: bool
    lookback: int

    @classmethod
    def fit(
        cls, arrays: SeriesArrays, lookback: int, horizon: int, *, normalised: bool
    ) -> RidgeBaseline:
        train = window_origins(arrays, lookback, horizon, TRAIN)
        validation = window_origins(arrays, lookback, horizon, VALIDATION)
        best = None
        for alpha in _ALPHAS:
            candidate = cls.fit_on(arrays, train, lookback, horizon, normalised, alpha)
            if len(validation) == 0:
                return candidate
            actual = gather_targets(arrays, validation, horizon)
            error = float(np.mean((candidate.predict(arrays, validation) - actual) ** 2))
            if best is None or error < best[0]:
                best = (error, candidate)
        return best[1]

    @classmethod
    def fit_on(
        cls,
        arrays: SeriesArrays,
        origins: np.ndarray,
        lookback: int,
        horizon: int,
        normalised: bool,
        alpha: float,
    ) -> RidgeBaseline:
        """The ridge of penalty ``alpha`` fitted on the windows ending at ``origins``."""
        x, y = _design(arrays, origins, lookback, horizon, normalised)
        penalty = np.eye(x.shape[1])
        penalty[-1, -1] = 0.0  # the intercept is not shrunk
        weights = np.linalg.solve(x.T @ x + alpha * len(x) * penalty, x.T @ y)
        return cls(weights, alpha, normalised, lookback)

    def predict(self, arrays: SeriesArrays, origins: np.ndarray) -> np.ndarray:
        history = lookback_target(arrays, origins, self.lookback).astype(np.float64)
        last = history[:, -1:] if self.normalised else 0.0
        x = np.concatenate([history - last, np.ones((len(origins), 1))], axis=1)
        return x @ self.weights + last


def _design(arrays, origins, lookback, horizon, normalised):
    history = lookback_target(arrays, origins, lookback).astype(np.float64)
    target = gather_targets(arrays, origins, horizon).astype(np.float64)
    if normalised:
        last = history[:, -1:]
        history, target = history - last, target - last
    return np.concatenate([history, np.ones((len(origins), 1))], axis=1), target


def baseline_forecasts(
    arrays: SeriesArrays,
    origins: np.ndarray,
    lookback: int,
    horizon: int,
    *,
    season: int | None = None,
    ridge: bool = True,
) -> dict[str, np.ndarray]:
    """Every baseline's scaled forecasts ``[B, H]`` for the windows ending at ``origins``."""
    out = {
        LAST_VALUE: last_value(arrays, origins, horizon),
        WINDOW_MEAN: window_mean(arrays, origins, lookback, horizon),
    }
    if season and 1 < season <= lookback:
        out[SEASONAL_NAIVE] = seasonal_naive(arrays, origins, horizon, season)
    if ridge:
        for name, normalised in ((RIDGE, False), (RIDGE_NORMALISED, True)):
            model = RidgeBaseline.fit(arrays, lookback, horizon, normalised=normalised)
            out[name] = model.predict(arrays, origins)
    return out
