"""Epoch backups of a fit, so that a killed run resumes, and only the run it was made for.

A backup directory is named after a hash of everything that shapes the fit (the windows' arrays,
the model spec, the training settings, Keras and its backend) and holds that identity in
``fit.json``. A run resumes a backup only when both match; anything else starts fresh and says why.
Each directory is held with ``flock`` while a run trains with it: a run starting removes every
backup no live run holds other than its own (a killed run's backup is resumable until a run with
other settings starts in the same workspace).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import keras
import numpy as np

from fusioncast import storage
from fusioncast.config import TrainingConfig
from fusioncast.model import ModelSpec
from fusioncast.storage import write_json
from fusioncast.windows import SeriesArrays

BACKUP_VERSION = 1
SETTINGS_FILE = "fit.json"
#: Written by ``keras.callbacks.BackupAndRestore`` at the end of every epoch.
WEIGHTS_FILE = "latest.weights.h5"
_PREFIX = "fit-"


def fit_identity(
    arrays: SeriesArrays, spec: ModelSpec, training: TrainingConfig, **options: Any
) -> dict[str, Any]:
    """What a backup must have been made with to be resumed: data, model, training, Keras.

    The data enters as a sha256 of the arrays the windows are gathered from (scaled values,
    categories, tokens, split), so contract, scaler and vocabularies count too.
    """
    digest = hashlib.sha256("\x1f".join(map(str, arrays.series_ids)).encode())
    parts = [arrays.offsets, arrays.timestamps, arrays.numeric, arrays.dynamic, arrays.static]
    parts += [arrays.split] if arrays.split is not None else []
    for text in arrays.text:
        parts += text.content()
    for part in parts:
        digest.update(np.ascontiguousarray(part).view(np.uint8).ravel())
    return {
        "version": BACKUP_VERSION,
        "data": digest.hexdigest(),
        "spec": spec.to_json(),
        "training": training.model_dump(mode="json"),
        "options": options,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
    }


def backup_name(identity: dict[str, Any]) -> str:
    """The directory name of the backups of a fit with this identity."""
    return _PREFIX + hashlib.sha256(_canonical(identity).encode()).hexdigest()[:16]


@dataclass
class Claimed:
    """A backup directory held by this run; ``note`` says why a backup that was there will not be
    resumed (empty when none was, or when it will be)."""

    path: Path
    note: str = ""


@contextlib.contextmanager
def claim_backup(path: Path, identity: dict[str, Any]) -> Iterator[Claimed]:
    """The backup directory this run trains with, held (``flock``) until the block ends.

    ``path`` itself when no live run holds it: its backup is resumed if ``fit.json`` there holds
    ``identity``, otherwise it is cleared. When another run is training with it right now, a fresh
    directory beside it, so that concurrent runs never share (or delete) each other's backup.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = _try_lock(path)
    if handle is not None:
        claimed = _prepare(path, identity)
    else:
        claimed = Claimed(
            path.with_name(f"{path.name}-{uuid.uuid4().hex[:8]}"),
            note=f"started fresh: a live run is training with the backup at {path}",
        )
        handle = _try_lock(claimed.path)
        if handle is None:
            raise RuntimeError(f"unreachable: the fresh backup directory {claimed.path} is held")
        _prepare(claimed.path, identity)
    try:
        yield claimed
    finally:
        # Nothing to resume from a one-off directory, nor from one a finished fit removed.
        if claimed.path != path or not claimed.path.exists():
            shutil.rmtree(claimed.path, ignore_errors=True)
            _lock_file(claimed.path).unlink(missing_ok=True)
        _unlock(handle)


def remove_stale_backups(root: Path, keep: set[str]) -> list[Path]:
    """Remove every backup under ``root`` that no live run holds, except those named in ``keep``.

    Returns the removed directories that held a backup (an epoch's weights).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    names = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    names |= {p.name[1 : -len(".lock")] for p in root.glob(".*.lock")}
    removed = []
    for name in sorted(names - keep):
        path = root / name
        handle = _try_lock(path)
        if handle is None:  # a live run trains with it
            continue
        try:
            if (path / WEIGHTS_FILE).exists():
                removed.append(path)
            shutil.rmtree(path, ignore_errors=True)
            _lock_file(path).unlink(missing_ok=True)
        finally:
            _unlock(handle)
    return removed


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that starts fresh, instead of failing, when its backup cannot be loaded.

    Keras writes the weights file in place: a kill during the write (one kill in a few, with a
    small model) leaves a file it cannot open, so the previous epoch's backup is kept beside it
    (``double_checkpoint``) and loaded instead. A backup that still cannot be loaded (other
    shapes, both files damaged) would make Keras raise on every rerun: ``unloadable`` then says
    why, and the model's and the optimizer's variables are put back as they were before the
    attempt. ``resumed_epoch``: the epochs the loaded backup had done (0: fresh).
    """

    def __init__(self, backup_dir: Path) -> None:
        super().__init__(str(backup_dir), double_checkpoint=True, delete_checkpoint=True)
        self.unloadable = ""
        self.resumed_epoch = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        variables = list(self.model.variables) + (list(optimizer.variables) if optimizer else [])
        before = [np.array(v.numpy()) for v in variables]
        try:
            super().on_train_begin(logs)
            self.resumed_epoch = int(self.model._initial_epoch or 0)
        except (OSError, ValueError, KeyError) as error:
            for variable, value in zip(variables, before, strict=True):
                variable.assign(value)
            self.model._initial_epoch = None
            shutil.rmtree(self.backup_dir, ignore_errors=True)
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            self.unloadable = f"started fresh: the backup at {self.backup_dir} could not be loaded"
            self.unloadable += f" ({reason[:200]})"

    def on_train_end(self, logs: dict | None = None) -> None:
        super().on_train_end(logs)
        # Keras keeps the restored epoch on the model: a later fit of it (the text stage) would
        # start there instead of at epoch 0.
        self.model._initial_epoch = None


def _prepare(path: Path, identity: dict[str, Any]) -> Claimed:
    """Keep the backup at ``path`` if it was made with ``identity``; otherwise clear it."""
    claimed = Claimed(path)
    if (path / WEIGHTS_FILE).exists():
        if _read_identity(path) == json.loads(_canonical(identity)):
            return claimed
        claimed.note = f"started fresh: the backup at {path} was made with other settings"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    write_json(path / SETTINGS_FILE, identity)
    return claimed


def _read_identity(path: Path) -> Any:
    try:
        return json.loads((path / SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        return None


def _canonical(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, default=str)


def _lock_file(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def _try_lock(path: Path) -> TextIO | None:
    """An open, exclusively locked handle on the lock file of ``path``; None if a run holds it."""
    return storage.try_lock(_lock_file(path))


def _unlock(handle: TextIO) -> None:
    storage.unlock(handle)
