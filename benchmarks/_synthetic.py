"""Synthetic contiguous per-series arrays of a given size, for throughput and memory benchmarks."""

from __future__ import annotations

import numpy as np

from fusioncast.split import TEST, TRAIN, VALIDATION
from fusioncast.windows import SeriesArrays, TextArrays


def synthetic_arrays(
    n_series: int,
    n_steps: int,
    n_numeric: int,
    *,
    vocabulary: int = 0,
    note_every: int = 4,
    tokens_per_note: int = 12,
    seed: int = 0,
) -> SeriesArrays:
    """Random-walk series; with ``vocabulary`` > 0, one text feature with a note every few steps."""
    rng = np.random.default_rng(seed)
    rows = n_series * n_steps
    numeric = np.empty((rows, n_numeric), dtype=np.float32)
    for s in range(n_series):  # block by block keeps the peak at one table
        block = rng.standard_normal((n_steps, n_numeric), dtype=np.float32)
        np.cumsum(block, axis=0, out=block)
        block /= np.sqrt(np.arange(1, n_steps + 1, dtype=np.float32))[:, None]
        numeric[s * n_steps : (s + 1) * n_steps] = block
    offsets = np.arange(0, rows + 1, n_steps, dtype=np.int64)
    text = []
    if vocabulary:
        lengths = np.where(np.arange(rows) % note_every == 0, tokens_per_note, 0)
        text_offsets = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(lengths, out=text_offsets[1:])
        ids = rng.integers(3, vocabulary, int(text_offsets[-1]), dtype=np.int32)
        text = [TextArrays.from_ids(ids, text_offsets)]
    position = np.tile(np.arange(n_steps), n_series)
    split = np.full(rows, TEST, dtype=np.int8)
    split[position < int(n_steps * 0.8)] = VALIDATION
    split[position < int(n_steps * 0.7)] = TRAIN
    return SeriesArrays(
        series_ids=np.array([f"s{i}" for i in range(n_series)], dtype=object),
        offsets=offsets,
        row_series=np.repeat(np.arange(n_series, dtype=np.int32), n_steps),
        timestamps=np.tile(
            np.datetime64("2000-01-01", "ns") + np.arange(n_steps) * np.timedelta64(1, "h"),
            n_series,
        ),
        numeric=numeric,
        dynamic=np.zeros((rows, 0), dtype=np.int32),
        static=np.zeros((n_series, 0), dtype=np.int32),
        text=text,
        split=split,
    )
