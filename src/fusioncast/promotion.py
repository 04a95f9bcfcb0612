"""The promotion gate: a new model replaces the champion only if it is better on the same windows.

The candidate's test windows (the latest data) are forecast by the current champion too, and both
are scored on the candidate's z-scored target. The candidate is promoted when its test MSE is below
the champion's (by ``min_improvement``), below the last-value baseline's, and not above the baseline
best on the validation split (the one a user choosing on validation would run instead, the
statistical peers included) by more than ``best_baseline_margin``, all on those same windows;
otherwise the champion stays, and the decision says why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from fusioncast.baselines import LAST_VALUE
from fusioncast.config import PromotionConfig
from fusioncast.errors import FusioncastError
from fusioncast.evaluate import MODEL, Evaluation
from fusioncast.forecast import Forecaster
from fusioncast.scaling import SeriesScaler


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    candidate_mse: float
    last_value_mse: float
    n_windows: int
    champion: str | None = None
    champion_mse: float | None = None
    best_baseline: str | None = None
    best_baseline_mse: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    candidate: Evaluation,
    scaler: SeriesScaler,
    frame: pd.DataFrame,
    champion: Forecaster | None,
    config: PromotionConfig | None = None,
) -> GateDecision:
    """Compare the candidate with the champion (if any) and the last value on the same windows.

    Args:
        candidate: the candidate's evaluation on its test windows.
        scaler: the candidate's scaler (defines the z-scored target the MSEs are on).
        frame: the validated data the candidate was evaluated on.
        champion: the current champion, loaded and verified; ``None`` when there is none.
    """
    config = config or PromotionConfig()
    windows = np.arange(len(candidate.origins))
    champion_forecast, champion_note = None, ""
    if champion is not None:
        try:
            windows, champion_forecast = champion.predict_at(
                frame, candidate.series, candidate.origin_times
            )
        except (FusioncastError, KeyError, ValueError) as error:
            champion_note = f"champion {champion.version} cannot forecast this data ({error})"
    horizon = candidate.actual.shape[1]
    if champion_forecast is not None:
        horizon = min(horizon, champion_forecast.shape[1])
    if len(windows) == 0:
        champion_forecast, champion_note = (
            None,
            (
                f"champion {champion.version} has no test window with its lookback"
                if champion
                else ""
            ),
        )
        windows = np.arange(len(candidate.origins))
    scale = _target_scale(scaler, candidate.series[windows])

    def mse(forecast: np.ndarray) -> float:
        error = (forecast[:, :horizon] - candidate.actual[windows, :horizon]) / scale
        return float(np.mean(error**2))

    candidate_mse = mse(candidate.forecasts[MODEL][windows])
    last_value_mse = mse(candidate.forecasts[LAST_VALUE][windows])
    champion_mse = None if champion_forecast is None else mse(champion_forecast)
    best = candidate.best_baseline
    best_mse = None if best is None else mse(candidate.forecasts[best][windows])
    where = f"on the same {len(windows)} test windows x {horizon} steps"
    facts = dict(
        candidate_mse=candidate_mse,
        last_value_mse=last_value_mse,
        n_windows=int(len(windows)),
        champion=champion.version if champion else None,
        champion_mse=champion_mse,
        best_baseline=best,
        best_baseline_mse=best_mse,
    )
    shown = f"test MSE {candidate_mse:.4f}"
    if config.require_beating_last_value and not candidate_mse < last_value_mse:
        return GateDecision(
            False,
            f"not promoted: {shown} does not beat the last value ({last_value_mse:.4f}) {where}",
            **facts,
        )
    margin = config.best_baseline_margin
    if margin is not None and best_mse is not None and not candidate_mse <= best_mse * (1 + margin):
        return GateDecision(
            False,
            f"not promoted: {shown} is more than {margin:.0%} above {best} ({best_mse:.4f}), "
            f"the baseline best on validation, {where}; running {best} would forecast better",
            **facts,
        )
    if champion_mse is not None and config.require_beating_champion:
        needed = champion_mse * (1.0 - config.min_improvement)
        if not candidate_mse < needed:
            return GateDecision(
                False,
                f"not promoted: {shown} does not beat champion {champion.version} "
                f"({champion_mse:.4f}"
                + (f", minus {config.min_improvement:.1%}" if config.min_improvement else "")
                + f") {where}; the champion stays",
                **facts,
            )
    if champion is None:
        reason = f"promoted: first model; {shown} beats the last value ({last_value_mse:.4f})"
    elif champion_mse is None:
        reason = f"promoted: {champion_note}; {shown} vs last value {last_value_mse:.4f}"
    else:
        reason = (
            f"promoted: {shown} beats champion {champion.version} ({champion_mse:.4f}) and the "
            f"last value ({last_value_mse:.4f}) {where}"
        )
    if best_mse is not None:
        reason += f"; the baseline best on validation, {best}, has {best_mse:.4f}"
    return GateDecision(True, reason, **facts)


def _target_scale(scaler: SeriesScaler, series: np.ndarray) -> np.ndarray:
    rows = scaler.positions(np.asarray(series).astype(str))
    return scaler.scale[rows, 0][:, None]
