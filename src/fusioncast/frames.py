"""Small helpers over a validated input frame (sorted by series and timestamp)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusioncast.contract import SINGLE_SERIES_ID, DataContract


def series_keys(frame: pd.DataFrame, contract: DataContract) -> np.ndarray:
    """Series id of every row as an array of str (one id for a single-series contract)."""
    if contract.series_id is None:
        return np.full(len(frame), SINGLE_SERIES_ID, dtype=object)
    return frame[contract.series_id].astype(str).to_numpy(dtype=object)


def series_offsets(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct series ids in order of appearance and the row offsets ``[S + 1]`` of each block.

    Rows must already be grouped by series (validation sorts them).
    """
    if len(keys) == 0:
        return np.array([], dtype=object), np.zeros(1, dtype=np.int64)
    change = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts = np.concatenate([[0], change]).astype(np.int64)
    offsets = np.concatenate([starts, [len(keys)]]).astype(np.int64)
    return keys[starts], offsets


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 over the frame's column names and row hashes: identifies the data a model saw."""
    import hashlib

    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
