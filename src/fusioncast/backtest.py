"""Rolling-origin backtest: retrain as of several past forecast origins and score each forecast.

Fold ``k`` (0 = the latest) forecasts from origin ``t_k = T - horizon - k * step`` (``T`` the last
time step): it sees only the data up to ``t_k`` for fitting (the scaler, the vocabularies and the
model; the last ``validation_share`` of those steps, at least one horizon, for early stopping) and
is scored on the ``horizon`` steps after ``t_k``, with the same metrics, ablations and baselines
as a retrain's test split (:mod:`fusioncast.evaluate`). Folds are independent of each other, so
they can run at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fusioncast.config import BacktestConfig, BaselineConfig, ModelConfig, TrainingConfig
from fusioncast.contract import DataContract
from fusioncast.contract import MetricColumn as M
from fusioncast.errors import ConfigError
from fusioncast.evaluate import evaluate_model, season_length
from fusioncast.split import split_at
from fusioncast.state import prepare
from fusioncast.training import train_forecaster


@dataclass(frozen=True)
class Fold:
    index: int
    origin: pd.Timestamp
    train_end: pd.Timestamp
    validation_end: pd.Timestamp
    test_end: pd.Timestamp


def plan_folds(
    frame: pd.DataFrame, contract: DataContract, model: ModelConfig, config: BacktestConfig
) -> list[Fold]:
    """The folds' cut-offs on the data's distinct time steps, latest fold first."""
    times = np.sort(frame[contract.timestamp].unique())
    horizon, step = model.horizon, config.step or model.horizon
    folds = []
    for k in range(config.n_folds):
        origin_index = len(times) - 1 - horizon - k * step
        n_history = origin_index + 1
        n_validation = max(horizon, int(round(n_history * config.validation_share)))
        n_train = n_history - n_validation
        if n_train < model.lookback + horizon:
            raise ConfigError(
                f"backtest fold {k} would have {max(n_train, 0)} of the data's {len(times)} steps "
                f"to train on; it needs lookback + horizon = {model.lookback + horizon}: use "
                "fewer backtest.n_folds or a smaller backtest.step"
            )
        folds.append(
            Fold(
                index=k,
                origin=pd.Timestamp(times[origin_index]),
                train_end=pd.Timestamp(times[n_train - 1]),
                validation_end=pd.Timestamp(times[origin_index]),
                test_end=pd.Timestamp(times[origin_index + horizon]),
            )
        )
    return folds


def run_fold(
    frame: pd.DataFrame,
    contract: DataContract,
    model_config: ModelConfig,
    training: TrainingConfig,
    fold: Fold,
    freq: str | None,
    baselines: BaselineConfig | None = None,
) -> pd.DataFrame:
    """Fit on the fold's history and score its forecast; metrics with ``fold`` and ``origin``."""
    known = frame[frame[contract.timestamp] <= fold.test_end].reset_index(drop=True)
    boundaries = split_at(
        known, contract, train_end=fold.train_end, validation_end=fold.validation_end
    )
    state, arrays = prepare(known, contract, boundaries, model_config)
    forecaster, _ = train_forecaster(state, arrays, training)
    metrics = evaluate_model(
        forecaster, arrays, season=season_length(freq), baselines=baselines
    ).metrics
    metrics.insert(0, M.ORIGIN, fold.origin)
    metrics.insert(0, M.FOLD, np.int32(fold.index))
    return metrics
