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

from fusioncast.errors import ModelStateError

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
        max_vocabulary: int = 20_000,
        min_count: int = 2,
        max_tokens_per_step: int = 32,
    ) -> TextTokenizer:
        """Fit on training text: the most frequent words seen at least ``min_count`` times."""
        counts: Counter[str] = Counter()
        for text in texts:
            if isinstance(text, str) and text:
                counts.update(words(text)[:max_tokens_per_step])
        kept = [w for w, c in counts.items() if c >= min_count]
        kept.sort(key=lambda w: (-counts[w], w))
        room = max(0, max_vocabulary - len(SPECIAL_TOKENS))
        return cls(SPECIAL_TOKENS + kept[:room], max_tokens_per_step)

    @property
    def size(self) -> int:
        return len(self.vocabulary)

    def encode(self, texts: Iterable[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of each text: ``(flat int32 [M], offsets int64 [N + 1])``; null: no tokens."""
        index = {w: i for i, w in enumerate(self.vocabulary)}
        flat: list[int] = []
        lengths: list[int] = []
        for text in texts:
            if not isinstance(text, str) or not text:
                lengths.append(0)
                continue
            ids = [index.get(w, OOV) for w in words(text)[: self.max_tokens_per_step]]
            flat.extend(ids)
            lengths.append(len(ids))
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return np.asarray(flat, dtype=np.int32), offsets

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
