import hashlib

import numpy as np
import pandas as pd

from fusioncast.frames import fingerprint


def _pandas_fingerprint(frame: pd.DataFrame) -> str:
    """The definition: sha256 of the column names and of pandas' hash of every row."""
    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def test_the_data_fingerprint_hashes_rows_as_pandas_does_whatever_the_column_types():
    rng = np.random.default_rng(0)
    n = 300_000  # several blocks of rows
    frame = pd.DataFrame(
        {
            "series": pd.Categorical(rng.choice(["a", "b", "c"], n)),
            "date": pd.date_range("2020-01-01", periods=n, freq="min"),
            "sales": rng.normal(size=n),
            "count": rng.integers(0, 5, n),
            "note": pd.Categorical(rng.choice(["p", None], n), categories=["p", "unused"]),
            "empty": pd.Categorical([None] * n, categories=[]),
            "plain": rng.choice(["u", "v", None], n).astype(object),
        }
    )
    assert fingerprint(frame) == _pandas_fingerprint(frame)
    as_strings = frame.astype({"series": object, "note": object})
    # the same values held as strings identify the same data
    assert fingerprint(as_strings) == fingerprint(frame)
    changed = frame.copy()
    changed.loc[n - 1, "sales"] += 1e-9
    assert fingerprint(changed) != fingerprint(frame)
    assert fingerprint(frame.iloc[:0]) == _pandas_fingerprint(frame.iloc[:0])
