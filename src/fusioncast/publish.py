"""Atomic, idempotent publishing of forecasts to a Parquet dataset partitioned by forecast date.

Layout: ``<root>/forecast_date=YYYY-MM-DD/run-<run_id>.parquet``. A run's file is written under
``<root>/.staging/`` (hidden: readers skip names starting with ``.`` or ``_``), flushed to disk, and
renamed into its partition, so a reader sees the whole file or nothing: a run killed part-way leaves
no partial partition and the earlier forecasts as they were. Publishing the same run again replaces
its own file instead of adding rows. Temporary files of killed runs are removed by later runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from fusioncast import storage
from fusioncast.contract import ForecastColumn as F
from fusioncast.errors import ConfigError

STAGING = ".staging"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def forecast_path(root: Path, run_id: str, forecast_date: pd.Timestamp) -> Path:
    if not _RUN_ID.match(run_id):
        raise ConfigError(f"run id {run_id!r} may only hold letters, digits, '.', '_' and '-'")
    return (
        storage.location(root) / f"forecast_date={forecast_date:%Y-%m-%d}" / f"run-{run_id}.parquet"
    )


def publish_forecasts(forecasts: pd.DataFrame, root: Path, *, run_id: str) -> Path:
    """Write ``forecasts`` for ``run_id`` and return the published file's path.

    The partition date is the date of the rows' ``created_at``. A disk that is full or read-only
    raises :class:`WorkspaceError` naming the path; the published forecasts are then as they were.
    """
    if forecasts.empty:
        raise ConfigError("refusing to publish an empty forecast table")
    created = pd.Timestamp(forecasts[F.CREATED_AT].iloc[0])
    target = forecast_path(root, run_id, created)
    if storage.is_remote(target):  # one object in one request: no staging needed
        return storage.write_parquet(target, forecasts)
    staging = Path(root) / STAGING
    with storage.failures_name(target):
        storage.remove_stale(staging, f"*{storage.TEMPORARY_SUFFIX}")
    storage.write_parquet(target, forecasts, staging=staging)
    return target


def read_forecasts(root: Path) -> pd.DataFrame:
    """Every published forecast under ``root`` (with the ``forecast_date`` partition column)."""
    return pd.read_parquet(str(root))
