"""Tasks: store a trained forecaster as a registry version, promote it, load the champion."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger

from fusioncast.config import PromotionConfig
from fusioncast.evaluate import Evaluation
from fusioncast.forecast import Forecaster
from fusioncast.promotion import GateDecision, decide
from fusioncast.registry import ModelRegistry
from fusioncast.scaling import SeriesScaler
from fusioncast.tasks import task

#: Seconds a promotion decision may hold the registry of an object store; Prefect renews the
#: lease while the run lives, and frees it this long after a run that was killed.
DECISION_LEASE_S = 120.0


@contextlib.contextmanager
def decision_lock(registry_root: Path) -> Iterator[None]:
    """One promotion decision at a time per registry, across processes and machines.

    A local registry is locked with ``flock`` (:meth:`ModelRegistry.lock`). An object store has no
    lock: the decision holds the one slot of a Prefect global concurrency limit named after the
    registry's URL, created on first use, on the server every worker of the deployment shares (a
    killed holder's lease runs out after :data:`DECISION_LEASE_S`).
    """
    registry = ModelRegistry(registry_root)
    if not registry.remote:
        with registry.lock():
            yield
        return
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists, PrefectHTTPStatusError

    name = f"fusioncast-registry-{hashlib.sha256(str(registry.root).encode()).hexdigest()[:16]}"
    with get_client(sync_client=True) as client:
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        except (ObjectAlreadyExists, PrefectHTTPStatusError):  # made by a run starting with us
            client.read_global_concurrency_limit_by_name(name)  # raises if it is truly missing
    with concurrency(name, occupy=1, strict=True, lease_duration=DECISION_LEASE_S):
        yield


@task(name="check-registry")
def check_registry(registry_root: Path) -> str | None:
    """The champion, checked before training: a pointer that is unreadable or names a missing or
    damaged version stops the run here, not after the new version is registered."""
    champion = ModelRegistry(registry_root).check_champion()
    get_run_logger().info("champion before training: %s", champion or "none yet")
    return champion


@task(name="register")
def register_model(
    registry_root: Path,
    forecaster: Forecaster,
    parameters: dict[str, Any],
    data_fingerprint: str,
    training: dict[str, Any],
    metrics: pd.DataFrame,
) -> Forecaster:
    """The forecaster stored as a new registry version, with that version."""
    version = ModelRegistry(registry_root).register(
        forecaster,
        parameters=parameters,
        data_fingerprint=data_fingerprint,
        training=training,
        metrics=metrics,
    )
    return replace(forecaster, version=version)


@task(name="promotion-gate")
def promotion_gate(
    registry_root: Path,
    candidate: Evaluation,
    scaler: SeriesScaler,
    frame: pd.DataFrame,
    config: PromotionConfig,
) -> GateDecision:
    """Whether the candidate beats the champion and the last value on the same test windows."""
    registry = ModelRegistry(registry_root)
    champion = registry.load() if registry.champion() else None
    decision = decide(candidate, scaler, frame, champion, config)
    get_run_logger().info("promotion gate: %s", decision.reason)
    return decision


@task(name="promote")
def promote_model(registry_root: Path, version: str, reason: str) -> None:
    ModelRegistry(registry_root).promote(version, reason=reason)


@task(name="load-model")
def load_model(
    registry_root: Path, version: str | None, embedding_cache_root: Path | None = None
) -> Forecaster:
    return ModelRegistry(registry_root).load(version, embedding_cache_root)
