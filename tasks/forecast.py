"""Tasks: forecast the next horizon from the latest data, and publish it atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from fusioncast.contract import ForecastColumn
from fusioncast.errors import DataValidationError
from fusioncast.forecast import Forecaster
from fusioncast.publish import publish_forecasts
from fusioncast.registry import ModelRegistry
from fusioncast.tasks import task


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
    """The forecasts of one shard of the series, from the model ``version`` of the registry at
    ``models`` (loaded and verified on the worker). Under the ``quarantine`` policy a shard none of
    whose series can be forecast returns the error instead of raising it: the run stops only when
    no shard has a series left, as an unsharded run would."""
    forecaster = ModelRegistry(models).load(version, embeddings)
    logger = get_run_logger()

    def set_aside(error: DataValidationError) -> None:
        logger.warning("forecast shard %d: series set aside (quarantine policy): %s", index, error)

    try:
        return forecaster.predict(
            frame,
            freq=freq,
            run_id=run_id,
            created_at=created_at,
            timezone=timezone,
            policy=policy,
            on_set_aside=set_aside,
        )
    except DataValidationError as error:
        if policy != "quarantine":
            raise
        set_aside(error)
        return error


@task(name="gather-shards")
def gather_shards(parts: list[pd.DataFrame | DataValidationError]) -> pd.DataFrame:
    """The shards' forecasts as one table, in the shards' order (that of the series); raises the
    first shard's error when no shard has a series left."""
    frames = [part for part in parts if isinstance(part, pd.DataFrame)]
    if not frames:
        raise next(part for part in parts if isinstance(part, DataValidationError))
    return pd.concat(frames, ignore_index=True)


@task(name="forecast")
def forecast(
    forecaster: Forecaster,
    frame: pd.DataFrame,
    freq: str,
    run_id: str,
    timezone: str | None = None,
    policy: str = "fail",
) -> pd.DataFrame:
    logger = get_run_logger()

    def set_aside(error: DataValidationError) -> None:
        logger.warning("forecast: series set aside (quarantine policy): %s", error)

    return forecaster.predict(
        frame,
        freq=freq,
        run_id=run_id,
        created_at=pd.Timestamp.now(tz="UTC"),
        timezone=timezone,
        policy=policy,
        on_set_aside=set_aside,
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
