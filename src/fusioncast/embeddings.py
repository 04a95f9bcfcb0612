"""Frozen pretrained sentence encoders for the text features, and the cache of their embeddings.

An encoder is a local directory (nothing is downloaded):

``tokenizer.json``
    a Hugging Face ``tokenizers`` tokenizer;
``embeddings.safetensors``
    one 2-D float tensor, vocabulary x dimension: the vector of every token id;
``encoder.json`` (optional)
    ``{"normalise": true}`` (the default): whether a text's vector is scaled to unit length.

A text's vector is the mean of its tokens' rows (tokenized without special tokens), L2-normalised:
what wordllama's ``embed(texts, norm=True)`` computes. A text without a token has no vector.
The encoder's identity is the sha256 over its files; the model's fitted state keeps it, and the
embeddings cache of a workspace is keyed by it (``<root>/embeddings/<sha256[:16]>/``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from fusioncast.errors import ConfigError
from fusioncast.storage import read_parquet, write_parquet

TOKENIZER_FILE = "tokenizer.json"
EMBEDDINGS_FILE = "embeddings.safetensors"
OPTIONS_FILE = "encoder.json"
#: Folder of a workspace that holds the cached embeddings, one subfolder per encoder.
CACHE_FOLDER = "embeddings"
#: Columns of a cache file: sha256 of the text, whether it had a token, its vector.
KEY, HAS_TOKENS, VECTOR = "text_sha256", "has_tokens", "embedding"
_BATCH = 256


def encoder_sha256(path: str | Path) -> str:
    """sha256 over the encoder's files (name and content, in name order)."""
    path = Path(path)
    digest = hashlib.sha256()
    for name in sorted((TOKENIZER_FILE, EMBEDDINGS_FILE, OPTIONS_FILE)):
        file = path / name
        if not file.is_file():
            continue
        digest.update(name.encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):  # noqa: B023
                digest.update(block)
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class SentenceEncoder:
    """A loaded encoder: its tokenizer, its frozen token vectors ``[V, D]`` and its identity."""

    path: Path
    tokenizer: object  # tokenizers.Tokenizer
    table: np.ndarray  # float32 [V, D]
    normalise: bool
    sha256: str

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    @property
    def vocabulary_size(self) -> int:
        return int(self.table.shape[0])

    @classmethod
    def load(cls, path: str | Path) -> SentenceEncoder:
        """The encoder in directory ``path``; :class:`ConfigError` naming the path and what is
        wrong when the directory or a file is missing or unreadable, or the tensor is not 2-D."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = Path(path)
        where = f"pretrained_encoder {path}"
        if not path.is_dir():
            raise ConfigError(f"{where}: not a directory")
        for name in (TOKENIZER_FILE, EMBEDDINGS_FILE):
            if not (path / name).is_file():
                raise ConfigError(f"{where}: file {name} is missing")
        try:
            tokenizer = Tokenizer.from_file(str(path / TOKENIZER_FILE))
        except Exception as error:  # tokenizers raises a bare Exception on a bad file
            raise ConfigError(f"{where}: {TOKENIZER_FILE} unreadable ({error})") from None
        try:
            tensors = load_file(path / EMBEDDINGS_FILE)
        except (SafetensorError, OSError, ValueError) as error:
            raise ConfigError(f"{where}: {EMBEDDINGS_FILE} unreadable ({error})") from None
        if len(tensors) != 1:
            raise ConfigError(
                f"{where}: {EMBEDDINGS_FILE} must hold one tensor, found {len(tensors)}"
            )
        (name, table), *_ = tensors.items()
        if table.ndim != 2 or not np.issubdtype(table.dtype, np.floating):
            raise ConfigError(
                f"{where}: tensor {name!r} of {EMBEDDINGS_FILE} must be a 2-D float matrix "
                f"(vocabulary x dimension), found shape {list(table.shape)} {table.dtype}"
            )
        normalise = True
        if (path / OPTIONS_FILE).is_file():
            try:
                options = json.loads((path / OPTIONS_FILE).read_text())
                normalise = bool(options.get("normalise", True))
            except (ValueError, AttributeError) as error:
                raise ConfigError(
                    f"{where}: {OPTIONS_FILE} is not a JSON object ({error})"
                ) from None
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return cls(path, tokenizer, table.astype(np.float32), normalise, encoder_sha256(path))

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Vectors ``float32 [N, D]`` of ``texts`` and whether each had a token ``bool [N]``
        (a text without one gets a zero vector)."""
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        has_tokens = np.zeros(len(texts), dtype=bool)
        for start in range(0, len(texts), _BATCH):
            batch = self.tokenizer.encode_batch(
                texts[start : start + _BATCH], add_special_tokens=False
            )
            for j, encoding in enumerate(batch):
                if not encoding.ids:
                    continue
                ids = np.clip(np.asarray(encoding.ids), 0, self.vocabulary_size - 1)
                vector = self.table[ids].mean(axis=0)
                if self.normalise:
                    vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
                vectors[start + j] = vector
                has_tokens[start + j] = True
        return vectors, has_tokens

    def cache_dir(self, workspace_root: str | Path) -> Path:
        """Where a workspace keeps this encoder's embeddings."""
        return Path(workspace_root) / CACHE_FOLDER / self.sha256[:16]


