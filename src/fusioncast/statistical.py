"""The statistical peers as baselines: statsforecast's AutoETS, AutoTheta and AutoARIMA.

What a user would run instead of the network: each model sees a series' whole history up to the
forecast origin (not just the model's lookback) with the season of the data's frequency, and
forecasts the horizon after it. Fitting is on the original scale (as a user would fit them); the
forecasts come back on the model's scaled target, so they are scored on the same windows and the
same scale as the model.

Refitting at every origin costs a model selection per window (AutoARIMA takes seconds per fit), so
each series' model is selected and fitted at its first origin and again every ``refit_every``
origins; at the origins between, the fitted model is run forward over the new observations
(statsforecast's ``forward``: the same parameters, the state updated to the origin). A fit that
fails (too short a history for the model) gives the last value for that window.
"""

from __future__ import annotations

import warnings

import numpy as np

from fusioncast.scaling import SeriesScaler
from fusioncast.windows import SeriesArrays

AUTO_ETS = "auto_ets"
AUTO_THETA = "auto_theta"
AUTO_ARIMA = "auto_arima"
STATISTICAL_MODELS = (AUTO_ETS, AUTO_THETA, AUTO_ARIMA)


def _model(name: str, season: int):
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta

    kind = {AUTO_ETS: AutoETS, AUTO_THETA: AutoTheta, AUTO_ARIMA: AutoARIMA}[name]
    return kind(season_length=season)


def statistical_forecasts(
    arrays: SeriesArrays,
    scaler: SeriesScaler,
    origins: np.ndarray,
    horizon: int,
    *,
    season: int | None,
    models: tuple[str, ...],
    refit_every: int,
) -> dict[str, np.ndarray]:
    """Each model's forecasts ``[B, H]`` on the scaled target for the windows ending at ``origins``.

    Args:
        season: the season length of the data's frequency (None or 1: none).
        refit_every: a series' model is selected and fitted again after this many origins.
    """
    out = {name: np.empty((len(origins), horizon)) for name in models}
    if not models or len(origins) == 0:
        return out
    series_of_row = arrays.series_ids[arrays.row_series]
    values = scaler.inverse_target(arrays.numeric[:, 0].astype(np.float64), series_of_row)
    owner = arrays.row_series[origins]
    for s in np.unique(owner):
        start = arrays.offsets[s]
        windows = np.flatnonzero(owner == s)
        windows = windows[np.argsort(origins[windows], kind="stable")]
        for name in models:
            out[name][windows] = _one_series(
                values[start : origins[windows].max() + 1],
                origins[windows] - start,
                horizon,
                name,
                season or 1,
                refit_every,
            )
    for name in models:
        out[name] = scaler.scale_target(out[name], arrays.series_ids[owner])
    return out


def _one_series(
    history: np.ndarray,
    ends: np.ndarray,
    horizon: int,
    name: str,
    season: int,
    refit_every: int,
) -> np.ndarray:
    """Forecasts ``[len(ends), H]`` from the history up to each of ``ends`` (ascending)."""
    forecasts = np.empty((len(ends), horizon))
    fitted, fitted_at = None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, end in enumerate(ends):
            y = history[: end + 1]
            try:
                if fitted is None or i - fitted_at >= refit_every:
                    # a season the history cannot show twice is left out
                    model = _model(name, season if len(y) >= 2 * season else 1)
                    fitted, fitted_at = model.fit(y), i
                forecast = fitted.forward(y=y, h=horizon)["mean"]
                if not np.all(np.isfinite(forecast)):
                    raise ValueError("non-finite forecast")
            except Exception:  # noqa: BLE001 - any failed fit falls back to the last value
                fitted, forecast = None, np.full(horizon, y[-1])
            forecasts[i] = forecast
    return forecasts
