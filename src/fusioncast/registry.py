"""A model registry on the file system: versioned directories, manifests and a champion pointer.

Layout under the registry root::

    <version>/model.keras, contract.json, scaler.json, encoder.json, tokenizers.json, spec.json,
              training.json, metrics.parquet, manifest.json
    champion.json    {"model_version", "promoted_at", "reason", "history": [earlier champions]},
                     replaced atomically; ``rollback`` goes back to the previous one
    champion.json.damaged-<time>   an unreadable pointer that ``promote`` replaced, kept for people
    .staging-<version>/   a version being assembled (one a killed run left is removed an hour on)
    .lock            serialises promotion decisions between concurrent runs (``flock``)

A version directory is assembled under a hidden temporary name and renamed into place, so it is
either complete or absent. ``manifest.json`` holds the sha256 of every other file; loading refuses
a version whose files do not match it. Damage done later (a file changed, truncated or removed)
never stops the registry from being listed or repaired: :meth:`ModelRegistry.describe` gives each
version's status, and errors name the file at fault and the command that repairs it (promoting a
sound version rewrites the pointer).
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import pandas as pd

from fusioncast import storage
from fusioncast.baselines import LAST_VALUE
from fusioncast.contract import MetricColumn as M
from fusioncast.errors import ModelStateError, WorkspaceError
from fusioncast.evaluate import MODEL, summarise
from fusioncast.forecast import Forecaster
from fusioncast.storage import STAGING_PREFIX, read_json, write_json

MANIFEST_VERSION = 1
CHAMPION_VERSION = 1
MANIFEST_FILE = "manifest.json"
METRICS_FILE = "metrics.parquet"
CHAMPION_FILE = "champion.json"
LOCK_FILE = ".lock"
HISTORY_LIMIT = 100
#: Status of a version whose files all match its manifest.
OK = "ok"
_CHOOSE = (
    "choose a champion with `fusioncast models promote VERSION` "
    "(`fusioncast models list` shows which versions are ok)"
)
_REPLACE = (
    "promote another with `fusioncast models promote VERSION` or go back with "
    "`fusioncast models rollback` (`fusioncast models list` shows which versions are ok)"
)


_OUTSIDE = "outside the registry; it uses only files inside its own folder"


def _name_not_path(version: str, root: Path) -> None:
    """Refuse a version given as a path (``..``, absolute, with a separator): versions are
    the names of the registry's folders."""
    if Path(version).name != version or version in (".", "..") or "://" in version:
        raise ModelStateError(
            f"model version {version!r} is a path; a version is the name of a folder in {root}"
        )


class ModelRegistry:
    """The registry under ``root``: a local folder, or a prefix of an object store
    (:func:`fusioncast.storage.location`).

    On an object store, where a folder cannot be renamed into place, a version's files are
    uploaded one object each and its manifest last: a version without a manifest is not listed
    by :meth:`versions` (``fusioncast models list`` shows it as unfinished), so readers only ever
    use complete versions.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = storage.location(root)
        self.remote = storage.is_remote(self.root)

    def register(
        self,
        forecaster: Forecaster,
        *,
        parameters: dict[str, Any],
        data_fingerprint: str,
        training: dict[str, Any] | None = None,
        metrics: pd.DataFrame | None = None,
    ) -> str:
        """Store the forecaster as a new version (complete or not at all) and return its id.

        A disk that is full or read-only raises :class:`WorkspaceError` naming the path, and
        leaves the registry as it was.
        """
        created = pd.Timestamp.now(tz="UTC")
        version = f"{created:%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:6]}"
        contents = (version, forecaster, created, parameters, data_fingerprint, training, metrics)
        with storage.staged_folder(self.root / version, last=MANIFEST_FILE) as staging:
            self._assemble(staging, *contents)
        return version

    @staticmethod
    def _assemble(
        staging: Path,
        version: str,
        forecaster: Forecaster,
        created: pd.Timestamp,
        parameters: dict[str, Any],
        data_fingerprint: str,
        training: dict[str, Any] | None,
        metrics: pd.DataFrame | None,
    ) -> None:
        """Every file of ``version`` in the local folder ``staging``, its manifest last."""
        forecaster.save(staging)
        if training is not None:
            write_json(staging / "training.json", training)
        if metrics is not None:
            metrics.to_parquet(staging / METRICS_FILE, index=False)
        files = sorted(p.name for p in staging.iterdir() if p.is_file())
        manifest = {
            "version": MANIFEST_VERSION,
            "model_version": version,
            "created_at": created.isoformat(),
            "keras_version": keras.__version__,
            "data_fingerprint": data_fingerprint,
            "parameters": parameters,
            "files": {name: storage.sha256(staging / name) for name in files},
        }
        write_json(staging / MANIFEST_FILE, manifest)

    def versions(self) -> list[str]:
        """Complete versions (with a manifest), oldest first."""
        return [v for v in self._directories() if (self.root / v / MANIFEST_FILE).exists()]

    def _directories(self) -> list[str]:
        """Every version directory, complete or damaged; not the hidden ones being assembled."""
        with storage.failures_name(self.root, "read"):
            if not self.root.is_dir():
                return []
            return sorted(
                p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
            )

    def unfinished(self) -> list[str]:
        """Hidden folders of registrations that have not finished (or whose run was killed)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.glob(f"{STAGING_PREFIX}*") if p.is_dir())

    def champion(self) -> str | None:
        pointer = self._pointer()
        return pointer["model_version"] if pointer else None

    def champion_history(self) -> list[dict[str, Any]]:
        """Earlier champions, oldest first (what ``rollback`` goes back to)."""
        pointer = self._pointer()
        return list(pointer["history"]) if pointer else []

    def _pointer(self) -> dict[str, Any] | None:
        path = self.root / CHAMPION_FILE
        try:
            pointer = read_json(path, CHAMPION_VERSION)
        except FileNotFoundError:
            return None
        except ModelStateError as error:
            raise ModelStateError(f"{error}; {_CHOOSE}") from None
        history = pointer.setdefault("history", [])
        if not (
            isinstance(pointer.get("model_version"), str)
            and isinstance(history, list)
            and all(
                isinstance(h, dict) and isinstance(h.get("model_version"), str) for h in history
            )
        ):
            raise ModelStateError(
                f"rule 'state_json' failed on {path}: does not name a champion and its "
                f"history; {_CHOOSE}"
            )
        return pointer

    def check_champion(self) -> str | None:
        """The champion's version (``None`` when there is none yet), after checking that the
        pointer reads and names a version whose files all match its manifest.

        Raises:
            ModelStateError: naming the file at fault and the command that repairs it.
        """
        return self._verified_champion()[0]

    def _verified_champion(self) -> tuple[str | None, dict[str, Any]]:
        version = self.champion()
        if version is None:
            return None, {}
        pointer = self.root / CHAMPION_FILE
        if version not in self._directories():
            raise ModelStateError(
                f"{pointer} names model version {version}, which is not in {self.root}; {_REPLACE}"
            )
        manifest, damage = self._inspect(version)
        if damage:
            raise ModelStateError(
                f"model version {version}: {damage}; refusing to use it. It is the champion "
                f"named by {pointer}: {_REPLACE}"
            )
        return version, manifest

    def promote(self, version: str, reason: str = "") -> Path | None:
        """Make ``version`` the champion (atomic replace of the pointer), after checking its
        files; the previous champion is kept in the pointer's history.

        An unreadable pointer is copied to ``champion.json.damaged-<time>`` before it is
        replaced (its history is then lost to ``rollback``); returns that copy's path, else None.
        """
        _name_not_path(version, self.root)
        if version not in self.versions():
            raise ModelStateError(f"cannot promote unknown model version {version!r}")
        self.verify(version)
        kept = None
        try:
            pointer = self._pointer()
        except ModelStateError:
            pointer = None
            kept = (
                self.root / f"{CHAMPION_FILE}.damaged-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S}Z"
            )
            storage.copy_file(self.root / CHAMPION_FILE, kept)
        history = list(pointer["history"]) if pointer else []
        if pointer is not None and pointer["model_version"] != version:
            history.append({k: pointer.get(k) for k in ("model_version", "promoted_at", "reason")})
        self._write_pointer(version, reason, history)
        return kept

    def rollback(self, reason: str = "rollback") -> str:
        """Make the previous champion the champion again; returns its version."""
        try:
            pointer = self._pointer()
        except ModelStateError as error:
            raise ModelStateError(f"cannot roll back: {error}") from None
        history = list(pointer["history"]) if pointer else []
        current = pointer["model_version"] if pointer else None
        while history and history[-1]["model_version"] == current:
            history.pop()
        if not history:
            raise ModelStateError(f"no earlier champion to roll back to in {self.root}")
        previous = history.pop()["model_version"]
        try:
            self.verify(previous)
        except ModelStateError as error:
            raise ModelStateError(f"cannot roll back: {error}; {_CHOOSE}") from None
        self._write_pointer(previous, f"{reason} (from {current})", history)
        return previous

    def _write_pointer(self, version: str, reason: str, history: list[dict[str, Any]]) -> None:
        write_json(
            self.root / CHAMPION_FILE,
            {
                "version": CHAMPION_VERSION,
                "model_version": version,
                "promoted_at": pd.Timestamp.now(tz="UTC").isoformat(),
                "reason": reason,
                "history": history[-HISTORY_LIMIT:],
            },
        )

    @contextlib.contextmanager
    def lock(self, timeout_s: float = 3600.0) -> Iterator[None]:
        """Hold the registry's exclusive lock (across processes of this machine, or of machines
        sharing the file system through ``flock``) while deciding and promoting.

        An object store has no lock: the flows hold a Prefect global concurrency limit instead
        (``fusioncast.tasks.registry.decision_lock``)."""
        with storage.exclusive(self.root / LOCK_FILE, timeout_s, f"registry {self.root}"):
            yield

    def describe(self) -> pd.DataFrame:
        """One row per version directory, damaged ones included: when, data fingerprint, test MSE
        of the model and of the last value, whether it is the champion, and its ``status``
        (:data:`OK`, or ``damaged: <what>``). Reading a damaged version or pointer never fails
        here; :meth:`check_champion` says what the pointer's trouble is."""
        try:
            champion = self.champion()
        except ModelStateError:
            champion = None
        rows = []
        for version in self._directories():
            manifest, damage = self._inspect(version)
            manifest = manifest or {}
            row = {
                "model_version": version,
                "created_at": manifest.get("created_at"),
                "data_fingerprint": str(manifest.get("data_fingerprint", ""))[:12] or None,
                "test_mse": None,
                "last_value_mse": None,
                "champion": version == champion,
                "status": f"damaged: {damage}" if damage else OK,
            }
            metrics_path = self.root / version / METRICS_FILE
            if not damage and metrics_path.exists():
                try:
                    metrics = storage.read_parquet(metrics_path).to_pandas()
                    summary = summarise(metrics).set_index(M.MODEL)[M.MSE]
                except (OSError, ValueError, KeyError, WorkspaceError):  # ArrowInvalid: ValueError
                    row["status"] = f"damaged: {METRICS_FILE} unreadable"
                else:
                    row["test_mse"] = float(summary.get(MODEL, float("nan")))
                    row["last_value_mse"] = float(summary.get(LAST_VALUE, float("nan")))
            rows.append(row)
        return pd.DataFrame(rows)

    def _inspect(self, version: str) -> tuple[dict[str, Any] | None, str | None]:
        """The version's manifest (None when unreadable) and what is wrong with it (None: its
        files all match the manifest)."""
        directory = self.root / version
        if directory.is_symlink() or directory.resolve().parent != self.root.resolve():
            return None, f"its folder is a link to {directory.resolve()}, {_OUTSIDE}"
        try:
            manifest = read_json(directory / MANIFEST_FILE, MANIFEST_VERSION)
            files = dict(manifest["files"])
        except FileNotFoundError:
            return None, f"{MANIFEST_FILE} missing (an unfinished or emptied version)"
        except (ModelStateError, KeyError, TypeError, ValueError, OSError, WorkspaceError):
            return None, f"{MANIFEST_FILE} unreadable"
        for name, expected in files.items():
            if Path(name).name != name or name in (".", ".."):
                return manifest, f"{MANIFEST_FILE} names {name!r}, not a file of its folder"
            if (directory / name).is_symlink():
                return (
                    manifest,
                    f"file {name} is a link to {(directory / name).resolve()}, {_OUTSIDE}",
                )
            try:
                found = storage.sha256(directory / name)
            except FileNotFoundError:
                return manifest, f"file {name} is missing"
            except OSError as error:
                return manifest, f"file {name} is unreadable ({error.strerror or error})"
            if found != expected:
                return manifest, (
                    f"file {name} does not match its manifest hash (modified or corrupt)"
                )
        return manifest, None

    def verify(self, version: str) -> dict[str, Any]:
        """The version's manifest, after checking every file's sha256 against it."""
        _name_not_path(version, self.root)
        if version not in self._directories():
            raise ModelStateError(f"model version {version!r} not found under {self.root}")
        manifest, damage = self._inspect(version)
        if damage:
            raise ModelStateError(f"model version {version}: {damage}; refusing to use it")
        return manifest

    def load(
        self, version: str | None = None, embedding_cache_root: Path | None = None
    ) -> Forecaster:
        """The forecaster stored as ``version`` (default: the champion), after verifying its
        files against the manifest (``embedding_cache_root``: :meth:`Forecaster.load`)."""
        if not version:
            version = self._verified_champion()[0]
            if version is None:
                raise ModelStateError(f"no champion model in {self.root}; run retrain first")
        else:
            self.verify(version)
        if not self.remote:
            return Forecaster.load(self.root / version, version, embedding_cache_root)
        # Keras loads from a local file: the version's files, just verified, are copied here.
        with tempfile.TemporaryDirectory(prefix="fusioncast-") as local:
            copy = storage.download_folder(self.root / version, Path(local) / version)
            return Forecaster.load(copy, version, embedding_cache_root)
