"""Chronological split of every series into train / validation / test by global time cut-offs.

Cut-offs are shared by all series (a step at time t is in the same split whichever series it belongs
to), so no series' validation or test period is seen in training through another series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fusioncast.contract import DataContract
from fusioncast.errors import ConfigError, DataValidationError
from fusioncast.frames import row_blocks, series_codes

SPLIT_VERSION = 1
TRAIN, VALIDATION, TEST = 0, 1, 2


@dataclass(frozen=True)
class SplitBoundaries:
    """Global cut-offs: train if ``t <= train_end``, else validation if ``t <= validation_end``.

    ``per_series`` holds, per series id, its number of train, validation and test steps.
    """

    train_end: pd.Timestamp
    validation_end: pd.Timestamp
    per_series: dict[str, dict[str, int]]

    def labels(self, timestamps: pd.Series | np.ndarray) -> np.ndarray:
        """Split label (TRAIN, VALIDATION or TEST) of each timestamp, int8 of the same length."""
        values = np.asarray(timestamps)
        if values.dtype.kind != "M":  # validated frames hold datetime64 already: no copy
            values = pd.to_datetime(values).values
        train_end, validation_end = (
            t.to_datetime64() for t in (self.train_end, self.validation_end)
        )
        labels = np.empty(len(values), dtype=np.int8)
        for block in row_blocks(len(values)):  # TRAIN 0, VALIDATION 1, TEST 2
            np.add(
                values[block] > train_end,
                values[block] > validation_end,
                out=labels[block],
                dtype=np.int8,
            )
        return labels

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SPLIT_VERSION,
            "train_end": self.train_end.isoformat(),
            "validation_end": self.validation_end.isoformat(),
            "per_series": self.per_series,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> SplitBoundaries:
        return cls(
            train_end=pd.Timestamp(payload["train_end"]),
            validation_end=pd.Timestamp(payload["validation_end"]),
            per_series={k: dict(v) for k, v in payload["per_series"].items()},
        )


def split_by_time(
    frame: pd.DataFrame,
    contract: DataContract,
    *,
    train_fraction: float = 0.7,
    validation_fraction: float = 0.1,
) -> SplitBoundaries:
    """Cut the time axis at the given fractions of the distinct timestamps.

    Args:
        frame: validated input, one row per (series, step).
        train_fraction: share of distinct timestamps in the training split.
        validation_fraction: share in the validation split; the rest is the test split.
    """
    if not (0 < train_fraction < 1 and 0 < validation_fraction < 1):
        raise ConfigError("train_fraction and validation_fraction must each lie in (0, 1)")
    if train_fraction + validation_fraction >= 1:
        raise ConfigError("train_fraction + validation_fraction must leave a test split (< 1)")
    times = np.sort(frame[contract.timestamp].unique())
    if len(times) < 3:
        raise DataValidationError(
            "split_enough_steps", contract.timestamp, len(times), "need at least 3 distinct steps"
        )
    n_train = max(1, int(round(len(times) * train_fraction)))
    n_validation = max(1, int(round(len(times) * validation_fraction)))
    n_train = min(n_train, len(times) - 2)
    n_validation = min(n_validation, len(times) - n_train - 1)
    return split_at(
        frame,
        contract,
        train_end=pd.Timestamp(times[n_train - 1]),
        validation_end=pd.Timestamp(times[n_train + n_validation - 1]),
    )


def split_at(
    frame: pd.DataFrame,
    contract: DataContract,
    *,
    train_end: pd.Timestamp,
    validation_end: pd.Timestamp,
) -> SplitBoundaries:
    """Boundaries at given cut-offs, with each series' count of steps per split."""
    boundaries = SplitBoundaries(train_end, validation_end, {})
    labels = boundaries.labels(frame[contract.timestamp])
    codes, ids = series_codes(frame, contract)
    counts = np.zeros(3 * len(ids), dtype=np.int64)
    for block in row_blocks(len(codes)):
        counts += np.bincount(codes[block] * 3 + labels[block], minlength=3 * len(ids))
    counts = counts.reshape(len(ids), 3)
    order = np.argsort(ids, kind="stable")
    per_series = {
        ids[i]: {"train": int(c[TRAIN]), "validation": int(c[VALIDATION]), "test": int(c[TEST])}
        for i, c in zip(order, counts[order].tolist(), strict=True)
    }
    return SplitBoundaries(train_end, validation_end, per_series)
