"""Quarantine: input rows set aside with the first rule each broke; ``quarantine.parquet``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api import types as ptypes

from fusioncast.storage import write_parquet
from fusioncast.validation.report import FAILED, QUARANTINED, RuleResult

QUARANTINE_FILE = "quarantine.parquet"
#: Columns added to every quarantined row: the first rule it broke and that rule's column.
QUARANTINE_RULE = "quarantine_rule"
QUARANTINE_COLUMN = "quarantine_column"


class Quarantine:
    """The rule (and its column) each input row was set aside for, by input row position."""

    def __init__(self, n_rows: int) -> None:
        self.n_rows = n_rows
        self.rule_of: np.ndarray | None = None
        self.column_of: np.ndarray | None = None

    def set_aside(self, positions: np.ndarray, rule: str, column: str) -> None:
        """Rows (input positions) set aside for ``rule``; a row keeps the first rule it broke."""
        if self.rule_of is None or self.column_of is None:
            self.rule_of = np.full(self.n_rows, None, dtype=object)
            self.column_of = np.full(self.n_rows, None, dtype=object)
        fresh = positions[pd.isna(self.rule_of[positions])]
        self.rule_of[fresh] = rule
        self.column_of[fresh] = column

    def __len__(self) -> int:
        return 0 if self.rule_of is None else int(pd.notna(self.rule_of).sum())

    def beyond_share(self, max_share: float) -> str | None:
        """Why nothing is quarantined when more than ``max_share`` of the rows would be."""
        n = len(self)
        if not n or n <= max_share * self.n_rows:
            return None
        return (
            f"quarantine policy: {n} of {self.n_rows} rows ({n / self.n_rows:.1%}) broke rules, "
            f"more than max_quarantine_share={max_share:g}; nothing was quarantined"
        )

    def rows(self, frame: pd.DataFrame) -> pd.DataFrame | None:
        """The set-aside rows of the input ``frame`` as they came in, with their rule and column."""
        if self.rule_of is None or self.column_of is None:
            return None
        positions = np.flatnonzero(pd.notna(self.rule_of))
        rows = frame.iloc[positions].reset_index(drop=True)
        for column in rows.columns[[isinstance(t, pd.CategoricalDtype) for t in rows.dtypes]]:
            # their values, not the dictionary of every value of the input
            rows[column] = rows[column].astype(rows[column].cat.categories.dtype)
        rows[QUARANTINE_RULE] = self.rule_of[positions].astype(str)
        rows[QUARANTINE_COLUMN] = self.column_of[positions].astype(str)
        return rows


def revoke(results: list[RuleResult]) -> None:
    """Nothing is quarantined after all: the rules that quarantined rows fail the run instead."""
    for rule_result in results:
        if rule_result.action == QUARANTINED:
            rule_result.action, rule_result.success = FAILED, False


def write_quarantine(frame: pd.DataFrame, path: Path) -> None:
    """The set-aside rows as they came in (:func:`fusioncast.storage.write_parquet`)."""
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # raw values of mixed types: keep them as text
        frame = frame.copy()
        for column in frame.columns[[ptypes.is_object_dtype(t) for t in frame.dtypes]]:
            frame[column] = frame[column].map(lambda v: None if _is_missing(v) else str(v))
        table = pa.Table.from_pandas(frame, preserve_index=False)
    write_parquet(path, table)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT
