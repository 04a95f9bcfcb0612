"""A model registry on the file system: versioned directories, manifests and a champion pointer.

Layout under the registry root::

    <version>/model.keras, contract.json, scaler.json, encoder.json, tokenizers.json, spec.json,
              training.json, metrics.parquet, manifest.json
    champion.json    {"model_version", "promoted_at", "reason", "history": [earlier champions]},
                     replaced atomically; ``rollback`` goes back to the previous one
    .lock            serialises promotion decisions between concurrent runs (``flock``)

A version directory is assembled under a hidden temporary name and renamed into place, so it is
either complete or absent. ``manifest.json`` holds the sha256 of every other file; loading refuses
a version whose files do not match it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import pandas as pd

from fusioncast.baselines import LAST_VALUE
from fusioncast.contract import read_json, write_json
from fusioncast.errors import ModelStateError
from fusioncast.evaluate import MODEL, summarise
from fusioncast.model import load_model
from fusioncast.state import ForecastingState

MANIFEST_VERSION = 1
CHAMPION_VERSION = 1
MODEL_FILE = "model.keras"
CHAMPION_FILE = "champion.json"
LOCK_FILE = ".lock"
HISTORY_LIMIT = 100


@dataclass
class LoadedModel:
    version: str
    model: keras.Model
    state: ForecastingState
    manifest: dict[str, Any]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ModelRegistry:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def register(
        self,
        model: keras.Model,
        state: ForecastingState,
        *,
        parameters: dict[str, Any],
        data_fingerprint: str,
        training: dict[str, Any] | None = None,
        metrics: pd.DataFrame | None = None,
    ) -> str:
        """Store a new version (complete or not at all) and return its id."""
        created = pd.Timestamp.now(tz="UTC")
        version = f"{created:%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:6]}"
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".staging-{version}"
        staging.mkdir()
        try:
            model.save(staging / MODEL_FILE)
            state.save(staging)
            if training is not None:
                write_json(staging / "training.json", training)
            if metrics is not None:
                metrics.to_parquet(staging / "metrics.parquet", index=False)
            files = sorted(p.name for p in staging.iterdir() if p.is_file())
            manifest = {
                "version": MANIFEST_VERSION,
                "model_version": version,
                "created_at": created.isoformat(),
                "keras_version": keras.__version__,
                "data_fingerprint": data_fingerprint,
                "parameters": parameters,
                "files": {name: sha256_of(staging / name) for name in files},
            }
            write_json(staging / "manifest.json", manifest)
            staging.rename(self.root / version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return version

    def versions(self) -> list[str]:
        """Complete versions, oldest first."""
        if not self.root.exists():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and (p / "manifest.json").exists() and not p.name.startswith(".")
        )

    def champion(self) -> str | None:
        pointer = self._pointer()
        return pointer["model_version"] if pointer else None

    def champion_history(self) -> list[dict[str, Any]]:
        """Earlier champions, oldest first (what ``rollback`` goes back to)."""
        pointer = self._pointer()
        return list(pointer.get("history", [])) if pointer else []

    def _pointer(self) -> dict[str, Any] | None:
        path = self.root / CHAMPION_FILE
        return read_json(path, CHAMPION_VERSION) if path.exists() else None

    def promote(self, version: str, reason: str = "") -> None:
        """Make ``version`` the champion (atomic replace of the pointer); the previous champion is
        kept in the pointer's history."""
        if version not in self.versions():
            raise ModelStateError(f"cannot promote unknown model version {version!r}")
        pointer = self._pointer()
        history = self.champion_history()
        if pointer is not None and pointer["model_version"] != version:
            history.append({k: pointer.get(k) for k in ("model_version", "promoted_at", "reason")})
        self._write_pointer(version, reason, history)

    def rollback(self, reason: str = "rollback") -> str:
        """Make the previous champion the champion again; returns its version."""
        history = self.champion_history()
        current = self.champion()
        while history and history[-1]["model_version"] == current:
            history.pop()
        if not history:
            raise ModelStateError(f"no earlier champion to roll back to in {self.root}")
        previous = history.pop()["model_version"]
        self.verify(previous)
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
        """Hold the registry's exclusive lock (across processes) while deciding and promoting."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_FILE, "a+") as handle:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ModelStateError(
                            f"registry {self.root} stayed locked for {timeout_s:.0f} s "
                            "by another run"
                        ) from None
                    time.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def describe(self) -> pd.DataFrame:
        """One row per version: when, data fingerprint, test MSE of the model and of the last
        value, whether it is the champion."""
        champion = self.champion()
        rows = []
        for version in self.versions():
            manifest = read_json(self.root / version / "manifest.json", MANIFEST_VERSION)
            row = {
                "model_version": version,
                "created_at": manifest["created_at"],
                "data_fingerprint": manifest["data_fingerprint"][:12],
                "test_mse": None,
                "last_value_mse": None,
                "champion": version == champion,
            }
            metrics_path = self.root / version / "metrics.parquet"
            if metrics_path.exists():
                summary = summarise(pd.read_parquet(metrics_path)).set_index("model")["mse"]
                row["test_mse"] = float(summary.get(MODEL, float("nan")))
                row["last_value_mse"] = float(summary.get(LAST_VALUE, float("nan")))
            rows.append(row)
        return pd.DataFrame(rows)

    def verify(self, version: str) -> dict[str, Any]:
        """The version's manifest, after checking every file's sha256 against it."""
        directory = self.root / version
        manifest_path = directory / "manifest.json"
        if not manifest_path.exists():
            raise ModelStateError(f"model version {version!r} not found under {self.root}")
        manifest = read_json(manifest_path, MANIFEST_VERSION)
        for name, expected in manifest["files"].items():
            path = directory / name
            if not path.exists():
                raise ModelStateError(f"model version {version}: file {name} is missing")
            if sha256_of(path) != expected:
                raise ModelStateError(
                    f"model version {version}: file {name} does not match its manifest hash "
                    "(modified or corrupt); refusing to use it"
                )
        return manifest

    def load(self, version: str | None = None) -> LoadedModel:
        """Load ``version`` (default: the champion) after verifying it."""
        version = version or self.champion()
        if version is None:
            raise ModelStateError(f"no champion model in {self.root}; run retrain first")
        manifest = self.verify(version)
        directory = self.root / version
        model = load_model(directory / MODEL_FILE)
        return LoadedModel(version, model, ForecastingState.load(directory), manifest)
