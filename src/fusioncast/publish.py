"""Atomic, idempotent publishing of forecasts to a Parquet dataset partitioned by forecast date.

Layout: ``<root>/forecast_date=YYYY-MM-DD/run-<run_id>.parquet``. A run's file is written under
``<root>/.staging/`` (hidden: readers skip names starting with ``.`` or ``_``), flushed to disk, and
renamed into its partition, so a reader sees the whole file or nothing: a run killed part-way leaves
no partial partition and the earlier forecasts as they were. Publishing the same run again replaces
its own file instead of adding rows. Temporary files of killed runs are removed by later runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fusioncast.contract import ForecastColumn as F
from fusioncast.errors import ConfigError

STAGING = ".staging"
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
    staging = Path(root) / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    _remove_stale(staging)
    table = pa.Table.from_pandas(forecasts, preserve_index=False)
    tmp = staging / f"{target.parent.name}.{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_directory(target.parent)
    return target


def _remove_stale(staging: Path, older_than_s: float = 3600.0) -> None:
    """Remove temporary files left by runs killed more than ``older_than_s`` ago."""
    now = time.time()
    for leftover in staging.glob("*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if now - leftover.stat().st_mtime > older_than_s:
                leftover.unlink()


def read_forecasts(root: Path) -> pd.DataFrame:
    """Every published forecast under ``root`` (with the ``forecast_date`` partition column)."""
    return pd.read_parquet(root)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
