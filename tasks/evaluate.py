"""Task: evaluate the trained model on the test split against baselines."""

from __future__ import annotations

import keras
import pandas as pd
from prefect import task
from prefect.artifacts import create_table_artifact

from fusioncast.config import ModelConfig
from fusioncast.evaluate import evaluate_model, season_length, summarise
from fusioncast.windows import SeriesArrays


@task(name="evaluate")
def evaluate(
    model: keras.Model, arrays: SeriesArrays, config: ModelConfig, freq: str
) -> pd.DataFrame:
    metrics = evaluate_model(model, arrays, config, season=season_length(freq))
    summary = summarise(metrics)
    create_table_artifact(
        table=summary.round(5).to_dict(orient="records"),
        key="test-metrics",
        description="Test-split MSE/MAE on the per-series scaled target: model vs baselines",
    )
    return metrics
