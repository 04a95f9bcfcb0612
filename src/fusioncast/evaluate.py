"""Evaluation on the test split against simple baselines, per series and horizon step."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd

from fusioncast.baselines import baseline_forecasts
from fusioncast.config import ModelConfig
from fusioncast.errors import DataValidationError
from fusioncast.predict import predict_windows
from fusioncast.split import TEST
from fusioncast.state import series_index
from fusioncast.windows import SeriesArrays, gather_targets, window_origins

MODEL = "fusioncast"

_SEASONS = {"h": 24, "d": 7, "b": 5, "w": 52, "m": 12, "q": 4}


def season_length(freq: str | None) -> int | None:
    """Season of a pandas frequency alias: hourly 24, daily 7, weekly 52, monthly 12, ..."""
    if not freq:
        return None
    base = freq.split("-")[0].lstrip("0123456789").lower()
    for prefix, season in _SEASONS.items():
        if base.startswith(prefix):
            return season
    return None


def evaluate_model(
    model: keras.Model,
    arrays: SeriesArrays,
    config: ModelConfig,
    *,
    season: int | None = None,
    split: int = TEST,
) -> pd.DataFrame:
    """Errors of the model and the baselines on every window of ``split`` (stride 1).

    Returns one row per (model, series_id, horizon_step) with ``mse`` and ``mae`` on the
    per-series scaled target (training statistics) and ``n_windows``.
    """
    origins = window_origins(arrays, config.lookback, config.horizon, split)
    if len(origins) == 0:
        raise DataValidationError(
            "test_windows", "lookback+horizon", 0, "no series has a full test window"
        )
    actual = gather_targets(arrays, origins, config.horizon)
    forecasts = predict_windows(model, arrays, origins, config)
    median = forecasts[..., config.output_quantiles.index(0.5)]
    candidates = {
        MODEL: median,
        **baseline_forecasts(arrays, origins, config.lookback, config.horizon, season=season),
    }
    series = series_index(arrays, origins)
    frames = []
    for name, predicted in candidates.items():
        error = predicted - actual
        long = pd.DataFrame(
            {
                "model": name,
                "series_id": np.repeat(series, config.horizon),
                "horizon_step": np.tile(np.arange(1, config.horizon + 1), len(origins)),
                "squared_error": (error**2).ravel(),
                "absolute_error": np.abs(error).ravel(),
            }
        )
        frames.append(long)
    errors = pd.concat(frames, ignore_index=True)
    grouped = errors.groupby(["model", "series_id", "horizon_step"], sort=True)
    table = grouped.agg(
        mse=("squared_error", "mean"),
        mae=("absolute_error", "mean"),
        n_windows=("squared_error", "size"),
    )
    return table.reset_index()


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per model: mean MSE and MAE over all series, steps and windows."""
    weighted = (
        metrics.assign(
            se=metrics["mse"] * metrics["n_windows"], ae=metrics["mae"] * metrics["n_windows"]
        )
        .groupby("model")[["se", "ae", "n_windows"]]
        .sum()
    )
    summary = pd.DataFrame(
        {
            "mse": weighted["se"] / weighted["n_windows"],
            "mae": weighted["ae"] / weighted["n_windows"],
        }
    )
    return summary.sort_values("mse").reset_index()
