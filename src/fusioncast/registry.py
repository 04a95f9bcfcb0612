"""A model registry on the file system: versioned directories, manifests and a champion pointer.

Layout under the registry root::

    <version>/model.keras, contract.json, scaler.json, encoder.json, tokenizers.json, spec.json,
              training.json, metrics.parquet, manifest.json
    champion.json    {"version": ..., "promoted_at": ...}, replaced atomically

A version directory is assembled under a hidden temporary name and renamed into place, so it is
either complete or absent. ``manifest.json`` holds the sha256 of every other file; loading refuses
a version whose files do not match it.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import pandas as pd

from fusioncast.contract import read_json, write_json
from fusioncast.errors import ModelStateError
from fusioncast.model import load_model
from fusioncast.state import ForecastingState

MANIFEST_VERSION = 1
CHAMPION_VERSION = 1
MODEL_FILE = "model.keras"


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
        pointer = self.root / "champion.json"
        if not pointer.exists():
            return None
        return read_json(pointer, CHAMPION_VERSION)["model_version"]

    def promote(self, version: str, reason: str = "") -> None:
        """Make ``version`` the champion (atomic replace of the pointer)."""
        if version not in self.versions():
            raise ModelStateError(f"cannot promote unknown model version {version!r}")
        write_json(
            self.root / "champion.json",
            {
                "version": CHAMPION_VERSION,
                "model_version": version,
                "promoted_at": pd.Timestamp.now(tz="UTC").isoformat(),
                "reason": reason,
            },
        )

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
