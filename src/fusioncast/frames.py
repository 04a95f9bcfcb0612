"""Small helpers over a validated input frame (sorted by series and timestamp)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from fusioncast.contract import SINGLE_SERIES_ID, DataContract

#: Rows per block of a pass over a large frame: each block's temporaries (8 MB per float64
#: column) are reused from one block to the next instead of being fresh memory the length of
#: the frame.
BLOCK_ROWS = 1 << 20


def row_blocks(n_rows: int, size: int = BLOCK_ROWS) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` rows covering ``n_rows``."""
    for start in range(0, n_rows, size):
        yield slice(start, start + size)


def value_codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Each row's value as an integer code (-1: missing) and the values coded, ``values[k]``
    for code ``k``: a categorical's own codes and categories (no copy; categories no row holds
    included), else one hash pass (``pd.factorize``)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.array.codes, values.cat.categories  # the codes: a view
    codes, uniques = pd.factorize(values)
    return codes, pd.Index(uniques)


def code_counts(codes: np.ndarray, size: int, rows: np.ndarray | None = None) -> np.ndarray:
    """How many rows (of those where ``rows`` is true) hold each code ``0 .. size - 1``; -1 is
    not counted. A pass over blocks: no temporary the length of the frame."""
    counts = np.zeros(size, dtype=np.int64)
    for block in row_blocks(len(codes)):
        held = codes[block] if rows is None else codes[block][rows[block]]
        counts += np.bincount(held[held >= 0], minlength=size)
    return counts


def series_codes(frame: pd.DataFrame, contract: DataContract) -> tuple[np.ndarray, np.ndarray]:
    """Every row's series as an integer code, and the series ids (str, object ``[S]``).

    Codes number the series in order of first appearance, so ``ids[codes]`` are the rows' ids:
    a validated frame's categorical codes as they are (no copy), else one hash pass over the
    column (no per-row Python objects).
    """
    if contract.series_id is None:
        ids = np.array([SINGLE_SERIES_ID] if len(frame) else [], dtype=object)
        return np.zeros(len(frame), dtype=np.int64), ids
    column = frame[contract.series_id]
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes, categories = value_codes(column)
        if _in_first_appearance(codes, len(categories)):
            # at least int32 (no copy from 32,768 series on): the callers' arithmetic fits
            codes = codes.astype(np.int32, copy=False)
            return codes, np.asarray(categories.astype(str), dtype=object)
    codes, uniques = pd.factorize(column)
    return codes.astype(np.int64, copy=False), np.asarray(uniques.astype(str), dtype=object)


def _in_first_appearance(codes: np.ndarray, size: int) -> bool:
    """Whether ``codes`` start at 0, end at ``size - 1`` and only ever stay or step up by one
    (rows grouped by series in the categories' order, every category held); in blocks."""
    if not len(codes) or codes[0] != 0 or codes[-1] != size - 1:
        return False
    before, after = codes[:-1], codes[1:]  # views
    for block in row_blocks(len(before)):
        step = after[block] - before[block]
        if step.min() < 0 or step.max() > 1:
            return False
    return True


def series_offsets(codes: np.ndarray) -> np.ndarray:
    """Row offsets ``[S + 1]`` of each series' block, from the codes of :func:`series_codes`.

    Rows must already be grouped by series (validation sorts them).
    """
    if len(codes) == 0:
        return np.zeros(1, dtype=np.int64)
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    return np.concatenate([[0], change, [len(codes)]]).astype(np.int64)


def shards(frame: pd.DataFrame, contract: DataContract, count: int) -> list[pd.DataFrame]:
    """A validated (grouped, sorted) frame cut into at most ``count`` consecutive blocks of whole
    series, with as many series in each as can be (no empty block)."""
    codes, _ = series_codes(frame, contract)
    offsets = series_offsets(codes)
    n_series = len(offsets) - 1
    count = max(1, min(count, n_series))
    cuts = offsets[(np.arange(count + 1) * n_series) // count]
    return [frame.iloc[start:end] for start, end in zip(cuts[:-1], cuts[1:], strict=True)]


def last_rows(frame: pd.DataFrame, contract: DataContract, count: int) -> pd.DataFrame:
    """The last ``count`` rows of each series of a validated (grouped, sorted) frame."""
    codes, _ = series_codes(frame, contract)
    offsets = series_offsets(codes)
    ends = np.repeat(offsets[1:], np.diff(offsets))
    keep = np.arange(len(frame)) >= ends - count
    return frame if keep.all() else frame.iloc[np.flatnonzero(keep)]


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 over the frame's column names and row hashes: identifies the data a model saw.

    The row hashes are :func:`pandas.util.hash_pandas_object`'s (``index=False``), so a column
    held as a categorical hashes as its values would. They are computed in blocks (a row's hash
    does not depend on the others), and a categorical's categories are hashed once, not once
    per block: the work grows with the rows alone.
    """
    import hashlib

    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    columns = [_row_hasher(frame.iloc[:, i]) for i in range(frame.shape[1])]
    for rows in row_blocks(len(frame), BLOCK_ROWS // 16):  # hashing's temporaries stay in cache
        digest.update(_combined(column(rows) for column in columns).tobytes())
    return digest.hexdigest()


def _row_hasher(values: pd.Series):
    """A function from a block of rows to their values' hashes, as pandas hashes the column."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return lambda rows: pd.util.hash_pandas_object(values.iloc[rows], index=False).to_numpy()
    hashed = pd.util.hash_array(values.cat.categories.to_numpy(), categorize=False)
    codes = values.array.codes  # a view

    def hashes(rows: slice) -> np.ndarray:
        block = codes[rows]
        out = hashed.take(block) if len(hashed) else np.zeros(len(block), dtype=np.uint64)
        out[block < 0] = np.iinfo(np.uint64).max  # pandas' hash of a missing category
        return out

    return hashes


def _combined(hashes: Iterator[np.ndarray]) -> np.ndarray:
    """The row hashes of several columns' hashes, as :func:`pandas.util.hash_pandas_object` combines
    them (CPython's tuple hash)."""
    arrays = list(hashes)
    if not arrays:
        return np.array([], dtype=np.uint64)
    mult = np.uint64(1000003)
    out = np.full_like(arrays[0], 0x345678)
    for i, array in enumerate(arrays):
        out ^= array
        out *= mult
        mult += np.uint64(82520 + 2 * (len(arrays) - i))
    out += np.uint64(97531)
    return out
