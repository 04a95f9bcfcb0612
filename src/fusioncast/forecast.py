"""Forecasting the next horizon of every series from its latest data."""

from __future__ import annotations

from dataclasses import replace

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
) -> pd.DataFrame:
    """One row per (series, horizon step): point forecast, quantiles and the text that weighed most.

    Series with fewer than ``lookback`` rows are left out (validation reports them). ``frame``
    holds timestamps as validation hands them on; with ``timezone`` (that of tz-aware input,
    ``ValidationReport.timezone``) the published timestamps are tz-aware in it.
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
    raw_text = {c: frame[c].to_numpy(dtype=object) for c in state.contract.text}
    shown = replace(arrays, timestamps=local_times.to_numpy(dtype=object)) if timezone else arrays
    scaled, explanations = explain_windows(
        model, shown, origins, config, state.contract.text, raw_text
    )
    series = series_index(arrays, origins)
    values = state.scaler.inverse_target(scaled.astype(np.float64), series)
    horizon = config.horizon
    origin_times = pd.DatetimeIndex(arrays.timestamps[origins])
    offset = pd.tseries.frequencies.to_offset(freq)
    steps = np.arange(1, horizon + 1)
    # steps are taken on the timestamps as held (UTC or wall-clock), then the zone is attached
    target_times = np.concatenate(
        [pd.date_range(t + offset, periods=horizon, freq=offset).to_numpy() for t in origin_times]
    )
    quantiles = config.output_quantiles
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
