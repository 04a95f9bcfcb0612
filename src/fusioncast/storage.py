"""Every read and write of workspace files: atomic, and failures that name the path.

A workspace is a local folder or a URL of an object store or other fsspec file system
(``s3://bucket/prefix``, ``gs://…``, ``abfs://…``; :func:`location`). A file is written whole or
not at all:

- on a local disk the content goes to a hidden temporary file beside the target (readers skip
  names starting with ``.``), is flushed to disk, and replaces the target in one rename;
- on an object store, where there is no rename, the content is written to a local temporary file
  and uploaded as one object (one PUT, or a multipart upload completed last): a reader sees the
  old object or the new one, never part of it.

A failure leaves the target as it was. A failing disk or store (read-only, full, missing, a
bucket that does not exist, credentials refused, an endpoint that does not answer) raises
:class:`~fusioncast.errors.WorkspaceError` naming the path and the cause, never a bare
``OSError`` whose message names neither.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path, PurePath
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fusioncast.errors import ConfigError, ModelStateError, WorkspaceError

#: Temporary files of atomic writes end with this; later runs remove stale ones.
TEMPORARY_SUFFIX = ".tmp"
#: Hidden folders being assembled (:func:`staged_folder`) start with this.
STAGING_PREFIX = ".staging-"
#: Leftovers of killed runs older than this are removed; a live run's are always younger.
STALE_AFTER_S = 3600.0


def location(path: str | os.PathLike) -> Path:
    """A workspace path: a local ``Path`` for a path or a ``file://`` URL; for any other URL
    (``s3://``, ``gs://``, ``memory://``…), a path object of that file system (universal_pathlib
    over fsspec) with the same operations (``/``, ``exists``, ``iterdir``, ``read_bytes``…).

    Credentials and endpoints come from the environment the file system's library reads
    (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` for s3fs;
    ``GOOGLE_APPLICATION_CREDENTIALS`` for gcsfs…), never from the URL or the parameters.
    """
    if isinstance(path, PurePath) or is_remote(path):
        return path  # type: ignore[return-value]
    text = os.fspath(path)
    if text.startswith("file://"):
        return Path(text.removeprefix("file://"))
    if "://" not in text:
        return Path(text)
    from upath import UPath

    try:
        # Listings are read afresh each time: other machines write to the same prefix.
        return UPath(text, use_listings_cache=False)
    except (ValueError, ImportError) as error:  # an unknown scheme, or its library missing
        raise ConfigError(f"workspace {text!r}: {error}") from None


def is_remote(path: object) -> bool:
    """True for a path of a non-local file system (from :func:`location`)."""
    return hasattr(path, "fs") and not isinstance(path, PurePath)


@contextlib.contextmanager
def failures_name(
    path: str | Path, action: str = "write", *, missing_passes: bool = False
) -> Iterator[None]:
    """Turn an ``OSError`` raised inside into a :class:`WorkspaceError` naming ``path``
    (or the file the error names, when it names one); so too the errors of an object store's
    client (an endpoint that does not answer, credentials refused). With ``missing_passes``, the
    ``FileNotFoundError`` of a missing file (not of a missing bucket) is raised as it is."""
    try:
        yield
    except WorkspaceError:
        raise
    except FileNotFoundError as error:
        if missing_passes and "bucket" not in str(error).lower():
            raise
        if is_remote(path):
            raise WorkspaceError(action, path, _remote_cause(error)) from error
        raise WorkspaceError.from_os_error(error, action, path) from error
    except OSError as error:
        if is_remote(path):
            raise WorkspaceError(action, path, _remote_cause(error)) from error
        raise WorkspaceError.from_os_error(error, action, path) from error
    except Exception as error:
        if not is_remote(path) or not _is_client_error(error):
            raise
        raise WorkspaceError(action, path, _remote_cause(error)) from error


def check_reachable(root: str | Path) -> None:
    """Raise :class:`WorkspaceError` when the object store of the workspace ``root`` cannot be
    used (an endpoint that does not answer, a bucket that does not exist, credentials refused):
    one request, so that a run fails before its work. A local root, or a prefix that does not
    exist yet, passes."""
    path = location(root)
    if not is_remote(path):
        return
    with contextlib.suppress(FileNotFoundError), failures_name(path, "read", missing_passes=True):
        path.fs.info(path.path)


def _is_client_error(error: Exception) -> bool:
    """An error of an object store's client library (botocore, aiohttp, google-auth...)."""
    module = type(error).__module__.split(".")[0]
    return module in {"botocore", "aiobotocore", "aiohttp", "google", "azure", "fsspec", "s3fs"}


def _remote_cause(error: Exception) -> str:
    """The reason an object store gave, on one line and without the request's details."""
    if isinstance(error, FileNotFoundError) and "bucket" in str(error).lower():
        return "the bucket does not exist"
    if isinstance(error, PermissionError):
        return f"access denied ({str(error).splitlines()[0] or 'credentials refused'})"
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, FileNotFoundError):
        return "no such file or object"
    return f"{type(error).__name__}: {text}"


def write_atomic(
    path: str | Path, write: Callable[[Path], None], *, staging: Path | None = None
) -> Path:
    """Call ``write(temporary_path)``, then make that file ``path`` in one rename.

    The temporary file is a hidden one beside ``path``, or in ``staging`` (a hidden folder on the
    same file system) where even hidden files beside ``path`` would be seen.
    """
    path = location(path)
    if is_remote(path):
        with failures_name(path), tempfile.TemporaryDirectory(prefix="fusioncast-") as local:
            tmp = Path(local) / path.name
            write(tmp)
            path.fs.put_file(str(tmp), path.path)  # one object, complete or absent
        return path
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
    path = location(path)
    try:
        with failures_name(path, "read", missing_passes=True):
            raw = path.read_bytes()
        payload = json.loads(raw)
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
    path = location(path)
    with failures_name(path, "read"):
        if is_remote(path):
            return pq.read_table(path.path, filesystem=path.fs)
        return pq.read_table(path)


def copy_file(source: Path, target: Path) -> None:
    """``source``'s bytes as ``target`` (written atomically)."""
    with failures_name(source, "read"):
        data = source.read_bytes()
    write_atomic(target, lambda tmp: tmp.write_bytes(data))


def upload_folder(local: Path, target: Path, *, last: str | None = None) -> None:
    """Every file of the local folder ``local`` (recursively) under ``target``, each one
    atomically; the file named ``last`` (at the top) is written after all the others, so a reader
    that waits for it sees the rest complete."""
    files = sorted(p for p in Path(local).rglob("*") if p.is_file())
    files.sort(key=lambda p: p.relative_to(local).as_posix() == last)
    for file in files:
        relative = file.relative_to(local).as_posix()
        copy_file(file, target.joinpath(*relative.split("/")))


def download_folder(source: Path, local: Path) -> Path:
    """The files of the workspace folder ``source`` (not its sub-folders) copied into the local
    folder ``local``; returns ``local``."""
    local = Path(local)
    local.mkdir(parents=True, exist_ok=True)
    with failures_name(source, "read"):
        for entry in source.iterdir():
            if entry.is_file():
                (local / entry.name).write_bytes(entry.read_bytes())
    return local


@contextlib.contextmanager
def staged_folder(target: Path, *, last: str | None = None) -> Iterator[Path]:
    """A local folder to fill, which becomes the workspace folder ``target`` whole when the block
    ends without an error, and is removed otherwise (``target`` then as it was).

    On a local disk it is a hidden folder beside ``target`` (``.staging-<name>``; one a killed run
    left is removed an hour on), renamed into place. On an object store, where a folder cannot
    appear at once, it is a temporary folder whose files are uploaded one object each, the file
    named ``last`` after all the others: readers take a folder without it as unfinished.
    """
    target = location(target)
    if is_remote(target):
        with tempfile.TemporaryDirectory(prefix="fusioncast-") as local:
            folder = Path(local) / target.name
            folder.mkdir()
            yield folder
            upload_folder(folder, target, last=last)
        return
    staging = target.parent / f"{STAGING_PREFIX}{target.name}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(target.parent, f"{STAGING_PREFIX}*")
        remove_stale(target.parent, f".*{TEMPORARY_SUFFIX}")
        staging.mkdir()
        yield staging
        staging.rename(target)
    except OSError as error:  # Keras's and pyarrow's carry no file name
        shutil.rmtree(staging, ignore_errors=True)
        raise WorkspaceError.from_os_error(error, "write", staging) from error
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def exclusive(lock_file: Path, timeout_s: float, what: str) -> Iterator[None]:
    """Hold ``lock_file`` exclusively (``flock``: across the processes of this machine, and of
    machines sharing its file system) while the block runs; waits at most ``timeout_s``."""
    if is_remote(lock_file):
        raise ConfigError(f"{what} is on an object store, which has no lock")
    with failures_name(lock_file):
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_file, "a+")  # noqa: SIM115  (closed below)
    with handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ModelStateError(
                        f"{what} stayed locked for {timeout_s:.0f} s by another run"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def try_lock(lock_file: Path) -> IO[str] | None:
    """An open handle holding ``lock_file`` exclusively (``flock``), or None when another process
    holds it; :func:`unlock` releases it. Safe against a holder that unlinks the file: a lock
    taken on a file no longer at that path is taken again on the one now there."""
    while True:
        handle = open(lock_file, "a+")  # noqa: SIM115 - held until unlock
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        try:
            current = os.stat(lock_file).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(handle.fileno()).st_ino:
            return handle
        unlock(handle)


def unlock(handle: IO[str]) -> None:
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    handle.close()


def sha256(path: Path) -> str:
    """The sha256 of a workspace file's bytes (read in blocks)."""
    digest = hashlib.sha256()
    with location(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def local_folder(target: Path) -> Iterator[Path]:
    """A local folder whose files end up in the workspace folder ``target``: ``target`` itself on a
    local disk; on an object store a temporary folder, uploaded when the block ends without an
    error (for libraries that write folders themselves: GX Data Docs)."""
    target = location(target)
    if not is_remote(target):
        yield target
        return
    with tempfile.TemporaryDirectory(prefix="fusioncast-") as local:
        yield Path(local)
        upload_folder(Path(local), target)


def remove_stale(directory: Path, pattern: str, older_than_s: float = STALE_AFTER_S) -> None:
    """Remove the files or folders matching ``pattern`` in ``directory`` that runs killed more than
    ``older_than_s`` ago left behind.

    Age is that of the newest change in the leftover or among its entries: a live run writes into
    what it is assembling, so its folder stays young.
    """
    if is_remote(directory):
        return  # an object store has no temporary files: each object is written in one request
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
