"""Tasks of the selection of settings: the candidates, the history before the test split, the
trials, one trial, and the choice with its report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import create_table_artifact

from fusioncast.config import BacktestConfig, BaselineConfig, ModelConfig, TrainingConfig
from fusioncast.contract import DataContract
from fusioncast.contract import MetricColumn as M
from fusioncast.evaluate import MODEL
from fusioncast.selection import (
    SELECTION_REPORT,
    SELECTION_TABLE,
    Candidate,
    Selection,
    Trial,
    candidate_settings,
    choose,
    history_before_test,
    plan_trials,
    run_trial,
    selection_folds,
)
from fusioncast.storage import location, write_json, write_parquet
from fusioncast.tasks import task


@task(name="candidate-settings")
def settings_to_compare(
    names: tuple[str, ...], model: ModelConfig, training: TrainingConfig
) -> list[Candidate]:
    candidates = candidate_settings(names, model, training)
    for settings in candidates:
        if settings.overridden:
            get_run_logger().info(
                "candidate %s: the run's %s replace the preset's",
                settings.name,
                ", ".join(settings.overridden),
            )
    return candidates


@task(name="cut-before-test")
def cut_before_test(
    frame: pd.DataFrame, contract: DataContract, training: TrainingConfig
) -> pd.DataFrame:
    history = history_before_test(frame, contract, training)
    times = frame[contract.timestamp]
    get_run_logger().info(
        "selection uses the %d steps up to %s; the test split's %d steps are left out",
        history[contract.timestamp].nunique(),
        history[contract.timestamp].max(),
        times.nunique() - history[contract.timestamp].nunique(),
    )
    return history


@task(name="plan-selection")
def plan_selection(
    history: pd.DataFrame,
    contract: DataContract,
    candidates: list[Candidate],
    model: ModelConfig,
    folds: BacktestConfig,
    baselines: BaselineConfig,
) -> list[Trial]:
    planned = selection_folds(history, contract, model, folds)
    return plan_trials(candidates, planned, model, baselines)


@task(
    name="selection-trial",
    task_run_name="selection-fold-{trial.fold.index}-{trial.candidates[0]}",
)
def selection_trial(
    history: pd.DataFrame, contract: DataContract, trial: Trial, freq: str | None
) -> pd.DataFrame:
    scores = run_trial(history, contract, trial, freq)
    model = scores[scores[M.MODEL] == MODEL]
    get_run_logger().info(
        "fold %d (origin %s), %s: MSE %.4f",
        trial.fold.index,
        trial.fold.origin.date(),
        ", ".join(trial.candidates),
        float(model[M.MSE].iloc[0]),
    )
    return scores


@task(name="choose-settings")
def choose_settings(
    candidates: list[Candidate],
    trials: list[Trial],
    trial_scores: list[pd.DataFrame],
    report_dir: Path,
) -> tuple[Selection, dict[str, Path]]:
    """The choice, written as ``selection.parquet`` and ``selection.json`` and shown as the
    ``selection`` table artifact."""
    selection = choose(candidates, trials, trial_scores)
    paths = {
        "table": write_parquet(location(report_dir) / SELECTION_TABLE, selection.table()),
        "report": write_json(location(report_dir) / SELECTION_REPORT, selection.to_json()),
    }
    create_table_artifact(
        table=_artifact_rows(selection),
        key="selection",
        description=(
            f"Settings compared on {len(selection.folds)} forecast origins before the test split "
            f"({', '.join(str(f.origin.date()) for f in selection.folds)}): chosen "
            f"{selection.chosen}. Per candidate and fold in {paths['table']}"
        ),
    )
    return selection, paths


def _artifact_rows(selection: Selection) -> list[dict[str, object]]:
    """One row per candidate (mean and fold MSEs), then the best baseline's."""
    folds = [f"fold {f.index} ({f.origin.date()})" for f in selection.folds]
    rows = [
        {
            "settings": name,
            "mean_mse": round(selection.mean_mse[name], 5),
            **{fold: round(v, 5) for fold, v in zip(folds, selection.fold_mse[name], strict=True)},
            "chosen": "yes" if name == selection.chosen else "",
        }
        for name in selection.candidates
    ]
    baseline = selection.best_baseline
    if baseline is not None:
        per_fold = selection.baseline_fold_mse[baseline]
        rows.append(
            {
                "settings": f"best baseline: {baseline}",
                "mean_mse": round(selection.baseline_mean_mse[baseline], 5),
                **{fold: round(v, 5) for fold, v in zip(folds, per_fold, strict=True)},
                "chosen": "",
            }
        )
    return rows
