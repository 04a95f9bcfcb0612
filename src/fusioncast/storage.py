"""Every read and write of workspace files: atomic, and failures that name the path.

A file is written whole or not at all: the content goes to a hidden temporary file beside the
target (readers skip names starting with ``.``), is flushed to disk, and replaces the target in
one rename; a failure removes the temporary file and leaves the target as it was. A failing disk
(read-only, full, missing, a file where a folder should be) raises
:class:`~fusioncast.errors.WorkspaceError` naming the path and the cause, never a bare
``OSError`` whose message names neither.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fusioncast.errors import ModelStateError, WorkspaceError

#: Temporary files of atomic writes end with this; later runs remove stale ones.
TEMPORARY_SUFFIX = ".tmp"
#: Leftovers of killed runs older than this are removed; a live run's are always younger.
STALE_AFTER_S = 3600.0


@contextlib.contextmanager
def failures_name(path: str | Path, action: str = "write") -> Iterator[None]:
    """Turn an ``OSError`` raised inside into a :class:`WorkspaceError` naming ``path``
    (or the file the error names, when it names one)."""
    try:
        yield
    except WorkspaceError:
        raise
    except OSError as error:
        raise WorkspaceError.from_os_error(error, action, path) from error


def write_atomic(
    path: str | Path, write: Callable[[Path], None], *, staging: Path | None = None
) -> Path:
    """Call ``write(temporary_path)``, then make that file ``path`` in one rename.

    The temporary file is a hidden one beside ``path``, or in ``staging`` (a hidden folder on the
    same file system) where even hidden files beside ``path`` would be seen.
    """
    path = Path(path)
    name = f".{path.name}.{uuid.uuid4().hex}{TEMPORARY_SUFFIX}"
    tmp = (staging or path.parent) / name
    with failures_name(path):
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            write(tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
        finally:
            # A read-only file system refuses even the unlink of a file that is not there.
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        _fsync_directory(path.parent)
    return path


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """``payload`` as indented JSON (keys sorted, so equal state gives equal bytes)."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=str)
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def read_json(path: str | Path, expected_version: int | None = None) -> dict[str, Any]:
    """A JSON object written by :func:`write_json`.

    A file that is not a JSON object (truncated, overwritten) raises :class:`ModelStateError`
    naming the file (rule ``state_json``); a missing file raises ``FileNotFoundError``.
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_bytes())
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise ModelStateError(
            f"rule 'state_json' failed on {path}: not valid JSON ({error})"
        ) from None
    if not isinstance(payload, dict):
        raise ModelStateError(
            f"rule 'state_json' failed on {path}: expected a JSON object, found "
            f"{type(payload).__name__}"
        )
    if expected_version is not None and payload.get("version") != expected_version:
        raise ModelStateError(
            f"rule 'state_version' failed on {path}: expected version {expected_version}, "
            f"found {payload.get('version')!r}"
        )
    return payload


def write_parquet(
    path: str | Path, data: pd.DataFrame | pa.Table, *, staging: Path | None = None
) -> Path:
    """``data`` as one Parquet file (a DataFrame without its index)."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    return write_atomic(path, lambda tmp: pq.write_table(table, tmp), staging=staging)


def read_parquet(path: str | Path) -> pa.Table:
    """One Parquet file as a table; a failing read raises :class:`WorkspaceError` naming it."""
    with failures_name(path, "read"):
        return pq.read_table(path)


def remove_stale(directory: Path, pattern: str, older_than_s: float = STALE_AFTER_S) -> None:
    """Remove the files or folders matching ``pattern`` in ``directory`` that runs killed more than
    ``older_than_s`` ago left behind.

    Age is that of the newest change in the leftover or among its entries: a live run writes into
    what it is assembling, so its folder stays young.
    """
    now = time.time()
    for leftover in Path(directory).glob(pattern):
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


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
