"""Choosing settings by rolling-origin evaluation before the test split (``fusioncast select``).

The candidates are named settings: the presets of :mod:`fusioncast.presets` and ``default`` (the
model and training defaults). The data is cut at the end of the run's own validation split
(:func:`fusioncast.split.split_by_time` with the run's ``train_fraction`` and
``validation_fraction``), so the test steps a ``retrain`` scores on are never read. On what
remains, the backtest's folds (:func:`fusioncast.backtest.plan_folds`) are replayed for every
candidate with the backtest's own fit-and-score (:func:`fusioncast.backtest.run_fold`); a
candidate's score on a fold is the MSE of its ``fusioncast`` forecasts (z-scored target, over
every window and horizon step), and the candidate with the lowest mean over the folds is chosen,
a tie going to the earlier candidate. The baselines scored on the same folds (reference forecasts
excluded) give the one a user would otherwise run: the baseline with the lowest mean.

Candidates with the same settings (``short-daily`` is ``short-weekly``) are fitted once and
share their scores; the statistical peers, the same for every candidate of a fold (the scaler
does not depend on the model settings), are fitted with the first candidate of each fold only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fusioncast.backtest import Fold, plan_folds, run_fold
from fusioncast.config import BacktestConfig, BaselineConfig, ModelConfig, TrainingConfig
from fusioncast.contract import DataContract
from fusioncast.contract import MetricColumn as M
from fusioncast.contract import SelectionColumn as S
from fusioncast.errors import ConfigError
from fusioncast.evaluate import MODEL, MODELS, summarise
from fusioncast.presets import candidate
from fusioncast.split import split_by_time

SELECTION_VERSION = 1
SELECTION_TABLE = "selection.parquet"
SELECTION_REPORT = "selection.json"


@dataclass(frozen=True)
class Candidate:
    """Named model and training settings to compare.

    ``overridden``: the preset's fields that the run's own fields replaced (``training.epochs``).
    """

    name: str
    model: ModelConfig
    training: TrainingConfig
    overridden: tuple[str, ...] = ()


@dataclass(frozen=True)
class Trial:
    """One fit-and-score: the settings shared by ``candidates`` on one fold."""

    candidates: tuple[str, ...]
    model: ModelConfig
    training: TrainingConfig
    fold: Fold
    baselines: BaselineConfig


def candidate_settings(
    names: Sequence[str], model: ModelConfig, training: TrainingConfig
) -> list[Candidate]:
    """Each named candidate's settings: the defaults, under the preset's fields, under the fields
    given in ``model`` and ``training`` (those set explicitly: pydantic's ``model_fields_set``),
    as ``retrain`` with ``{"preset": name, ...}`` would train. Lookback and horizon are always
    ``model``'s. An unknown name raises :class:`ConfigError` naming it."""
    given = {
        "model": model.model_dump(include=model.model_fields_set),
        "training": training.model_dump(include=training.model_fields_set),
    }
    given["model"].update(lookback=model.lookback, horizon=model.horizon)
    candidates = []
    for name in dict.fromkeys(names):
        fields = candidate(name)
        overridden = tuple(
            f"{section}.{field}"
            for section in ("model", "training")
            for field in sorted(fields[section])
            if field in given[section] and given[section][field] != fields[section][field]
        )
        candidates.append(
            Candidate(
                name=name,
                model=ModelConfig(**{**fields["model"], **given["model"]}),
                training=TrainingConfig(**{**fields["training"], **given["training"]}),
                overridden=overridden,
            )
        )
    return candidates


def history_before_test(
    frame: pd.DataFrame, contract: DataContract, training: TrainingConfig
) -> pd.DataFrame:
    """The rows up to the end of the run's validation split: the test steps are dropped."""
    boundaries = split_by_time(
        frame,
        contract,
        train_fraction=training.train_fraction,
        validation_fraction=training.validation_fraction,
    )
    kept = frame[contract.timestamp] <= boundaries.validation_end
    return frame[kept].reset_index(drop=True)


def selection_folds(
    history: pd.DataFrame, contract: DataContract, model: ModelConfig, config: BacktestConfig
) -> list[Fold]:
    """The backtest's folds on the history before the test split, latest first."""
    try:
        return plan_folds(history, contract, model, config)
    except ConfigError as error:
        n_steps = history[contract.timestamp].nunique()
        raise ConfigError(
            f"{error} (select folds use only the {n_steps} steps before the test split)"
        ) from None


def plan_trials(
    candidates: Sequence[Candidate],
    folds: Sequence[Fold],
    model: ModelConfig,
    baselines: BaselineConfig | None = None,
) -> list[Trial]:
    """One trial per distinct settings and fold; the statistical peers with the first of a fold.

    ``model``: the run's model settings; every candidate must share its lookback and horizon (the
    folds were planned for them).
    """
    if not candidates:
        raise ConfigError("select needs at least one candidate")
    distinct: dict[tuple[str, str], list[Candidate]] = {}
    for settings in candidates:
        shape = (settings.model.lookback, settings.model.horizon)
        if shape != (model.lookback, model.horizon):
            raise ConfigError(
                f"candidate {settings.name!r} has lookback {shape[0]} and horizon {shape[1]}; "
                f"the folds were planned for lookback {model.lookback} and horizon "
                f"{model.horizon}"
            )
        key = (settings.model.model_dump_json(), settings.training.model_dump_json())
        distinct.setdefault(key, []).append(settings)
    baselines = baselines or BaselineConfig()
    without_peers = baselines.model_copy(update={"statistical": ()})
    return [
        Trial(
            candidates=tuple(c.name for c in same),
            model=same[0].model,
            training=same[0].training,
            fold=fold,
            baselines=without_peers if position else baselines,
        )
        for fold in folds
        for position, same in enumerate(distinct.values())
    ]


def run_trial(
    history: pd.DataFrame, contract: DataContract, trial: Trial, freq: str | None
) -> pd.DataFrame:
    """Fit and score one trial (:func:`fusioncast.backtest.run_fold`): one row per model and
    baseline with its MSE over the fold's windows and steps (reference forecasts left out)."""
    metrics = run_fold(
        history, contract, trial.model, trial.training, trial.fold, freq, trial.baselines
    )
    if M.REFERENCE in metrics:
        metrics = metrics[~metrics[M.REFERENCE].astype(bool)]
    scores = summarise(metrics)[[M.MODEL, M.MSE]]
    first_step = metrics[metrics[M.HORIZON_STEP] == 1]
    windows = first_step.groupby(M.MODEL)[M.N_WINDOWS].sum()
    scores[M.N_WINDOWS] = scores[M.MODEL].map(windows).fillna(0).astype(np.int64)
    scores.insert(0, M.ORIGIN, trial.fold.origin)
    scores.insert(0, M.FOLD, np.int32(trial.fold.index))
    return scores


@dataclass(frozen=True)
class Selection:
    """The outcome of a selection.

    ``scores``: one row per candidate and fold (``candidate``, ``fold``, ``origin``, ``mse``,
    ``n_windows``), candidates in the order given, folds latest first. ``baseline_scores``: one
    row per baseline and fold (``model``, ``fold``, ``origin``, ``mse``).
    """

    candidates: tuple[str, ...]
    folds: tuple[Fold, ...]
    scores: pd.DataFrame
    baseline_scores: pd.DataFrame
    overridden: dict[str, tuple[str, ...]]

    @property
    def mean_mse(self) -> dict[str, float]:
        """Each candidate's mean fold MSE, in the order given."""
        means = self.scores.groupby(S.CANDIDATE, sort=False)[S.MSE].mean()
        return {name: float(means.get(name, np.nan)) for name in self.candidates}

    @property
    def fold_mse(self) -> dict[str, list[float]]:
        """Each candidate's MSE per fold, latest fold first."""
        return {
            name: [float(v) for v in group.sort_values(S.FOLD)[S.MSE]]
            for name, group in self.scores.groupby(S.CANDIDATE, sort=False)
        }

    @property
    def chosen(self) -> str:
        """The candidate with the lowest mean fold MSE (a tie: the earlier one)."""
        return _lowest(self.mean_mse)

    @property
    def baseline_mean_mse(self) -> dict[str, float]:
        """Each baseline's mean MSE over the folds (those scored on every fold), lowest first."""
        table = self.baseline_scores.dropna(subset=[M.MSE])
        counts = table.groupby(M.MODEL)[M.FOLD].nunique()
        complete = counts[counts == len(self.folds)].index
        means = table[table[M.MODEL].isin(complete)].groupby(M.MODEL)[M.MSE].mean()
        return {str(k): float(v) for k, v in means.sort_values(kind="stable").items()}

    @property
    def baseline_fold_mse(self) -> dict[str, list[float]]:
        """Each baseline's MSE per fold, latest fold first (NaN where it was not scored)."""
        table = self.baseline_scores.pivot(index=M.FOLD, columns=M.MODEL, values=M.MSE)
        table = table.reindex([fold.index for fold in self.folds])
        return {str(name): [float(v) for v in table[name]] for name in table.columns}

    @property
    def best_baseline(self) -> str | None:
        """The baseline with the lowest mean MSE over the same folds (None: none scored)."""
        means = self.baseline_mean_mse
        return _lowest(means) if means else None

    def table(self) -> pd.DataFrame:
        """``selection.parquet``: the scores, with the best baseline's MSE on the same fold."""
        table = self.scores.copy()
        best = self.baseline_fold_mse.get(self.best_baseline, [math.nan] * len(self.folds))
        per_fold = dict(zip((fold.index for fold in self.folds), best, strict=True))
        table[S.BEST_BASELINE_MSE] = table[S.FOLD].map(per_fold).astype(np.float64)
        return table

    def to_json(self) -> dict[str, Any]:
        """``selection.json``: the choice, every candidate's mean and fold MSEs, the baseline."""
        baseline = self.best_baseline
        return {
            "version": SELECTION_VERSION,
            "chosen": self.chosen,
            "candidates": list(self.candidates),
            "mean_mse": {k: _finite(v) for k, v in self.mean_mse.items()},
            "fold_mse": {k: [_finite(v) for v in vs] for k, vs in self.fold_mse.items()},
            "best_baseline": baseline,
            "best_baseline_mean_mse": _finite(self.baseline_mean_mse.get(baseline, math.nan)),
            "best_baseline_fold_mse": [
                _finite(v) for v in self.baseline_fold_mse.get(baseline, [])
            ],
            "baseline_mean_mse": {k: _finite(v) for k, v in self.baseline_mean_mse.items()},
            "folds": [
                {
                    "fold": fold.index,
                    "origin": fold.origin.isoformat(),
                    "train_end": fold.train_end.isoformat(),
                    "test_end": fold.test_end.isoformat(),
                }
                for fold in self.folds
            ],
            "overridden": {k: list(v) for k, v in self.overridden.items() if v},
        }


def choose(
    candidates: Sequence[Candidate],
    trials: Sequence[Trial],
    trial_scores: Sequence[pd.DataFrame],
) -> Selection:
    """The selection from each trial's scores (:func:`run_trial`), in the order of ``trials``."""
    rows, baselines = [], []
    for trial, scores in zip(trials, trial_scores, strict=True):
        model = scores[scores[M.MODEL] == MODEL].iloc[0]
        for name in trial.candidates:
            rows.append(
                {
                    S.CANDIDATE: name,
                    S.FOLD: np.int32(trial.fold.index),
                    S.ORIGIN: trial.fold.origin,
                    S.MSE: float(model[M.MSE]),
                    S.N_WINDOWS: np.int64(model[M.N_WINDOWS]),
                }
            )
        baselines.append(scores[~scores[M.MODEL].isin(MODELS)])
    names = tuple(c.name for c in candidates)
    order = {name: i for i, name in enumerate(names)}
    scores = pd.DataFrame(rows).sort_values(
        [S.CANDIDATE, S.FOLD], key=lambda c: c.map(order) if c.name == S.CANDIDATE else c
    )
    # Every trial of a fold scores the same cheap baselines: one mean per baseline and fold.
    baseline_scores = (
        pd.concat(baselines, ignore_index=True)
        .groupby([M.MODEL, M.FOLD, M.ORIGIN], as_index=False)[M.MSE]
        .mean()
    )
    folds = {trial.fold.index: trial.fold for trial in trials}
    return Selection(
        candidates=names,
        folds=tuple(folds[k] for k in sorted(folds)),
        scores=scores.reset_index(drop=True),
        baseline_scores=baseline_scores,
        overridden={c.name: c.overridden for c in candidates},
    )


def select_settings(
    frame: pd.DataFrame,
    contract: DataContract,
    candidates: Sequence[Candidate],
    *,
    model: ModelConfig,
    training: TrainingConfig,
    backtest: BacktestConfig | None = None,
    freq: str | None = None,
    baselines: BaselineConfig | None = None,
) -> Selection:
    """Choose among ``candidates`` on the steps before the run's test split, one after another
    (the ``select`` flow runs the trials at the same time).

    ``model`` and ``training``: the run's settings (lookback, horizon and the split fractions).
    """
    history = history_before_test(frame, contract, training)
    folds = selection_folds(history, contract, model, backtest or BacktestConfig())
    trials = plan_trials(candidates, folds, model, baselines)
    return choose(candidates, trials, [run_trial(history, contract, t, freq) for t in trials])


def _lowest(values: dict[str, float]) -> str:
    """The key of the lowest finite value, the first of equals (NaN counts as the highest)."""
    return min(values, key=lambda k: values[k] if math.isfinite(values[k]) else math.inf)


def _finite(value: float) -> float | None:
    """JSON has no NaN: null instead."""
    return value if math.isfinite(value) else None
