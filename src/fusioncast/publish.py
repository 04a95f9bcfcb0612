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
import shutil
import time
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fusioncast.contract import ForecastColumn as F
from fusioncast.errors import ConfigError, WorkspaceError

STAGING = ".staging"
#: Leftovers of killed runs older than this are removed; a live run's are always younger.
STALE_AFTER_S = 3600.0
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def forecast_path(root: Path, run_id: str, forecast_date: pd.Timestamp) -> Path:
    if not _RUN_ID.match(run_id):
        raise ConfigError(f"run id {run_id!r} may only hold letters, digits, '.', '_' and '-'")
    return Path(root) / f"forecast_date={forecast_date:%Y-%m-%d}" / f"run-{run_id}.parquet"


def publish_forecasts(forecasts: pd.DataFrame, root: Path, *, run_id: str) -> Path:
    """Write ``forecasts`` for ``run_id`` and return the published file's path.

    The partition date is the date of the rows' ``created_at``. A disk that is full or read-only
    raises :class:`WorkspaceError` naming the path; the published forecasts are then as they were.
    """
    if forecasts.empty:
        raise ConfigError("refusing to publish an empty forecast table")
    created = pd.Timestamp(forecasts[F.CREATED_AT].iloc[0])
    target = forecast_path(root, run_id, created)
    staging = Path(root) / STAGING
    table = pa.Table.from_pandas(forecasts, preserve_index=False)
    tmp = staging / f"{target.parent.name}.{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        staging.mkdir(parents=True, exist_ok=True)
        remove_stale(staging, "*.tmp")
        try:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        _fsync_directory(target.parent)
    except OSError as error:  # pyarrow's carry no file name: the target names the place
        raise WorkspaceError.from_os_error(error, "write", target) from error
    return target


def remove_stale(directory: Path, pattern: str, older_than_s: float = STALE_AFTER_S) -> None:
    """Remove the files or folders matching ``pattern`` in ``directory`` that runs killed more than
    ``older_than_s`` ago left behind.

    Age is that of the newest change in the leftover or among its entries: a live run writes into
    what it is assembling, so its folder stays young.
    """
    now = time.time()
    for leftover in directory.glob(pattern):
        with contextlib.suppress(FileNotFoundError):
            if now - _last_change(leftover) <= older_than_s:
                continue
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()


def _last_change(path: Path) -> float:
    changes = [path.stat().st_mtime]
    if path.is_dir():
        changes += [entry.stat().st_mtime for entry in path.iterdir()]
    return max(changes)


def read_forecasts(root: Path) -> pd.DataFrame:
    """Every published forecast under ``root`` (with the ``forecast_date`` partition column)."""
    return pd.read_parquet(root)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
