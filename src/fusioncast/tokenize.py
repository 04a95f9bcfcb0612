"""Word tokenizer for the text features; its vocabulary is fitted on training text only.

Text of one step becomes at most ``max_tokens_per_step`` ids. The ids of all steps are stored as one
flat array with row offsets, so the text of any run of consecutive steps is one contiguous slice.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fusioncast.errors import ModelStateError
from fusioncast.frames import code_counts, row_blocks, value_codes

TOKENIZER_VERSION = 1
PAD, OOV, BOS = 0, 1, 2
SPECIAL_TOKENS = ["[PAD]", "[OOV]", "[BOS]"]
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def words(text: str) -> list[str]:
    """Lower-cased word tokens of ``text`` (letters and digits; apostrophes inside words kept)."""
    return _WORD.findall(text.lower())


@dataclass
class TextTokenizer:
    """Maps words to ids; 0 is padding, 1 out-of-vocabulary, 2 the begin-of-window marker.

    The begin marker starts every window's token sequence, so a window with no text still has one
    unmasked position (an all-masked row breaks the fused LSTM kernels).
    """

    vocabulary: list[str]
    max_tokens_per_step: int = 32

    @classmethod
    def fit(
        cls,
        texts: Iterable[str | None],
        *,
        fit_mask: np.ndarray | None = None,
        max_vocabulary: int = 20_000,
        min_count: int = 2,
        max_tokens_per_step: int = 32,
    ) -> TextTokenizer:
        """Fit on training text (the rows of ``fit_mask``; all without): the most frequent words
        seen at least ``min_count`` times."""
        counts: Counter[str] = Counter()
        for text, repeats in _distinct(texts, fit_mask).items():
            for word, count in Counter(words(text)[:max_tokens_per_step]).items():
                counts[word] += count * repeats
        kept = [w for w, c in counts.items() if c >= min_count]
        kept.sort(key=lambda w: (-counts[w], w))
        room = max(0, max_vocabulary - len(SPECIAL_TOKENS))
        return cls(SPECIAL_TOKENS + kept[:room], max_tokens_per_step)

    @property
    def size(self) -> int:
        return len(self.vocabulary)

    def encode(self, texts: Iterable[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of each text: ``(flat int32 [M], offsets int64 [N + 1])``; null: no tokens.

        Each distinct text is tokenized once; its ids are then copied to every row that holds it.
        """
        codes, distinct = value_codes(_series(texts))
        index = {w: i for i, w in enumerate(self.vocabulary)}
        encoded = [
            [index.get(w, OOV) for w in words(t)[: self.max_tokens_per_step]]
            if isinstance(t, str)
            else []
            for t in distinct
        ]
        # a last, empty entry stands for the rows without text (code -1)
        encoded.append([])
        distinct_lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        distinct_offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(distinct_lengths, out=distinct_offsets[1:])
        distinct_ids = np.fromiter(
            (i for ids in encoded for i in ids), dtype=np.int32, count=int(distinct_offsets[-1])
        )
        offsets = np.zeros(len(codes) + 1, dtype=np.int64)
        lengths = offsets[1:]  # each row's count of tokens first, their running sum after
        texts = []  # the rows with tokens
        for block in row_blocks(len(codes)):
            lengths[block] = distinct_lengths.take(codes[block])
            texts.append(block.start + np.flatnonzero(lengths[block]))
        rows = np.concatenate(texts) if texts else np.zeros(0, dtype=np.int64)
        counts = lengths[rows]
        np.cumsum(lengths, out=lengths)
        # position p of row r's tokens comes from its text's tokens at p - offsets[r]
        shift = np.repeat(distinct_offsets[codes[rows]] - offsets[rows], counts)
        return distinct_ids[np.arange(offsets[-1]) + shift], offsets

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.vocabulary[i] for i in ids]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": TOKENIZER_VERSION,
            "special_tokens": SPECIAL_TOKENS,
            "max_tokens_per_step": self.max_tokens_per_step,
            "vocabulary": self.vocabulary,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> TextTokenizer:
        if payload.get("version") != TOKENIZER_VERSION:
            raise ModelStateError(
                f"tokenizer state version {payload.get('version')!r} is not supported"
            )
        return cls(list(payload["vocabulary"]), int(payload["max_tokens_per_step"]))


def _distinct(texts: Iterable[str | None], mask: np.ndarray | None) -> dict[str, int]:
    """How many times each distinct non-empty text occurs (in the rows of ``mask``, if given)."""
    codes, distinct = value_codes(_series(texts))  # missing: -1
    rows = None if mask is None else np.asarray(mask, dtype=bool)
    counts = code_counts(codes, len(distinct), rows)
    return {
        text: int(n)
        for text, n in zip(distinct, counts.tolist(), strict=True)
        if n and isinstance(text, str) and text
    }


def _series(texts: Iterable[str | None]) -> pd.Series:
    """``texts`` as a Series (a frame's column as it is: no copy into Python objects)."""
    return texts if isinstance(texts, pd.Series) else pd.Series(list(texts), dtype=object)
