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
from fusioncast.tasks import task


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
