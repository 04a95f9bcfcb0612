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
from fusioncast.frames import code_counts, value_codes

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
            codes, distinct = value_codes(frame[column])
            counts = code_counts(codes, len(distinct), np.asarray(fit_mask, dtype=bool))
            seen = np.flatnonzero(counts)
            values = np.asarray(distinct.astype(str), dtype=object)[seen]
            vocabularies[column] = sorted(set(values.tolist()))
        return cls(vocabularies)

    def cardinality(self, column: str) -> int:
        """Number of embedding rows the column needs (its vocabulary plus the unseen index)."""
        return len(self.vocabularies[column]) + 1

    def encode(self, frame: pd.DataFrame, column: str) -> np.ndarray:
        """int32 codes of ``frame[column]``; unseen and missing values map to 0.

        Each distinct value is looked up once (the column is factorized first).
        """
        codes, distinct = value_codes(frame[column])
        known = pd.Index(self.vocabularies[column]).get_indexer(
            np.asarray(distinct.astype(str), dtype=object)
        )
        # code -1 (missing) takes the last entry: unseen
        lookup = np.append(known + 1, UNSEEN).astype(np.int32)
        return lookup[codes]

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
