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


@contextlib.contextmanager
def failures_name(path: str | Path, action: str = "write") -> Iterator[None]:
    """Turn an ``OSError`` raised inside into a :class:`WorkspaceError` naming ``path``
    (or the file the error names, when it names one)."""
    try:
        yield
    except WorkspaceError:
        raise
    except OSError as error:
        named = error.filename if error.filename is not None else path
        raise WorkspaceError(action, named, _cause(error)) from error


def _cause(error: OSError) -> str:
    if error.strerror:
        return error.strerror
    if error.errno:
        return os.strerror(error.errno)
    text = str(error)
    # pyarrow: "Error writing bytes to file. Detail: [errno 28] No space left on device"
    return text.rsplit("] ", 1)[-1] if "[errno" in text else text or type(error).__name__


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary_path)``, then make its file ``path`` in one rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{TEMPORARY_SUFFIX}")
    with failures_name(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            write(tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_directory(path.parent)
    return path


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """``payload`` as indented JSON (keys sorted, so equal state gives equal bytes)."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=str)
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def read_json(path: str | Path, expected_version: int | None = None) -> dict[str, Any]:
    """The JSON object in ``path``; damage (unreadable, not JSON, not an object, another
    ``version``) is a :class:`ModelStateError` naming the file."""
    path = Path(path)
    with failures_name(path, "read"):
        text = path.read_text()
    try:
        payload = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelStateError(f"{path} is damaged: not valid JSON ({error})") from None
    if not isinstance(payload, dict):
        raise ModelStateError(f"{path} is damaged: it holds no JSON object")
    if expected_version is not None and payload.get("version") != expected_version:
        raise ModelStateError(
            f"rule 'state_version' failed on {path}: expected version {expected_version}, "
            f"found {payload.get('version')!r}"
        )
    return payload


def write_parquet(path: str | Path, data: pd.DataFrame | pa.Table) -> Path:
    """``data`` as one Parquet file (a DataFrame without its index)."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    return write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
