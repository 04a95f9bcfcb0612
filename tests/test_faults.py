"""Faults with real processes: a tampered model, and two retrains racing for the registry.

Each command runs as its own ``fusioncast`` process with its own Prefect home, so each starts its
own temporary Prefect server, as two scheduled or manual runs on one machine would.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fusioncast.contract import ForecastColumn as F
from fusioncast.demo import DEMO_CONTRACT, write_demo_dataset
from fusioncast.model import build_model
from fusioncast.registry import ModelRegistry
from fusioncast.split import split_by_time
from fusioncast.state import ForecastingState, fit_scaler, fit_vocabularies
from fusioncast.storage import read_json

pytestmark = pytest.mark.slow

TRAINING = {"epochs": 2, "batch_size": 64, "steps_per_epoch": 4}


def _fusioncast(*args: str, home: Path) -> subprocess.Popen:
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.pop("PREFECT_API_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )


def _files(root: Path) -> dict[str, str]:
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults")
    return write_demo_dataset(root / "data", n_stores=2, n_categories=2, n_days=160, seed=4)


def test_a_tampered_model_makes_forecast_refuse_and_publish_nothing(
    data, tmp_path, tiny_model_settings
):
    from fusioncast.config import ModelConfig

    frame = pd.read_parquet(data)
    config = ModelConfig(**tiny_model_settings)
    boundaries = split_by_time(frame, DEMO_CONTRACT)
    scaler = fit_scaler(frame, DEMO_CONTRACT, boundaries)
    encoder, tokenizers = fit_vocabularies(frame, DEMO_CONTRACT, boundaries, config)
    state = ForecastingState.create(DEMO_CONTRACT, scaler, encoder, tokenizers, config)
    workdir = tmp_path / "out"
    registry = ModelRegistry(workdir / "models")
    version = registry.register(
        build_model(state.spec), state, parameters={}, data_fingerprint="f" * 64
    )
    registry.promote(version, reason="test")
    model_file = workdir / "models" / version / "model.keras"
    model_file.write_bytes(model_file.read_bytes() + b"\0")  # one byte more than registered
    (workdir / "forecasts").mkdir(parents=True)
    before = _files(workdir / "forecasts")

    process = _fusioncast(
        "forecast", "--data", str(data), "--workdir", str(workdir), home=tmp_path / "home"
    )
    out, err = process.communicate(timeout=300)
    assert process.returncode == 2, (out, err)
    assert f"model version {version}: file model.keras does not match its manifest hash" in err
    assert "Traceback" not in err
    assert _files(workdir / "forecasts") == before  # nothing published


def test_two_retrains_at_the_same_time_leave_a_consistent_registry(
    data, tmp_path, tiny_model_settings
):
    workdir = tmp_path / "out"
    params = tmp_path / "params.json"
    # Neither small model has to beat the last value: the race is about the registry.
    params.write_text(
        json.dumps(
            {
                "model": tiny_model_settings,
                "training": TRAINING,
                "promotion": {"require_beating_last_value": False},
            }
        )
    )
    processes = [
        _fusioncast(
            "retrain",
            "--data",
            str(data),
            "--workdir",
            str(workdir),
            "--params",
            str(params),
            home=tmp_path / f"home-{i}",
        )
        for i in range(2)
    ]
    results = [p.communicate(timeout=600) for p in processes]
    for process, (_, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err[-3000:]

    registry = ModelRegistry(workdir / "models")
    versions = registry.versions()
    assert len(versions) == 2
    for version in versions:
        manifest = registry.verify(version)  # every file present and matching its hash
        assert set(manifest["files"]) >= {"model.keras", "metrics.parquet", "spec.json"}
    assert not [p for p in (workdir / "models").iterdir() if p.name.startswith(".staging")]
    pointer = read_json(workdir / "models" / "champion.json")
    assert pointer["model_version"] in versions
    assert all(entry["model_version"] in versions for entry in pointer["history"])
    # Each run made one decision in turn and said so; each published one file.
    printed = "".join(out for out, _ in results)
    assert printed.count("promotion gate: ") == 2
    forecasts = pd.read_parquet(workdir / "forecasts")
    assert forecasts.groupby(F.RUN_ID).size().tolist() == [4 * 7, 4 * 7]
    assert set(forecasts[F.MODEL_VERSION]) <= set(versions)
