"""The fitted state a model needs beside its weights: contract, scaler, vocabularies, shape.

Saved as JSON files in a model version directory and loaded back for forecasting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fusioncast.config import ModelConfig
from fusioncast.contract import DataContract
from fusioncast.encoding import CategoryEncoder
from fusioncast.model import ModelSpec
from fusioncast.scaling import SeriesScaler
from fusioncast.split import TRAIN, SplitBoundaries
from fusioncast.storage import read_json, write_json
from fusioncast.tokenize import TextTokenizer
from fusioncast.windows import SeriesArrays, build_arrays

TOKENIZERS_VERSION = 1
STATE_FILES = ("contract.json", "scaler.json", "encoder.json", "tokenizers.json", "spec.json")


def fit_scaler(
    frame: pd.DataFrame, contract: DataContract, boundaries: SplitBoundaries
) -> SeriesScaler:
    """Per-series scaler fitted on the training steps only."""
    train = boundaries.labels(frame[contract.timestamp]) == TRAIN
    return SeriesScaler.fit(frame, contract, train)


def fit_vocabularies(
    frame: pd.DataFrame,
    contract: DataContract,
    boundaries: SplitBoundaries,
    config: ModelConfig,
) -> tuple[CategoryEncoder, dict[str, TextTokenizer]]:
    """Category vocabularies and one text tokenizer per text feature, from training rows only."""
    train = boundaries.labels(frame[contract.timestamp]) == TRAIN
    encoder = CategoryEncoder.fit(frame, contract.categorical, train)
    tokenizers = {
        column: TextTokenizer.fit(
            frame.loc[train, column].to_numpy(dtype=object),
            max_vocabulary=config.max_vocabulary,
            min_count=config.min_token_count,
            max_tokens_per_step=config.max_tokens_per_step,
        )
        for column in contract.text
    }
    return encoder, tokenizers


@dataclass
class ForecastingState:
    contract: DataContract
    scaler: SeriesScaler
    encoder: CategoryEncoder
    tokenizers: dict[str, TextTokenizer]
    spec: ModelSpec

    @classmethod
    def create(
        cls,
        contract: DataContract,
        scaler: SeriesScaler,
        encoder: CategoryEncoder,
        tokenizers: dict[str, TextTokenizer],
        config: ModelConfig,
    ) -> ForecastingState:
        spec = ModelSpec(
            config=config,
            n_numeric=len(scaler.columns),
            static_cardinalities=[encoder.cardinality(c) for c in contract.static_categorical],
            dynamic_cardinalities=[encoder.cardinality(c) for c in contract.dynamic_categorical],
            text_vocabulary_sizes=[tokenizers[c].size for c in contract.text],
        )
        return cls(contract, scaler, encoder, tokenizers, spec)

    def arrays(
        self, frame: pd.DataFrame, boundaries: SplitBoundaries | None = None
    ) -> SeriesArrays:
        return build_arrays(
            frame, self.contract, self.scaler, self.encoder, self.tokenizers, boundaries
        )

    def for_new_series(self, frame: pd.DataFrame) -> ForecastingState:
        """A state whose scaler also covers series of ``frame`` unseen in training."""
        scaler = self.scaler.with_series(frame, self.contract)
        return ForecastingState(self.contract, scaler, self.encoder, self.tokenizers, self.spec)

    def save(self, directory: Path) -> None:
        write_json(directory / "contract.json", self.contract.to_json())
        write_json(directory / "scaler.json", self.scaler.to_json())
        write_json(directory / "encoder.json", self.encoder.to_json())
        write_json(
            directory / "tokenizers.json",
            {
                "version": TOKENIZERS_VERSION,
                "features": {c: t.to_json() for c, t in self.tokenizers.items()},
            },
        )
        write_json(directory / "spec.json", self.spec.to_json())

    @classmethod
    def load(cls, directory: Path) -> ForecastingState:
        tokenizers = read_json(directory / "tokenizers.json", TOKENIZERS_VERSION)["features"]
        return cls(
            contract=DataContract.from_json(read_json(directory / "contract.json")),
            scaler=SeriesScaler.from_json(read_json(directory / "scaler.json")),
            encoder=CategoryEncoder.from_json(read_json(directory / "encoder.json")),
            tokenizers={c: TextTokenizer.from_json(t) for c, t in tokenizers.items()},
            spec=ModelSpec.from_json(read_json(directory / "spec.json")),
        )


def series_index(arrays: SeriesArrays, origins: np.ndarray) -> np.ndarray:
    """Series id of each origin row."""
    return arrays.series_ids[arrays.row_series[origins]]
