"""Training, evaluation and forecast windows gathered by index from contiguous per-series arrays.

Windows are never materialised: a window is the index of its *origin* (its last observed row) and a
batch is gathered with numpy fancy indexing, so memory grows with rows, not rows x lookback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from fusioncast.config import ModelConfig
from fusioncast.contract import DataContract
from fusioncast.embeddings import SentenceEncoder, embed_texts
from fusioncast.encoding import CategoryEncoder
from fusioncast.errors import ConfigError
from fusioncast.frames import row_blocks, series_codes, series_offsets
from fusioncast.scaling import SeriesScaler
from fusioncast.split import SplitBoundaries
from fusioncast.tokenize import BOS, PAD, TextTokenizer


@dataclass
class TextArrays:
    """Token ids of every step of one text feature: ``ids[offsets[r]:offsets[r + 1]]`` is row r."""

    ids: np.ndarray  # int32 [M]
    offsets: np.ndarray  # int64 [N + 1]
    rows: np.ndarray  # int32 [M], the row each token came from

    @classmethod
    def from_ids(cls, ids: np.ndarray, offsets: np.ndarray) -> TextArrays:
        n = len(offsets) - 1
        parts = [  # block by block: no temporary the length of the frame
            np.repeat(
                np.arange(b.start, min(b.stop, n), dtype=np.int32),
                np.diff(offsets[b.start : b.stop + 1]),
            )
            for b in row_blocks(n)
        ]
        return cls(ids, offsets, np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32))

    def content(self) -> tuple[np.ndarray, ...]:
        return self.ids, self.offsets


@dataclass
class TextEmbeddingArrays:
    """Pretrained embeddings of one text feature: row r's text is ``table[index[r]]``.

    ``table`` holds one frozen vector per distinct text (:func:`fusioncast.embeddings.embed_texts`);
    ``index`` is ``-1`` for a row without text.
    """

    table: np.ndarray  # float32 [U, D]
    index: np.ndarray  # int32 [N]

    def content(self) -> tuple[np.ndarray, ...]:
        return self.table, self.index


@dataclass
class SeriesArrays:
    """All series as contiguous arrays; series s owns rows ``offsets[s]:offsets[s + 1]``."""

    series_ids: np.ndarray  # object [S]
    offsets: np.ndarray  # int64 [S + 1]
    row_series: np.ndarray  # int32 [N]
    timestamps: np.ndarray  # datetime64 [N]
    numeric: np.ndarray  # float32 [N, F]; column 0 is the scaled target
    dynamic: np.ndarray  # int32 [N, C_dynamic]
    static: np.ndarray  # int32 [S, C_static]
    text: list[TextArrays | TextEmbeddingArrays]
    split: np.ndarray | None = None  # int8 [N]: TRAIN, VALIDATION or TEST
    #: float32 [N, H]: a statistical forecast of the scaled target from each row as origin
    #: (:func:`fusioncast.statistical.prior_forecasts`), for ``linear_skip="statistical"``
    prior: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return len(self.row_series)


def build_arrays(
    frame: pd.DataFrame,
    contract: DataContract,
    scaler: SeriesScaler,
    encoder: CategoryEncoder,
    tokenizers: dict[str, TextTokenizer],
    boundaries: SplitBoundaries | None = None,
    text_encoder: SentenceEncoder | None = None,
    embedding_cache: Path | None = None,
) -> SeriesArrays:
    """Turn a validated frame (sorted by series and timestamp) into model-ready arrays.

    With ``text_encoder`` each text feature holds the frozen embeddings of its texts (read from
    or added to ``embedding_cache`` when given) instead of token ids.
    """
    codes, series_ids = series_codes(frame, contract)
    offsets = series_offsets(codes)
    row_series = codes.astype(np.int32)
    n = len(frame)
    dynamic = np.zeros((n, len(contract.dynamic_categorical)), dtype=np.int32)
    for i, column in enumerate(contract.dynamic_categorical):
        dynamic[:, i] = encoder.encode(frame, column)
    static = np.zeros((len(series_ids), len(contract.static_categorical)), dtype=np.int32)
    first_rows = frame.iloc[offsets[:-1]]
    for i, column in enumerate(contract.static_categorical):
        static[:, i] = encoder.encode(first_rows, column)
    text: list[TextArrays | TextEmbeddingArrays] = []
    for column in contract.text:
        if text_encoder is not None:
            values = frame[column].to_numpy(dtype=object)
            text.append(TextEmbeddingArrays(*embed_texts(text_encoder, values, embedding_cache)))
        else:
            text.append(TextArrays.from_ids(*tokenizers[column].encode(frame[column])))
    return SeriesArrays(
        series_ids=series_ids,
        offsets=offsets,
        row_series=row_series,
        timestamps=frame[contract.timestamp].to_numpy(),
        numeric=scaler.transform(frame, contract, (codes, series_ids)),
        dynamic=dynamic,
        static=static,
        text=text,
        split=None if boundaries is None else boundaries.labels(frame[contract.timestamp]),
    )


def window_origins(
    arrays: SeriesArrays, lookback: int, horizon: int, split: int | None = None
) -> np.ndarray:
    """Origins (last observed rows) of every full window whose horizon lies in ``split``.

    The lookback may reach back into an earlier split; the horizon never leaves the split.
    """
    rows = np.arange(arrays.n_rows, dtype=np.int64)
    start = arrays.offsets[arrays.row_series]
    end = arrays.offsets[arrays.row_series + 1]
    valid = (rows - lookback + 1 >= start) & (rows + horizon < end)
    if split is not None:
        if arrays.split is None:
            raise ValueError("arrays were built without split boundaries")
        first = np.minimum(rows + 1, arrays.n_rows - 1)
        last = np.minimum(rows + horizon, arrays.n_rows - 1)
        valid &= (arrays.split[first] == split) & (arrays.split[last] == split)
    return rows[valid]


def forecast_origins(arrays: SeriesArrays, lookback: int) -> np.ndarray:
    """The last row of every series that has at least ``lookback`` rows."""
    last = arrays.offsets[1:] - 1
    long_enough = np.diff(arrays.offsets) >= lookback
    return last[long_enough].astype(np.int64)


def gather_inputs(
    arrays: SeriesArrays,
    origins: np.ndarray,
    lookback: int,
    max_text_tokens: int,
    text_origins: np.ndarray | None = None,
    *,
    without_text: bool = False,
) -> dict[str, np.ndarray]:
    """Model inputs of the windows ending at ``origins``.

    Returns ``numeric [B, L, F]``, ``static_i [B, 1]``, ``dynamic_i [B, L]``, ``prior [B, H]``
    when the arrays hold statistical forecasts, and for each text
    feature ``text_i_tokens [B, T]`` (the begin marker, then the most recent tokens of the
    lookback in time order, right-padded with 0) and ``text_i_age [B, T]`` (steps between each
    token's step and the origin; ``lookback`` for the marker and padding). A feature of pretrained
    embeddings gives ``text_i_embeddings [B, L, D]`` (each lookback step's vector, zeros without
    text) and ``text_i_age [B, L]`` (steps before the origin; ``lookback`` for a step without
    text). ``text_origins`` takes the text from other windows (the shuffled-text control);
    ``without_text`` removes it (the text-removed control).
    """
    steps = origins[:, None] + np.arange(-lookback + 1, 1)
    inputs = {"numeric": arrays.numeric[steps]}
    if arrays.prior is not None:
        inputs["prior"] = arrays.prior[origins]
    for i in range(arrays.static.shape[1]):
        inputs[f"static_{i}"] = arrays.static[arrays.row_series[origins], i][:, None]
    for i in range(arrays.dynamic.shape[1]):
        inputs[f"dynamic_{i}"] = arrays.dynamic[steps, i]
    source = origins if text_origins is None else text_origins
    for i, text in enumerate(arrays.text):
        if isinstance(text, TextEmbeddingArrays):
            vectors, age = _gather_embeddings(text, source, lookback, without_text)
            inputs[f"text_{i}_embeddings"] = vectors
            inputs[f"text_{i}_age"] = age
            continue
        tokens, age = _gather_text(text, source, lookback, max_text_tokens, without_text)
        inputs[f"text_{i}_tokens"] = tokens
        inputs[f"text_{i}_age"] = age
    return inputs


def _gather_embeddings(
    text: TextEmbeddingArrays, origins: np.ndarray, lookback: int, empty: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    steps = origins[:, None] + np.arange(-lookback + 1, 1)
    index = text.index[steps]
    if empty or len(text.table) == 0:
        index = np.full_like(index, -1)
    present = index >= 0
    vectors = np.zeros((*index.shape, text.table.shape[1]), dtype=np.float32)
    vectors[present] = text.table[index[present]]
    age = np.where(present, np.arange(lookback - 1, -1, -1, dtype=np.int32), lookback)
    return vectors, age.astype(np.int32)


def _gather_text(
    text: TextArrays, origins: np.ndarray, lookback: int, max_tokens: int, empty: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    batch = len(origins)
    room = max_tokens - 1
    begin = text.offsets[origins - lookback + 1]
    end = text.offsets[origins + 1]
    count = np.zeros_like(end) if empty else np.minimum(end - begin, room)
    j = np.arange(room)
    index = end[:, None] - count[:, None] + j
    valid = j < count[:, None]
    tokens = np.full((batch, max_tokens), PAD, dtype=np.int32)
    age = np.full((batch, max_tokens), lookback, dtype=np.int32)
    tokens[:, 0] = BOS
    if len(text.ids):
        safe = np.clip(index, 0, len(text.ids) - 1)
        tokens[:, 1:] = np.where(valid, text.ids[safe], PAD)
        age[:, 1:] = np.where(valid, origins[:, None] - text.rows[safe], lookback)
    return tokens, age


def gather_targets(arrays: SeriesArrays, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Scaled target of the ``horizon`` steps after each origin, float32 ``[B, H]``."""
    return arrays.numeric[origins[:, None] + np.arange(1, horizon + 1), 0]


class WindowSampler(keras.utils.PyDataset):
    """Batches of windows gathered by index; serves training, evaluation and forecasting.

    Args:
        arrays: the contiguous per-series arrays.
        origins: window origins to serve (see :func:`window_origins`).
        lookback, horizon, max_text_tokens: window shape.
        batch_size: windows per batch.
        shuffle: reshuffle the order of windows every epoch.
        shuffle_text: give every window the text of another window (a control that keeps the
            text distribution but breaks its link with the series).
        without_text: give every window an empty text (the text-removed control).
        text_dropout: share of windows served with an empty text, drawn anew for every batch
            (training only: teaches the model to forecast when the text is missing).
        with_targets: yield ``(inputs, targets)``; otherwise inputs only.
        steps_per_epoch: serve this many batches per epoch (sampling windows anew each epoch).
        share: ``(index, count)``: serve part ``index`` of ``count`` equal, consecutive parts of
            every batch (the processes of a ``multi_worker`` run; a batch's last windows that do
            not divide evenly are left out). The draws are the whole batch's, so the parts
            together are the batch one process would serve.
    """

    def __init__(
        self,
        arrays: SeriesArrays,
        origins: np.ndarray,
        *,
        lookback: int,
        horizon: int,
        max_text_tokens: int,
        batch_size: int = 256,
        shuffle: bool = False,
        shuffle_text: bool = False,
        without_text: bool = False,
        text_dropout: float = 0.0,
        with_targets: bool = True,
        steps_per_epoch: int | None = None,
        seed: int = 0,
        share: tuple[int, int] = (0, 1),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if len(origins) == 0:
            raise ValueError("no windows to serve")
        if batch_size % share[1]:
            raise ConfigError(
                f"training.batch_size {batch_size} does not divide among {share[1]} processes"
            )
        self.arrays = arrays
        self.origins = np.asarray(origins, dtype=np.int64)
        self.lookback, self.horizon, self.max_text_tokens = lookback, horizon, max_text_tokens
        self.batch_size = batch_size
        self.shuffle, self.shuffle_text, self.with_targets = shuffle, shuffle_text, with_targets
        self.without_text, self.text_dropout = without_text, text_dropout
        self.steps_per_epoch = steps_per_epoch
        self.seed = seed
        self.share = share
        #: the epoch being served (set by :class:`fusioncast.training.SamplerEpoch` when one starts)
        self.epoch = 0
        self._drawn: tuple[int, np.ndarray] | None = None
        # The shuffled-text control pairs each window with the text of another, fixed for the run.
        self._text_for = (
            np.random.default_rng(seed + 1).permutation(self.origins) if shuffle_text else None
        )

    @property
    def num_batches(self) -> int:
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        return math.ceil(len(self.origins) / self.batch_size)

    def __len__(self) -> int:
        return self.num_batches

    def _positions(self) -> np.ndarray:
        """The epoch's window positions, batch after batch, drawn from (seed, epoch) alone.

        No draw depends on how often or in which order batches are asked for: Keras asks for
        batches to probe shapes, to build a distributed model and ahead of time on its prefetch
        threads, and the same seed must still train the same model.
        """
        drawn = self._drawn
        if drawn is not None and drawn[0] == self.epoch:
            return drawn[1]
        rng = np.random.default_rng([self.seed, self.epoch])
        n = len(self.origins)
        if self.steps_per_epoch is not None:
            positions = rng.integers(0, n, self.steps_per_epoch * self.batch_size)
        else:
            positions = rng.permutation(n) if self.shuffle else np.arange(n)
        self._drawn = (self.epoch, positions)
        return positions

    def _part(self, size: int) -> slice:
        """This sampler's share of a batch of ``size`` windows."""
        part, count = self.share
        each = size // count
        return slice(part * each, (part + 1) * each)

    def batch_origins(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Origins of batch ``index`` (this sampler's share of it) and, for the shuffled-text
        control, their text's origins."""
        positions = self._positions()[index * self.batch_size : (index + 1) * self.batch_size]
        positions = positions[self._part(len(positions))]
        text = None if self._text_for is None else self._text_for[positions]
        return self.origins[positions], text

    def __getitem__(self, index: int):
        origins, text_origins = self.batch_origins(index)
        inputs = gather_inputs(
            self.arrays,
            origins,
            self.lookback,
            self.max_text_tokens,
            text_origins,
            without_text=self.without_text,
        )
        if self.text_dropout > 0 and self.arrays.text:
            rng = np.random.default_rng([self.seed + 2, self.epoch, index])
            whole = min(self.batch_size, len(self._positions()) - index * self.batch_size)
            blank = (rng.random(whole) < self.text_dropout)[self._part(whole)]
            for i in range(len(self.arrays.text)):
                if f"text_{i}_embeddings" in inputs:
                    inputs[f"text_{i}_embeddings"][blank] = 0.0
                    inputs[f"text_{i}_age"][blank] = self.lookback
                    continue
                inputs[f"text_{i}_tokens"][blank, 1:] = PAD
                inputs[f"text_{i}_age"][blank, 1:] = self.lookback
        if not self.with_targets:
            return (inputs,)
        return inputs, gather_targets(self.arrays, origins, self.horizon)


def sampler(
    arrays: SeriesArrays,
    origins: np.ndarray,
    config: ModelConfig,
    batch_size: int,
    **kwargs: Any,
) -> WindowSampler:
    """A :class:`WindowSampler` shaped by ``config``."""
    return WindowSampler(
        arrays,
        origins,
        lookback=config.lookback,
        horizon=config.horizon,
        max_text_tokens=config.max_text_tokens,
        batch_size=batch_size,
        **kwargs,
    )
