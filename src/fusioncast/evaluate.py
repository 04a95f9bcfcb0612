"""Evaluation on the test split: the model, its text ablations and the baselines, same windows.

Every candidate forecasts every window of the split (stride 1); errors are kept per series and
horizon step. See :mod:`fusioncast.metrics` for the definitions.

Candidates:
  ``fusioncast``: the trained model (median); its quantiles give ``pinball`` and the coverages.
  ``fusioncast_text_removed`` / ``fusioncast_text_shuffled``: the same trained model, each window
  given no text, or the text of another test window. The gap to ``fusioncast`` is what the model
  draws from the text that goes with each window.
  The baselines of :mod:`fusioncast.baselines` (last value, window mean, seasonal naive, ridge)
  and the statistical peers of :mod:`fusioncast.statistical` (AutoETS, AutoTheta, ...).

Every baseline and the model are scored on the validation split's windows too:
:attr:`Evaluation.validation_mse` and :attr:`Evaluation.best_baseline` (the baseline best there,
which a user choosing on validation would pick) are what the promotion gate compares with.

References (:mod:`fusioncast.references`): forecasts a dataset carries beside it, never
candidates. Each is scored on the windows it forecasts at every step of the horizon (its rows'
``n_windows`` say how many; one that forecasts none has no rows), its rows marked in the
``reference`` column. With the two knowable limits, :attr:`Evaluation.limit` holds the share of the
knowable text gain the model captures, its no-text twin being ``fusioncast_text_removed`` (the
same trained model given no text, as no model is trained without text).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fusioncast import metrics as m
from fusioncast.baselines import baseline_forecasts
from fusioncast.config import BaselineConfig
from fusioncast.contract import MetricColumn as M
from fusioncast.errors import ConfigError, DataValidationError
from fusioncast.forecast import Forecaster
from fusioncast.references import REFERENCE, align_references, limit_figures
from fusioncast.references import RULE as REFERENCE_RULE
from fusioncast.scaling import SeriesScaler
from fusioncast.split import TEST, TRAIN, VALIDATION
from fusioncast.state import series_index
from fusioncast.statistical import statistical_forecasts
from fusioncast.windows import SeriesArrays, gather_targets, window_origins

MODEL = "fusioncast"
TEXT_REMOVED = "fusioncast_text_removed"
TEXT_SHUFFLED = "fusioncast_text_shuffled"
#: the trained model and its ablations; every other candidate is a baseline
MODELS = (MODEL, TEXT_REMOVED, TEXT_SHUFFLED)

METRICS_VERSION = 1

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


@dataclass
class Evaluation:
    """Metrics per (model, series, horizon step) and the forecasts they came from.

    ``actual`` and ``forecasts`` are on the original scale, ``[B, H]`` for the windows ending at
    ``origins``; ``quantiles`` holds the model's quantile forecasts ``[B, H, Q]``.
    """

    metrics: pd.DataFrame
    origins: np.ndarray
    origin_times: np.ndarray
    series: np.ndarray
    actual: np.ndarray
    forecasts: dict[str, np.ndarray]
    quantiles: np.ndarray
    quantile_levels: tuple[float, ...]
    history: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: windows each reference forecast was scored on (of ``len(origins)``)
    reference_windows: dict[str, int] = field(default_factory=dict)
    #: the figures against the knowable limit (:func:`fusioncast.references.limit_figures`)
    limit: dict[str, Any] | None = None
    #: MSE on the scaled target over the validation split's windows: the model and each baseline
    validation_mse: dict[str, float] = field(default_factory=dict)

    @property
    def best_baseline(self) -> str | None:
        """The baseline with the lowest validation MSE (None: no validation window)."""
        scores = {k: v for k, v in self.validation_mse.items() if k not in MODELS}
        return min(scores, key=scores.get) if scores else None

    def summary(self) -> pd.DataFrame:
        return summarise(self.metrics)


def evaluate_model(
    forecaster: Forecaster,
    arrays: SeriesArrays,
    *,
    season: int | None = None,
    split: int = TEST,
    ablations: bool = True,
    references: pd.DataFrame | None = None,
    baselines: BaselineConfig | None = None,
) -> Evaluation:
    """Forecast every window of ``split`` with the forecaster, its ablations and the baselines,
    and score the ``references`` on the same windows.

    ``arrays``: built with split boundaries by the forecaster's state. ``references``: reference
    forecasts (:func:`fusioncast.references.read_reference_forecasts`) whose origins are held as
    the arrays' timestamps (:func:`fusioncast.references.held_origins`).
    """
    config, scaler = forecaster.config, forecaster.scaler
    origins = window_origins(arrays, config.lookback, config.horizon, split)
    if len(origins) == 0:
        raise ConfigError(
            f"no series has a full test window of lookback {config.lookback} + horizon "
            f"{config.horizon} steps: give more history, a shorter model.lookback or "
            "model.horizon, or a larger test share"
        )
    series = series_index(arrays, origins)
    levels = config.output_quantiles
    median = levels.index(0.5)

    def to_original(values: np.ndarray) -> np.ndarray:
        return scaler.inverse_target(values.astype(np.float64), series)

    scaled_actual = gather_targets(arrays, origins, config.horizon).astype(np.float64)
    quantile_forecasts = {MODEL: forecaster.predict_windows(arrays, origins)}
    if ablations and arrays.text:
        quantile_forecasts[TEXT_REMOVED] = forecaster.predict_windows(
            arrays, origins, without_text=True
        )
        quantile_forecasts[TEXT_SHUFFLED] = forecaster.predict_windows(
            arrays, origins, shuffle_text=True
        )
    scaled = {name: q[..., median].astype(np.float64) for name, q in quantile_forecasts.items()}
    baselines = baselines or BaselineConfig()
    scaled.update(_baselines(forecaster, arrays, origins, season, baselines))

    aligned = {}
    if references is not None:
        aligned = _scaled_references(
            references, scaler, series, arrays.timestamps[origins], config.horizon, set(scaled)
        )
    codes, series_ids = pd.factorize(series)
    scales = _mase_scales(arrays, scaler, season or 1)
    window_scale = np.array([scales.get(str(s), np.nan) for s in series])[:, None]
    actual = to_original(scaled_actual)
    frames, squared_errors, covered = [], {}, {}
    for name, forecast in {**scaled, **aligned}.items():
        is_reference = name in aligned
        # a reference is scored on the windows it forecasts whole, a candidate on all
        rows = np.isfinite(forecast).all(axis=1) if is_reference else slice(None)
        original = to_original(forecast)
        squared_errors[name] = m.squared_error(scaled_actual, forecast)
        terms = {
            M.MSE: squared_errors[name],
            M.MAE: m.absolute_error(scaled_actual, forecast),
            M.MASE: m.absolute_error(actual, original) / window_scale,
            M.SMAPE: m.smape_terms(actual, original),
        }
        if name in quantile_forecasts and len(levels) > 1:
            q = quantile_forecasts[name].astype(np.float64)
            terms[M.PINBALL] = m.pinball_terms(scaled_actual, q, levels)
            for percent, lower, upper in m.central_intervals(levels):
                terms[M.coverage(percent)] = m.interval_hits(scaled_actual, q, levels, lower, upper)
        if is_reference:
            covered[name] = int(rows.sum())
            if not covered[name]:
                continue
        terms = {metric: values[rows] for metric, values in terms.items()}
        frames.append(
            _per_series_step(
                name, terms, codes[rows], series_ids, config.horizon, reference=is_reference
            )
        )
    history = {}
    for index, sid in enumerate(arrays.series_ids):
        start, stop = arrays.offsets[index], arrays.offsets[index + 1]
        values = arrays.numeric[start:stop, 0].astype(np.float64)
        history[str(sid)] = (
            arrays.timestamps[start:stop],
            scaler.inverse_target(values, np.full(stop - start, sid)),
        )
    return Evaluation(
        metrics=pd.concat(frames, ignore_index=True),
        origins=origins,
        origin_times=arrays.timestamps[origins],
        series=series,
        actual=actual,
        forecasts={name: to_original(f) for name, f in scaled.items()},
        quantiles=to_original(quantile_forecasts[MODEL].astype(np.float64)),
        quantile_levels=levels,
        history=history,
        reference_windows=covered,
        limit=limit_figures(squared_errors, MODEL, TEXT_REMOVED),
        validation_mse=(
            _validation_mse(forecaster, arrays, season, baselines) if split == TEST else {}
        ),
    )


def _baselines(
    forecaster: Forecaster,
    arrays: SeriesArrays,
    origins: np.ndarray,
    season: int | None,
    config: BaselineConfig,
) -> dict[str, np.ndarray]:
    """Every baseline's scaled forecasts ``[B, H]`` of the windows ending at ``origins``."""
    lookback, horizon = forecaster.config.lookback, forecaster.config.horizon
    out = baseline_forecasts(arrays, origins, lookback, horizon, season=season)
    out.update(
        statistical_forecasts(
            arrays,
            forecaster.scaler,
            origins,
            horizon,
            season=season,
            models=config.statistical,
            refit_every=config.refit_every or len(origins) + 1,
        )
    )
    return out


