"""Tasks: store a trained model as a registry version, promote it, load the champion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import pandas as pd
from prefect import task

from fusioncast.registry import LoadedModel, ModelRegistry
from fusioncast.state import ForecastingState


@task(name="register")
def register_model(
    registry_root: Path,
    model: keras.Model,
    state: ForecastingState,
    parameters: dict[str, Any],
    data_fingerprint: str,
    training: dict[str, Any],
    metrics: pd.DataFrame,
) -> str:
    registry = ModelRegistry(registry_root)
    version = registry.register(
        model,
        state,
        parameters=parameters,
        data_fingerprint=data_fingerprint,
        training=training,
        metrics=metrics,
    )
    return version


@task(name="promote")
def promote_model(registry_root: Path, version: str, reason: str) -> None:
    ModelRegistry(registry_root).promote(version, reason=reason)


@task(name="load-model")
def load_model(registry_root: Path, version: str | None) -> LoadedModel:
    return ModelRegistry(registry_root).load(version)
