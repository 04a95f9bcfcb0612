"""Forecasting the next horizon of every series from its latest data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Literal

import keras
import numpy as np
import pandas as pd

from fusioncast.contract import ForecastColumn as F
from fusioncast.errors import DataValidationError
from fusioncast.predict import explain_windows
from fusioncast.state import ForecastingState, series_index
from fusioncast.timestamps import attach_zone
from fusioncast.windows import forecast_origins


def forecast_frame(
    model: keras.Model,
    frame: pd.DataFrame,
    state: ForecastingState,
    *,
    freq: str,
    model_version: str,
    run_id: str,
    created_at: pd.Timestamp,
    timezone: str | None = None,
    policy: Literal["fail", "quarantine"] = "fail",
    on_set_aside: Callable[[DataValidationError], None] | None = None,
) -> pd.DataFrame:
    """One row per (series, horizon step): point forecast, quantiles and the text that weighed most.

    Series with fewer than ``lookback`` rows are left out (validation reports them). Two rules
    guard what is published: ``within_scale`` before prediction
    (:meth:`~fusioncast.state.ForecastingState.out_of_scale`) and ``forecast_finite`` after it
    (every published value is finite). A series that breaks one stops the run under the
    ``fail`` policy (:class:`~fusioncast.errors.DataValidationError`); under ``quarantine`` it is
    left out, ``on_set_aside`` gets the error that names it, and the rest is published (the run
    stops when no series is left). ``frame`` holds timestamps as validation hands them on; with
    ``timezone`` (that of tz-aware input, ``ValidationReport.timezone``) the published timestamps
    are tz-aware in it.
    """
    config = state.spec.config
    state = state.for_new_series(frame)
    arrays = state.arrays(frame)
    local_times = attach_zone(arrays.timestamps, timezone, freq)
    origins = forecast_origins(arrays, config.lookback)
    if len(origins) == 0:
        raise DataValidationError(
            "series_min_length",
            state.contract.series_id or state.contract.timestamp,
            len(arrays.series_ids),
            f"no series has the {config.lookback} steps of history the model reads",
        )
    out_of_scale, error = state.out_of_scale(arrays)
    origins = origins[
        ~_set_aside(out_of_scale[arrays.row_series[origins]], error, policy, on_set_aside)
    ]
    raw_text = {c: frame[c].to_numpy(dtype=object) for c in state.contract.text}
    shown = replace(arrays, timestamps=local_times.to_numpy(dtype=object)) if timezone else arrays
    scaled, explanations = explain_windows(
        model, shown, origins, config, state.contract.text, raw_text
    )
    series = series_index(arrays, origins)
    values = state.scaler.inverse_target(scaled.astype(np.float64), series)
    quantiles = config.output_quantiles
    not_finite, error = _not_finite(values, series, quantiles)
    keep = ~_set_aside(not_finite, error, policy, on_set_aside)
    origins, series, values = origins[keep], series[keep], values[keep]
    explanations = [e for e, kept in zip(explanations, keep, strict=True) if kept]
    horizon = config.horizon
    origin_times = pd.DatetimeIndex(arrays.timestamps[origins])
    offset = pd.tseries.frequencies.to_offset(freq)
    steps = np.arange(1, horizon + 1)
    # steps are taken on the timestamps as held (UTC or wall-clock), then the zone is attached
    target_times = np.concatenate(
        [pd.date_range(t + offset, periods=horizon, freq=offset).to_numpy() for t in origin_times]
    )
    out = pd.DataFrame(
        {
            F.SERIES_ID: np.repeat(series.astype(str), horizon),
            F.FORECAST_ORIGIN: local_times[origins].repeat(horizon),
            F.TARGET_TIMESTAMP: attach_zone(target_times, timezone, freq),
            F.HORIZON_STEP: np.tile(steps, len(origins)).astype(np.int32),
            F.FORECAST: values[..., quantiles.index(0.5)].ravel(),
        }
    )
    if len(quantiles) > 1:
        for j, q in enumerate(quantiles):
            out[F.quantile(q)] = values[..., j].ravel()
    out[F.EXPLANATION] = np.repeat(np.asarray(explanations, dtype=object), horizon)
    out[F.MODEL_VERSION] = model_version
    out[F.RUN_ID] = run_id
    out[F.CREATED_AT] = created_at
    return out


def _not_finite(
    values: np.ndarray, series: np.ndarray, quantiles: tuple[float, ...]
) -> tuple[np.ndarray, DataValidationError | None]:
    """Rule ``forecast_finite``: the windows (one per series) whose forecast ``values [B, H, Q]``
    hold NaN or +-inf, and the error naming the first value column that does and the series."""
    bad = ~np.isfinite(values).all(axis=(1, 2))
    if not bad.any():
        return bad, None
    columns = {F.FORECAST: quantiles.index(0.5)}
    if len(quantiles) > 1:
        columns.update({F.quantile(q): j for j, q in enumerate(quantiles)})
    column = next(c for c, j in columns.items() if not np.isfinite(values[bad, :, j]).all())
    names = series[bad].astype(str)
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return bad, DataValidationError(
        "forecast_finite",
        column,
        len(names),
        detail=f"the forecasts of {len(names)} series hold NaN or infinite values: {shown}",
        example=names[0],
    )


def _set_aside(
    bad: np.ndarray,
    error: DataValidationError | None,
    policy: str,
    on_set_aside: Callable[[DataValidationError], None] | None,
) -> np.ndarray:
    """``bad`` (per forecast window) once ``error`` is dealt with under ``policy``.

    Raises it under ``fail``, or when every window breaks the rule.
    """
    if error is None or not bad.any():
        return bad
    if policy != "quarantine" or bad.all():
        raise error
    if on_set_aside is not None:
        on_set_aside(error)
    return bad
