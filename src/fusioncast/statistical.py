"""The statistical peers as baselines: statsforecast's AutoETS, AutoTheta and AutoARIMA.

What a user would run instead of the network: each model sees a series' whole history up to the
forecast origin (not just the model's lookback) with the season of the data's frequency, and
forecasts the horizon after it. Fitting is on the original scale (as a user would fit them); the
forecasts come back on the model's scaled target, so they are scored on the same windows and the
same scale as the model.

Refitting at every origin costs a model selection per window (AutoARIMA takes seconds per fit), so
each series' model is selected and fitted at its first origin and again every ``refit_every``
origins; at the origins between, the fitted model is run forward over the new observations
(statsforecast's ``forward``: the same parameters, the state updated to the origin; AutoARIMA's
Kalman filter is carried from origin to origin instead of run again from the start). A fit that
fails (too short a history for the model) gives the last value for that window.
"""

from __future__ import annotations

import functools
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
    """Forecasts ``[len(ends), H]`` from the history up to each of ``ends`` (ascending): fitted
    at the first of every ``refit_every`` origins and run forward to the others."""
    forecasts = np.empty((len(ends), horizon))
    for first in range(0, len(ends), refit_every):
        segment = ends[first : first + refit_every]
        forecasts[first : first + len(segment)] = _forward_each(
            history, int(segment[0]) + 1, segment, horizon, name, season
        )
    return forecasts


def _forward_each(
    history: np.ndarray,
    fitted_on: int,
    ends: np.ndarray,
    horizon: int,
    name: str,
    season: int,
    harmonic: bool = False,
) -> np.ndarray:
    """Forecasts ``[len(ends), H]`` of the model fitted on ``history[:fitted_on]``, run forward
    to each of ``ends`` (ascending); the last value where the fit or a forward run fails.

    A season the fitted history cannot show twice is left out of the model. ``harmonic``:
    AutoARIMA models the season with Fourier terms (:func:`_harmonic_fit`) instead.
    """
    last = np.repeat(history[ends][:, None], horizon, axis=1)
    train = np.ascontiguousarray(history[:fitted_on], dtype=np.float64)
    season = season if len(train) >= 2 * season else 1
    harmonic = harmonic and name == AUTO_ARIMA and season > 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if harmonic:
                fitted = _harmonic_fit(season, train.tobytes())
            else:
                fitted = _fitted(name, season, train.tobytes())
        except Exception:  # noqa: BLE001 - too short a history for the model: the last value
            return last
        if name == AUTO_ARIMA:
            try:
                fourier_season = season if harmonic else None
                out = _arima_forward(fitted.model_, history, ends, horizon, fourier_season)
            except Exception:  # noqa: BLE001
                return last
            return np.where(np.isfinite(out).all(axis=1, keepdims=True), out, last)
        out = last.copy()
        for i, end in enumerate(ends):
            try:
                forecast = fitted.forward(y=history[: end + 1], h=horizon)["mean"]
            except Exception:  # noqa: BLE001
                continue
            if np.all(np.isfinite(forecast)):
                out[i] = forecast
    return out


@functools.lru_cache(maxsize=32)
def _fitted(name: str, season: int, history: bytes):
    """``name`` selected and fitted on ``history`` (float64 bytes), kept for the process: the
    priors of the models trained on one series (seeds, text controls) and the evaluation after
    them share one fit."""
    return _model(name, season).fit(np.frombuffer(history, dtype=np.float64))


def _fourier(steps: int, season: int, harmonics: int) -> np.ndarray:
    """``[steps, 2 * harmonics]``: the sine and cosine of each harmonic of the season at steps
    0, 1, ..."""
    angle = 2 * np.pi * np.outer(np.arange(steps), np.arange(1, harmonics + 1)) / season
    return np.stack([np.sin(angle), np.cos(angle)], axis=-1).reshape(steps, 2 * harmonics)


