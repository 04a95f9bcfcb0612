"""Tasks: split by time, then fit the state on the training steps and build the arrays."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fusioncast.config import ModelConfig
from fusioncast.contract import DataContract
from fusioncast.split import SplitBoundaries, split_by_time
from fusioncast.state import ForecastingState, prepare
from fusioncast.tasks import task
from fusioncast.windows import SeriesArrays


@task(name="split")
def split_data(
    frame: pd.DataFrame, contract: DataContract, train_fraction: float, validation_fraction: float
) -> SplitBoundaries:
    return split_by_time(
        frame, contract, train_fraction=train_fraction, validation_fraction=validation_fraction
    )


@task(name="prepare")
def prepare_data(
    frame: pd.DataFrame,
    contract: DataContract,
    boundaries: SplitBoundaries,
    config: ModelConfig,
    embedding_cache_root: Path | None = None,
) -> tuple[ForecastingState, SeriesArrays]:
    """Scaler, vocabularies and tokenizers fitted on the training steps, and the contiguous
    per-series arrays the windows are gathered from (pretrained text embeddings cached under
    ``embedding_cache_root``)."""
    return prepare(frame, contract, boundaries, config, embedding_cache_root)