def _validation_mse(
    forecaster: Forecaster, arrays: SeriesArrays, season: int | None, config: BaselineConfig
) -> dict[str, float]:
    """The model's and each baseline's MSE over the validation split's windows."""
    lookback, horizon = forecaster.config.lookback, forecaster.config.horizon
    origins = window_origins(arrays, lookback, horizon, VALIDATION)
    if len(origins) == 0:
        return {}
    actual = gather_targets(arrays, origins, horizon).astype(np.float64)
    median = forecaster.config.output_quantiles.index(0.5)
    forecasts = {MODEL: forecaster.predict_windows(arrays, origins)[..., median]}
    forecasts.update(_baselines(forecaster, arrays, origins, season, config))
    return {
        name: float(np.mean((forecast.astype(np.float64) - actual) ** 2))
        for name, forecast in forecasts.items()
    }


def _scaled_references(
    references: pd.DataFrame,
    scaler: SeriesScaler,
    series: np.ndarray,
    origin_times: np.ndarray,
    horizon: int,
    candidates: set[str],
) -> dict[str, np.ndarray]:
    """Each reference's forecasts of the windows, ``[B, H]`` on the scaled target (NaN where it
    has none)."""
    found = align_references(references, series, origin_times, horizon)
    taken = sorted(set(found) & candidates)
    if taken:
        raise DataValidationError(
            REFERENCE_RULE,
            REFERENCE,
            int(references[REFERENCE].astype(str).isin(taken).sum()),
            "a reference cannot take the name of a candidate of the evaluation",
            taken[0],
        )
    return {name: scaler.scale_target(forecast, series) for name, forecast in found.items()}


