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

from fusioncast.config import ModelConfig
from fusioncast.scaling import SeriesScaler
from fusioncast.split import TRAIN
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


#: The peers whose forecasts ``linear_skip="statistical"`` mixes with the ridges.
PRIOR_MODELS = STATISTICAL_MODELS
#: The longest season AutoARIMA models in the prior; a longer one (weekly data's 52) is left out
#: of its model, as AutoETS leaves out seasons over 24 itself. At season 52 one fit took 68 s and
#: each run forward to an origin 0.5 s on a Health_US series of 972 steps, against 0.5 s and
#: 2 ms without the season (2-core machine).
ARIMA_MAX_SEASON = 24


def _prior_season(name: str, season: int) -> int:
    return 1 if name == AUTO_ARIMA and season > ARIMA_MAX_SEASON else season


_SEASON_BY_HOURS = ((1, 24), (24, 7), (24 * 7, 52), (24 * 30.4, 12), (24 * 91.3, 4))


def season_of(timestamps: np.ndarray, offsets: np.ndarray) -> int:
    """The season length of the data's typical step: hourly 24, daily 7, weekly 52, monthly 12,
    quarterly 4 (1: none of those)."""
    bounds = zip(offsets[:-1], offsets[1:], strict=True)
    steps = [np.diff(timestamps[a:b]) for a, b in bounds if b > a + 1]
    if not steps:
        return 1
    hours = float(np.median(np.concatenate(steps)) / np.timedelta64(1, "h"))
    for step, season in _SEASON_BY_HOURS:
        if abs(hours - step) <= 0.05 * step:
            return season
    return 1


def prior_forecasts(arrays: SeriesArrays, scaler: SeriesScaler, config: ModelConfig) -> np.ndarray:
    """float32 ``[N, H, K]``: from each row as origin, each of :data:`PRIOR_MODELS`' forecasts of
    the scaled target, made from the series' whole history up to that row.

    Each series' models are selected and fitted once, on its training rows (every row when the
    arrays have no split: forecasting), and run forward to each origin (the state updated, the
    parameters kept); AutoARIMA without a season longer than :data:`ARIMA_MAX_SEASON`. Rows
    without a full lookback behind them, which are no window's origin, and fits that fail hold the
    last value.
    """
    horizon, lookback = config.horizon, config.lookback
    season = season_of(arrays.timestamps, arrays.offsets)
    series_of_row = arrays.series_ids[arrays.row_series]
    values = scaler.inverse_target(arrays.numeric[:, 0].astype(np.float64), series_of_row)
    out = np.repeat(values[:, None, None], horizon, axis=1).repeat(len(PRIOR_MODELS), axis=2)
    for s in range(len(arrays.series_ids)):
        start, stop = int(arrays.offsets[s]), int(arrays.offsets[s + 1])
        history = values[start:stop]
        fitted_on = stop - start
        if arrays.split is not None:
            fitted_on = int((arrays.split[start:stop] == TRAIN).sum())  # they come first
        ends = np.arange(lookback - 1, stop - start)
        if len(ends) == 0:
            continue
        forecasts = [
            _forward_each(history, fitted_on, ends, horizon, name, _prior_season(name, season))
            for name in PRIOR_MODELS
        ]
        out[start + ends] = np.stack(forecasts, axis=-1)
    return scaler.scale_target(out, series_of_row).astype(np.float32)


def _forward_each(
    history: np.ndarray, fitted_on: int, ends: np.ndarray, horizon: int, name: str, season: int
) -> np.ndarray:
    """Forecasts ``[len(ends), H]`` of the model fitted on ``history[:fitted_on]``, run forward
    to each of ``ends``; the last value where the fit or a forward run fails."""
    last = np.repeat(history[ends][:, None], horizon, axis=1)
    train = history[:fitted_on]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fitted = _model(name, season if len(train) >= 2 * season else 1).fit(train)
        except Exception:  # noqa: BLE001 - too short a history for the model: the last value
            return last
        out = last.copy()
        for i, end in enumerate(ends):
            try:
                forecast = fitted.forward(y=history[: end + 1], h=horizon)["mean"]
            except Exception:  # noqa: BLE001
                continue
            if np.all(np.isfinite(forecast)):
                out[i] = forecast
    return out
