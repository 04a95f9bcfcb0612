"""Tasks: forecast the next horizon from the latest data, and publish it atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from fusioncast.contract import ForecastColumn
from fusioncast.errors import DataValidationError
from fusioncast.forecast import Forecaster, gather_shards, predict_shard
from fusioncast.publish import publish_forecasts
from fusioncast.registry import ModelRegistry
from fusioncast.tasks import task


def _set_aside_logger(what: str):
    logger = get_run_logger()

    def set_aside(error: DataValidationError) -> None:
        logger.warning("%s: series set aside (quarantine policy): %s", what, error)

    return set_aside


@task(name="forecast-shard", task_run_name="forecast-shard-{index}")
def forecast_shard(
    index: int,
    models: Path,
    version: str,
    embeddings: Path,
    frame: pd.DataFrame,
    freq: str,
    run_id: str,
    created_at: pd.Timestamp,
    timezone: str | None,
    policy: str,
) -> pd.DataFrame | DataValidationError:
    """One shard's forecasts (:func:`fusioncast.forecast.predict_shard`), from the model
    ``version`` of the registry at ``models``, loaded and verified on the worker."""
    return predict_shard(
        ModelRegistry(models).load(version, embeddings),
        frame,
        policy=policy,
        freq=freq,
        run_id=run_id,
        created_at=created_at,
        timezone=timezone,
        on_set_aside=_set_aside_logger(f"forecast shard {index}"),
    )


@task(name="gather-shards")
def gather(parts: list[pd.DataFrame | DataValidationError]) -> pd.DataFrame:
    return gather_shards(parts)


@task(name="forecast")
def forecast(
    forecaster: Forecaster,
    frame: pd.DataFrame,
    freq: str,
    run_id: str,
    timezone: str | None = None,
    policy: str = "fail",
) -> pd.DataFrame:
    return forecaster.predict(
        frame,
        freq=freq,
        run_id=run_id,
        created_at=pd.Timestamp.now(tz="UTC"),
        timezone=timezone,
        policy=policy,
        on_set_aside=_set_aside_logger("forecast"),
    )


@task(name="publish", retries=2, retry_delay_seconds=5)
def publish(forecasts: pd.DataFrame, root: Path, run_id: str) -> Path:
    path = publish_forecasts(forecasts, root, run_id=run_id)
    create_markdown_artifact(
        key="published-forecasts",
        markdown=(
            f"Published **{len(forecasts)}** forecast rows for "
            f"**{forecasts[ForecastColumn.SERIES_ID].nunique()}** series to `{path}`."
        ),
    )
    return path