def _mase_scales(arrays: SeriesArrays, scaler: SeriesScaler, season: int) -> dict[str, float]:
    """Per series: the seasonal-naive MAE over its training steps, on the original scale."""
    scales = {}
    for index, sid in enumerate(arrays.series_ids):
        start, stop = arrays.offsets[index], arrays.offsets[index + 1]
        rows = np.arange(start, stop)
        if arrays.split is not None:
            rows = rows[arrays.split[rows] == TRAIN]
        values = scaler.inverse_target(
            arrays.numeric[rows, 0].astype(np.float64), np.full(len(rows), sid)
        )
        lag = season if len(values) > season else 1
        scales[str(sid)] = m.mase_scale(values, lag)
    return scales


def _per_series_step(
    name: str,
    terms: dict[str, np.ndarray],
    codes: np.ndarray,
    series_ids: np.ndarray,
    horizon: int,
    *,
    reference: bool = False,
) -> pd.DataFrame:
    """Means of each ``[B, H]`` term per (series, horizon step); NaN terms are left out."""
    n_series = len(series_ids)
    counts = np.bincount(codes, minlength=n_series).astype(np.float64)
    out = {
        M.MODEL: name,
        M.REFERENCE: reference,
        M.SERIES_ID: np.repeat(np.asarray(series_ids, dtype=object).astype(str), horizon),
        M.HORIZON_STEP: np.tile(np.arange(1, horizon + 1, dtype=np.int32), n_series),
        M.N_WINDOWS: np.repeat(counts.astype(np.int64), horizon),
    }
    for metric, values in terms.items():
        finite = np.isfinite(values)
        sums = np.stack(
            [
                np.bincount(
                    codes, weights=np.where(finite[:, h], values[:, h], 0.0), minlength=n_series
                )
                for h in range(horizon)
            ],
            axis=1,
        )
        used = np.stack(
            [np.bincount(codes, weights=finite[:, h], minlength=n_series) for h in range(horizon)],
            axis=1,
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            out[metric] = np.where(used > 0, sums / np.maximum(used, 1), np.nan).ravel()
    return pd.DataFrame(out)


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per model: every metric's mean over all series, steps and windows, by MSE."""
    columns = [c for c in metrics.columns if c not in M.KEYS]
    rows = []
    for name, group in metrics.groupby(M.MODEL, sort=False):
        row = {M.MODEL: name}
        if M.REFERENCE in group:  # tables written before references were scored have none
            row[M.REFERENCE] = bool(group[M.REFERENCE].any())
        for column in columns:
            values = group[column].to_numpy(dtype=np.float64)
            weights = group[M.N_WINDOWS].to_numpy(dtype=np.float64)
            keep = np.isfinite(values)
            row[column] = (
                float(np.average(values[keep], weights=weights[keep]))
                if keep.any() and weights[keep].sum() > 0
                else np.nan
            )
        rows.append(row)
    return pd.DataFrame(rows).sort_values(M.MSE).reset_index(drop=True)