@functools.lru_cache(maxsize=32)
def _harmonic_fit(season: int, history: bytes):
    """AutoARIMA without seasonal terms, on Fourier terms of the season (dynamic harmonic
    regression), with the number of harmonics (1 to :data:`MAX_HARMONICS`) of least AICc.

    The model of a season too long for seasonal ARIMA terms: at weekly data's 52, AutoARIMA's
    seasonal fit on Health_US's 972 training steps had not finished after 13 minutes (2 cores);
    this one takes about 4 s per number of harmonics.
    """
    y = np.frombuffer(history, dtype=np.float64)
    fits = []
    for harmonics in range(1, MAX_HARMONICS + 1):
        try:
            fits.append(_model(AUTO_ARIMA, 1).fit(y, X=_fourier(len(y), season, harmonics)))
        except Exception:  # noqa: BLE001 - a failed fit is not a candidate
            continue
    if not fits:
        raise ValueError("no harmonic fit")
    return min(fits, key=lambda f: np.nan_to_num(f.model_["aicc"], nan=np.inf))


def _arima_forward(
    model: dict, history: np.ndarray, ends: np.ndarray, horizon: int, season: int | None = None
) -> np.ndarray:
    """Forecasts ``[len(ends), H]`` of a fitted ARIMA run forward to each of ``ends``
    (ascending), equal to statsforecast's ``forward`` at each origin (the parameters kept, the
    state filtered up to it) but from one pass of the model's Kalman filter over the history,
    its state carried from origin to origin. ``forward`` runs the filter from the start and
    builds the state's initial covariance again at every origin: 0.5 s each at season 52.

    ``season``: the model is :func:`_harmonic_fit`'s, on Fourier terms of that season.
    """
    from statsforecast.arima import arima_like, make_arima

    coef = model["coef"]
    steps = np.arange(1, len(history) + horizon + 1, dtype=np.float64)
    regressors = {"intercept": np.ones_like(steps), "drift": steps}  # statsforecast's columns
    if season is not None:  # the harmonic fit's Fourier terms, named ex_1, ex_2, ...
        terms = sum(name.startswith("ex_") for name in coef)
        fourier = _fourier(len(steps), season, terms // 2)
        regressors.update({f"ex_{j + 1}": fourier[:, j] for j in range(terms)})
    mean = np.zeros_like(steps)
    for term in list(coef)[sum(model["arma"][:4]) :]:
        mean += coef[term] * regressors[term]
    noise = history - mean[: len(history)]
    phi, theta, delta = (model["model"][key] for key in ("phi", "theta", "delta"))
    space = make_arima(phi, theta, delta)
    state, covariance, predicted = space["a"], space["P"], space["Pn"]  # updated in place
    transition, observe = space["T"], space["Z"]
    out = np.empty((len(ends), horizon))
    filtered_to = 0
    for i, end in enumerate(ends):
        if filtered_to:  # the filter's first step takes the predicted covariance as given
            predicted[:] = transition @ covariance @ transition.T + space["V"]
        observed = noise[filtered_to : end + 1]
        arima_like(observed, phi, theta, delta, state, covariance, predicted, 0, False)
        filtered_to = end + 1
        ahead = state.copy()
        for k in range(horizon):
            ahead = transition @ ahead
            out[i, k] = ahead @ observe
        out[i] += mean[end + 1 : end + 1 + horizon]
    return out


#: The peers whose forecasts ``linear_skip="statistical"`` mixes with the ridges.
PRIOR_MODELS = STATISTICAL_MODELS
#: Seasons longer than this (weekly data's 52) get no seasonal terms from statsforecast's AutoETS
#: (it leaves them out itself) and are too slow for AutoARIMA's (:func:`_harmonic_fit`): the
#: prior's AutoARIMA models them with Fourier terms instead.
LONG_SEASON = 24
#: The most harmonics of a long season the prior's AutoARIMA is offered.
MAX_HARMONICS = 6


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
    parameters kept); a season longer than :data:`LONG_SEASON` enters AutoARIMA as Fourier terms
    (:func:`_harmonic_fit`). Rows without a full lookback behind them, which are no window's
    origin, and fits that fail hold the last value.
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
            _forward_each(history, fitted_on, ends, horizon, name, season, season > LONG_SEASON)
            for name in PRIOR_MODELS
        ]
        out[start + ends] = np.stack(forecasts, axis=-1)
    return scaler.scale_target(out, series_of_row).astype(np.float32)
