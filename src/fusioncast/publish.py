"""Atomic, idempotent publishing of forecasts to a Parquet dataset partitioned by forecast date.

Layout: ``<root>/forecast_date=YYYY-MM-DD/run-<run_id>.parquet``. A run's file is written under a
hidden temporary name in the same directory and renamed into place, so a reader never sees a
half-written file (readers skip names starting with ``.``), a failed run leaves earlier forecasts
untouched, and publishing the same run again replaces its own file instead of adding rows.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fusioncast.contract import ForecastColumn as F
from fusioncast.errors import ConfigError

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def forecast_path(root: Path, run_id: str, forecast_date: pd.Timestamp) -> Path:
    if not _RUN_ID.match(run_id):
        raise ConfigError(f"run id {run_id!r} may only hold letters, digits, '.', '_' and '-'")
    return Path(root) / f"forecast_date={forecast_date:%Y-%m-%d}" / f"run-{run_id}.parquet"


def publish_forecasts(forecasts: pd.DataFrame, root: Path, *, run_id: str) -> Path:
    """Write ``forecasts`` for ``run_id`` and return the published file's path.

    The partition date is the date of the rows' ``created_at``.
    """
    if forecasts.empty:
        raise ConfigError("refusing to publish an empty forecast table")
    created = pd.Timestamp(forecasts[F.CREATED_AT].iloc[0])
    target = forecast_path(root, run_id, created)
    target.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(forecasts, preserve_index=False)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_directory(target.parent)
    return target


def read_forecasts(root: Path) -> pd.DataFrame:
    """Every published forecast under ``root`` (with the ``forecast_date`` partition column)."""
    return pd.read_parquet(root)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
