"""Tasks: split by time, fit the scaler and the vocabularies on the training steps."""

from __future__ import annotations

import pandas as pd
from prefect import task

from fusioncast.config import ModelConfig
from fusioncast.contract import DataContract
from fusioncast.encoding import CategoryEncoder
from fusioncast.scaling import SeriesScaler
from fusioncast.split import SplitBoundaries, split_by_time
from fusioncast.state import ForecastingState, fit_scaler, fit_vocabularies
from fusioncast.tokenize import TextTokenizer
from fusioncast.windows import SeriesArrays


@task(name="split")
def split_data(
    frame: pd.DataFrame, contract: DataContract, train_fraction: float, validation_fraction: float
) -> SplitBoundaries:
    return split_by_time(
        frame, contract, train_fraction=train_fraction, validation_fraction=validation_fraction
    )


@task(name="scale")
def fit_scaling(
    frame: pd.DataFrame, contract: DataContract, boundaries: SplitBoundaries
) -> SeriesScaler:
    return fit_scaler(frame, contract, boundaries)


@task(name="tokenize")
def fit_tokenization(
    frame: pd.DataFrame, contract: DataContract, boundaries: SplitBoundaries, config: ModelConfig
) -> tuple[CategoryEncoder, dict[str, TextTokenizer]]:
    return fit_vocabularies(frame, contract, boundaries, config)


@task(name="build-windows")
def build_windows(
    frame: pd.DataFrame,
    contract: DataContract,
    scaler: SeriesScaler,
    encoder: CategoryEncoder,
    tokenizers: dict[str, TextTokenizer],
    config: ModelConfig,
    boundaries: SplitBoundaries,
) -> tuple[ForecastingState, SeriesArrays]:
    """The fitted state and the contiguous per-series arrays the windows are gathered from."""
    state = ForecastingState.create(contract, scaler, encoder, tokenizers, config)
    return state, state.arrays(frame, boundaries)
