"""Integer codes for categorical features, one vocabulary per feature, fitted on training rows.

Index 0 is reserved for values unseen in training (and missing values), so a new store or product
at forecast time still gets a valid embedding row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fusioncast.errors import ModelStateError

ENCODER_VERSION = 1
UNSEEN = 0


@dataclass
class CategoryEncoder:
    """``vocabularies[column]`` lists the training values; ``v`` gets code ``index(v) + 1``."""

    vocabularies: dict[str, list[str]]

    @classmethod
    def fit(
        cls, frame: pd.DataFrame, columns: tuple[str, ...], fit_mask: np.ndarray
    ) -> CategoryEncoder:
        vocabularies = {}
        for column in columns:
            values = frame.loc[fit_mask, column].dropna().astype(str).unique()
            vocabularies[column] = sorted(values.tolist())
        return cls(vocabularies)

    def cardinality(self, column: str) -> int:
        """Number of embedding rows the column needs (its vocabulary plus the unseen index)."""
        return len(self.vocabularies[column]) + 1

    def encode(self, frame: pd.DataFrame, column: str) -> np.ndarray:
        """int32 codes of ``frame[column]``; unseen and missing values map to 0."""
        index = pd.Index(self.vocabularies[column])
        values = frame[column].astype("string").fillna("\x00")
        codes = index.get_indexer(values.to_numpy(dtype=object))
        return (codes + 1).astype(np.int32)

    def count_unseen(self, frame: pd.DataFrame, column: str) -> int:
        return int((self.encode(frame, column) == UNSEEN).sum() - frame[column].isna().sum())

    def to_json(self) -> dict[str, Any]:
        return {
            "version": ENCODER_VERSION,
            "unseen_index": UNSEEN,
            "vocabularies": self.vocabularies,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> CategoryEncoder:
        if payload.get("version") != ENCODER_VERSION:
            raise ModelStateError(
                f"encoder state version {payload.get('version')!r} is not supported"
            )
        return cls({k: list(v) for k, v in payload["vocabularies"].items()})