def embed_texts(
    encoder: SentenceEncoder, texts: np.ndarray, cache_dir: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of the distinct texts of ``texts`` (object ``[N]``, ``None`` for no text).

    Returns ``table float32 [U, D]`` (one row per distinct text with a token) and ``index int32
    [N]``, each text's row in it, ``-1`` for no text (null, empty, or no token). Each distinct
    text is encoded once; with ``cache_dir``, vectors found in its Parquet files are read, not
    encoded again, and the new ones are written there as one more file (atomic).
    """
    values = pd.Series(texts, dtype=object)
    is_text = values.map(lambda t: isinstance(t, str) and t != "").to_numpy(dtype=bool)
    distinct, inverse = np.unique(values[is_text].to_numpy(dtype=str), return_inverse=True)
    keys = [text_sha256(t) for t in distinct]
    cached = _read_cache(cache_dir, encoder.dim) if cache_dir is not None else {}
    missing = [j for j, key in enumerate(keys) if key not in cached]
    if missing:
        vectors, has_tokens = encoder.encode([str(distinct[j]) for j in missing])
        fresh = {
            keys[j]: (bool(h), v) for j, h, v in zip(missing, has_tokens, vectors, strict=True)
        }
        if cache_dir is not None:
            _write_cache(cache_dir, fresh, encoder.dim)
        cached = {**cached, **fresh}
    found = np.array([cached[key][0] for key in keys], dtype=bool)
    rows = np.cumsum(found) - 1
    table = np.zeros((int(found.sum()), encoder.dim), dtype=np.float32)
    for j in np.flatnonzero(found):
        table[rows[j]] = cached[keys[j]][1]
    index = np.full(len(values), -1, dtype=np.int32)
    index[is_text] = np.where(found[inverse], rows[inverse], -1)
    return table, index


def _read_cache(cache_dir: Path, dim: int) -> dict[str, tuple[bool, np.ndarray]]:
    cached: dict[str, tuple[bool, np.ndarray]] = {}
    for file in sorted(Path(cache_dir).glob("*.parquet")):
        table = read_parquet(file)
        vectors = table.column(VECTOR).combine_chunks().flatten().to_numpy()
        vectors = vectors.astype(np.float32).reshape(-1, dim)
        keys = table.column(KEY).to_pylist()
        has = table.column(HAS_TOKENS).to_pylist()
        cached.update({k: (h, v) for k, h, v in zip(keys, has, vectors, strict=True)})
    return cached


def _write_cache(cache_dir: Path, vectors: dict[str, tuple[bool, np.ndarray]], dim: int) -> None:
    keys = sorted(vectors)
    flat = np.concatenate([vectors[k][1] for k in keys]).astype(np.float32)
    table = pa.table(
        {
            KEY: pa.array(keys, pa.string()),
            HAS_TOKENS: pa.array([vectors[k][0] for k in keys], pa.bool_()),
            VECTOR: pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim),
        }
    )
    # Named by its content: a run that encodes the same new texts writes the same file.
    name = hashlib.sha256("".join(keys).encode()).hexdigest()[:16]
    write_parquet(Path(cache_dir) / f"part-{name}.parquet", table)
