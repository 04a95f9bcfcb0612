"""Forecast error metrics, per window and horizon step, on the scaled and the original scale.

Arrays are ``[B, H]`` (windows x horizon steps); quantile forecasts are ``[B, H, Q]``.

- ``mse``, ``mae``: on the per-series z-scored target (training statistics), comparable with
  published benchmarks.
- ``mase``: absolute error on the original scale divided by the series' in-sample seasonal-naive
  mean absolute error over its training steps (lag = season, 1 when there is none). Undefined (NaN)
  for a series whose training steps never change.
- ``smape``: ``200 |y - f| / (|y| + |f|)`` in percent, 0 where both are 0 (original scale).
- ``pinball``: the quantile loss averaged over the model's quantiles (scaled target).
- ``coverage_<k>``: share of actual values inside the central ``k``% interval formed by a quantile
  ``q`` and ``1 - q`` (e.g. ``coverage_80`` from p10 and p90); nominal value ``k / 100``.
"""

from __future__ import annotations

import numpy as np


def squared_error(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    return (forecast - actual) ** 2


def absolute_error(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    return np.abs(forecast - actual)


def smape_terms(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """Per-point sMAPE in percent (0..200); 0 where actual and forecast are both 0."""
    denominator = np.abs(actual) + np.abs(forecast)
    numerator = 200.0 * np.abs(forecast - actual)
    return np.divide(
        numerator,
        denominator,
        out=np.zeros_like(numerator, dtype=np.float64),
        where=denominator > 0,
    )


def mase_scale(history: np.ndarray, season: int = 1) -> float:
    """In-sample seasonal-naive MAE of ``history`` (one series, original scale, time order).

    NaN when the history is shorter than ``season + 1`` or never changes.
    """
    history = np.asarray(history, dtype=np.float64)
    if len(history) <= season:
        return float("nan")
    scale = float(np.mean(np.abs(history[season:] - history[:-season])))
    return scale if scale > 0 else float("nan")


def pinball_terms(
    actual: np.ndarray, quantile_forecasts: np.ndarray, quantiles: tuple[float, ...]
) -> np.ndarray:
    """Quantile loss averaged over ``quantiles``, per point ``[B, H]``."""
    q = np.asarray(quantiles, dtype=np.float64)
    diff = actual[..., None] - quantile_forecasts
    return np.mean(np.maximum(q * diff, (q - 1.0) * diff), axis=-1)


def central_intervals(quantiles: tuple[float, ...]) -> list[tuple[int, float, float]]:
    """``(percent, lower, upper)`` for every pair ``q, 1 - q`` among ``quantiles`` (``q < 0.5``)."""
    present = {round(q, 6) for q in quantiles}
    out = []
    for q in sorted(quantiles):
        upper = round(1.0 - q, 6)
        if q < 0.5 and upper in present:
            out.append((int(round((upper - q) * 100)), q, 1.0 - q))
    return out


def interval_hits(
    actual: np.ndarray,
    quantile_forecasts: np.ndarray,
    quantiles: tuple[float, ...],
    lower: float,
    upper: float,
) -> np.ndarray:
    """1.0 where ``actual`` lies within the forecast ``[lower, upper]`` quantiles, else 0.0."""
    index = {round(q, 6): j for j, q in enumerate(quantiles)}
    low = quantile_forecasts[..., index[round(lower, 6)]]
    high = quantile_forecasts[..., index[round(upper, 6)]]
    return ((actual >= low) & (actual <= high)).astype(np.float64)
