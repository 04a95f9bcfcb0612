"""The fitted state a model needs beside its weights: contract, scaler, vocabularies, shape.

:func:`prepare` is the one place it is fitted (on training steps only) and the model-ready
arrays are built from it. Saved as JSON files beside the model
(:meth:`~fusioncast.forecast.Forecaster.save`) and loaded back for forecasting.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from fusioncast.config import ModelConfig
from fusioncast.contract import DataContract
from fusioncast.embeddings import SentenceEncoder
from fusioncast.encoding import CategoryEncoder
from fusioncast.errors import DataValidationError, ModelStateError
from fusioncast.frames import last_rows, row_blocks
from fusioncast.model import ModelSpec
from fusioncast.scaling import SCALE_BOUND, SeriesScaler
from fusioncast.split import TRAIN, SplitBoundaries
from fusioncast.statistical import prior_forecasts
from fusioncast.storage import read_json, write_json
from fusioncast.tokenize import TextTokenizer
from fusioncast.windows import SeriesArrays, build_arrays

TOKENIZERS_VERSION = 1
TEXT_ENCODER_VERSION = 1
#: Written only with ``text_encoder="pretrained"``: the encoder's path and sha256.
TEXT_ENCODER_FILE = "text_encoder.json"
STATE_FILES = ("contract.json", "scaler.json", "encoder.json", "tokenizers.json", "spec.json")


def _beyond_bound(numeric: np.ndarray) -> np.ndarray:
    """Rows of ``numeric`` holding a value beyond :data:`SCALE_BOUND` or NaN, in blocks of rows
    and column by column (no temporary the length of the table)."""
    hits = []
    for block in row_blocks(len(numeric)):
        ok = np.ones(len(numeric[block]), dtype=bool)
        for j in range(numeric.shape[1]):
            ok &= np.abs(numeric[block, j]) <= SCALE_BOUND
        hits.append(block.start + np.flatnonzero(~ok))
    return np.concatenate(hits) if hits else np.zeros(0, dtype=np.int64)


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
    """Category vocabularies and one text tokenizer per text feature, from training rows only
    (none with a pretrained text encoder, which brings its own)."""
    train = boundaries.labels(frame[contract.timestamp]) == TRAIN
    encoder = CategoryEncoder.fit(frame, contract.categorical, train)
    if config.text_encoder == "pretrained":
        return encoder, {}
    tokenizers = {
        column: TextTokenizer.fit(
            frame[column],
            fit_mask=train,
            max_vocabulary=config.max_vocabulary,
            min_count=config.min_token_count,
            max_tokens_per_step=config.max_tokens_per_step,
        )
        for column in contract.text
    }
    return encoder, tokenizers


@dataclass
class ForecastingState:
    """What the model reads its inputs through.

    ``text_encoder`` is the frozen sentence encoder of ``text_encoder="pretrained"`` (saved as
    its path and sha256, never its vectors); ``embedding_cache_root`` (a workspace root, not
    saved) is where its text embeddings are cached, ``None`` to encode in memory.
    """

    contract: DataContract
    scaler: SeriesScaler
    encoder: CategoryEncoder
    tokenizers: dict[str, TextTokenizer]
    spec: ModelSpec
    text_encoder: SentenceEncoder | None = None
    embedding_cache_root: Path | None = None

    @classmethod
    def create(
        cls,
        contract: DataContract,
        scaler: SeriesScaler,
        encoder: CategoryEncoder,
        tokenizers: dict[str, TextTokenizer],
        config: ModelConfig,
        embedding_cache_root: Path | None = None,
    ) -> ForecastingState:
        text_encoder = None
        if config.text_encoder == "pretrained":
            text_encoder = SentenceEncoder.load(Path(str(config.pretrained_encoder)).resolve())
            vocabulary_sizes = [text_encoder.vocabulary_size] * len(contract.text)
        else:
            vocabulary_sizes = [tokenizers[c].size for c in contract.text]
        spec = ModelSpec(
            config=config,
            n_numeric=len(scaler.columns),
            static_cardinalities=[encoder.cardinality(c) for c in contract.static_categorical],
            dynamic_cardinalities=[encoder.cardinality(c) for c in contract.dynamic_categorical],
            text_vocabulary_sizes=vocabulary_sizes,
            text_vector_dim=None if text_encoder is None else text_encoder.dim,
        )
        return cls(contract, scaler, encoder, tokenizers, spec, text_encoder, embedding_cache_root)

    @property
    def embedding_cache(self) -> Path | None:
        """The folder of cached text embeddings, when there is an encoder and a workspace."""
        if self.text_encoder is None or self.embedding_cache_root is None:
            return None
        return self.text_encoder.cache_dir(self.embedding_cache_root)

    def arrays(
        self, frame: pd.DataFrame, boundaries: SplitBoundaries | None = None
    ) -> SeriesArrays:
        """Model-ready arrays of a validated frame.

        With ``boundaries`` (arrays to train and score on) a value beyond the scaler's bound
        stops here (:meth:`out_of_scale`): early stopping and the evaluation would run on it.
        Forecasting applies that rule under the run's validation policy instead.
        """
        arrays = build_arrays(
            frame,
            self.contract,
            self.scaler,
            self.encoder,
            self.tokenizers,
            boundaries,
            self.text_encoder,
            self.embedding_cache,
        )
        if self.spec.config.linear_skip == "statistical":
            arrays.prior = prior_forecasts(arrays, self.scaler, self.spec.config)
        if boundaries is not None and (error := self.out_of_scale(arrays)[1]) is not None:
            raise error
        return arrays

    def out_of_scale(self, arrays: SeriesArrays) -> tuple[np.ndarray, DataValidationError | None]:
        """Rule ``within_scale``: the series holding a scaled target or covariate beyond
        :data:`~fusioncast.scaling.SCALE_BOUND`, far outside anything the model saw.

        Returns a mask over ``arrays.series_ids`` and, when any series breaks the rule, the error
        naming the column(s), the count of offending rows and the first one (value, series, step).
        """
        rows = _beyond_bound(arrays.numeric)
        series = np.zeros(len(arrays.series_ids), dtype=bool)
        if not len(rows):
            return series, None
        series[arrays.row_series[rows]] = True
        beyond = ~(np.abs(arrays.numeric[rows]) <= SCALE_BOUND)
        columns = [c for c, hit in zip(self.scaler.columns, beyond.any(axis=0), strict=True) if hit]
        first = int(rows[0])
        column = self.scaler.columns[int(np.flatnonzero(beyond[0])[0])]
        series_id = arrays.series_ids[arrays.row_series[first]]
        scaled = float(arrays.numeric[first, self.scaler.columns.index(column)])
        location, scale = self.scaler.statistics(series_id, column)
        stamp = pd.Timestamp(arrays.timestamps[first])
        where = f"{self.contract.timestamp}={stamp.date() if stamp == stamp.normalize() else stamp}"
        if self.contract.series_id is not None:
            where = f"{self.contract.series_id}={series_id}, {where}"
        names = arrays.series_ids[series]
        shown = ", ".join(map(str, names[:5])) + (", ..." if len(names) > 5 else "")
        return series, DataValidationError(
            "within_scale",
            ", ".join(columns),
            len(rows),
            detail=(
                f"values of {len(names)} series are more than {SCALE_BOUND:g} standard "
                "deviations of their training steps from their training mean, far outside what "
                f"the model saw: {shown}"
            ),
            example=(
                f"{column}={scaled * scale + location:.6g} at {where} ({scaled:.3g} standard "
                "deviations)"
            ),
        )

    def forecast_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of a validated frame that a forecast reads: the last ``lookback`` steps of
        each series (its whole history for ``linear_skip="statistical"``, whose prior is
        fitted on it)."""
        if self.spec.config.linear_skip == "statistical":
            return frame
        return last_rows(frame, self.contract, self.spec.config.lookback)

    def for_new_series(self, frame: pd.DataFrame) -> ForecastingState:
        """A state whose scaler also covers series of ``frame`` unseen in training."""
        return replace(self, scaler=self.scaler.with_series(frame, self.contract))

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
        if self.text_encoder is not None:
            write_json(
                directory / TEXT_ENCODER_FILE,
                {
                    "version": TEXT_ENCODER_VERSION,
                    "path": str(self.text_encoder.path),
                    "sha256": self.text_encoder.sha256,
                    "dim": self.text_encoder.dim,
                },
            )

    @classmethod
    def load(cls, directory: Path, embedding_cache_root: Path | None = None) -> ForecastingState:
        """The state saved in ``directory``; a pretrained text encoder is loaded from its saved
        path and refused (:class:`ModelStateError`) when its files changed since training."""
        tokenizers = read_json(directory / "tokenizers.json", TOKENIZERS_VERSION)["features"]
        spec = ModelSpec.from_json(read_json(directory / "spec.json"))
        text_encoder = None
        if spec.config.text_encoder == "pretrained":
            saved = read_json(directory / TEXT_ENCODER_FILE, TEXT_ENCODER_VERSION)
            text_encoder = SentenceEncoder.load(saved["path"])
            if text_encoder.sha256 != saved["sha256"]:
                raise ModelStateError(
                    f"rule 'text_encoder_unchanged' failed on {directory / TEXT_ENCODER_FILE}: "
                    f"the files of pretrained encoder {saved['path']} changed since the model "
                    f"was trained (sha256 {text_encoder.sha256[:16]}..., trained with "
                    f"{saved['sha256'][:16]}...); restore them or retrain"
                )
        return cls(
            contract=DataContract.from_json(read_json(directory / "contract.json")),
            scaler=SeriesScaler.from_json(read_json(directory / "scaler.json")),
            encoder=CategoryEncoder.from_json(read_json(directory / "encoder.json")),
            tokenizers={c: TextTokenizer.from_json(t) for c, t in tokenizers.items()},
            spec=spec,
            text_encoder=text_encoder,
            embedding_cache_root=embedding_cache_root,
        )


def prepare(
    frame: pd.DataFrame,
    contract: DataContract,
    boundaries: SplitBoundaries,
    config: ModelConfig,
    embedding_cache_root: Path | None = None,
) -> tuple[ForecastingState, SeriesArrays]:
    """Fit the state on the training steps of ``frame`` and build its arrays for training.

    With ``text_encoder="pretrained"`` the text embeddings are cached under
    ``embedding_cache_root`` (a workspace root; ``None``: computed in memory).

    Scaler, category vocabularies and text tokenizers see the rows labelled train by
    ``boundaries`` only; the arrays cover every row with its split label (a value beyond the
    scaler's bound stops here: :meth:`ForecastingState.arrays`).
    """
    scaler = fit_scaler(frame, contract, boundaries)
    encoder, tokenizers = fit_vocabularies(frame, contract, boundaries, config)
    state = ForecastingState.create(
        contract, scaler, encoder, tokenizers, config, embedding_cache_root
    )
    return state, state.arrays(frame, boundaries)


def series_index(arrays: SeriesArrays, origins: np.ndarray) -> np.ndarray:
    """Series id of each origin row."""
    return arrays.series_ids[arrays.row_series[origins]]
