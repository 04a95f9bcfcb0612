"""Tasks of the backtest: plan the folds, run one fold, combine the folds' metrics."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect.artifacts import create_table_artifact

from fusioncast.backtest import Fold, plan_folds, run_fold
from fusioncast.config import BacktestConfig, BaselineConfig, ModelConfig, TrainingConfig
from fusioncast.contract import DataContract
from fusioncast.contract import MetricColumn as M
from fusioncast.evaluate import summarise
from fusioncast.report import write_metrics
from fusioncast.storage import location
from fusioncast.tasks import task

BACKTEST_METRICS = "backtest_metrics.parquet"


@task(name="plan-folds")
def plan(
    frame: pd.DataFrame, contract: DataContract, model: ModelConfig, config: BacktestConfig
) -> list[Fold]:
    return plan_folds(frame, contract, model, config)


@task(name="backtest-fold", task_run_name="backtest-fold-{fold.index}")
def backtest_fold(
    frame: pd.DataFrame,
    contract: DataContract,
    model: ModelConfig,
    training: TrainingConfig,
    fold: Fold,
    freq: str | None,
    baselines: BaselineConfig,
) -> pd.DataFrame:
    return run_fold(frame, contract, model, training, fold, freq, baselines)


@task(name="combine-folds")
def combine_folds(fold_metrics: list[pd.DataFrame], report_dir: Path) -> Path:
    """One metrics table over all folds, as Parquet and as a table artifact per model."""
    metrics = pd.concat(fold_metrics, ignore_index=True).sort_values(
        [M.FOLD, M.MODEL, M.SERIES_ID, M.HORIZON_STEP], ignore_index=True
    )
    path = write_metrics(metrics, location(report_dir) / BACKTEST_METRICS)
    create_table_artifact(
        table=summarise(metrics).round(5).to_dict(orient="records"),
        key="backtest-metrics",
        description=(
            f"Backtest over {metrics['fold'].nunique()} forecast origins "
            f"({', '.join(str(o.date()) for o in sorted(metrics['origin'].unique()))}); "
            f"per fold, series and step in {path}"
        ),
    )
    return path
