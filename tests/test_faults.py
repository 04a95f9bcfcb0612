"""Faults with real processes: a tampered model, and two retrains racing for the registry.

Each command runs as its own ``fusioncast`` process with its own Prefect home, so each starts its
own temporary Prefect server, as two scheduled or manual runs on one machine would.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusioncast.contract import ForecastColumn as F
from fusioncast.demo import DEMO_CONTRACT, write_demo_dataset
from fusioncast.forecast import Forecaster
from fusioncast.model import build_model
from fusioncast.registry import ModelRegistry
from fusioncast.split import split_by_time
from fusioncast.state import prepare
from fusioncast.storage import read_json

# the commands report to the session's Prefect server, as a deployment's runs report to theirs
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

TRAINING = {"epochs": 2, "batch_size": 64, "steps_per_epoch": 4}


def _fusioncast(*args: str, home: Path, **popen) -> subprocess.Popen:
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_API_URL=PREFECT_API_URL.value())
    return subprocess.Popen(
        [sys.executable, "-m", "fusioncast.flows.cli", *args],
        env=env,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen},
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


def _register_untrained(data: Path, workdir: Path, model_settings: dict, weights=None) -> str:
    """Register (and make champion) an untrained model of the data's state; ``weights`` maps its
    initial weights to the ones registered."""
    from fusioncast.config import ModelConfig

    frame = pd.read_parquet(data)
    config = ModelConfig(**model_settings)
    state, _ = prepare(frame, DEMO_CONTRACT, split_by_time(frame, DEMO_CONTRACT), config)
    model = build_model(state.spec)
    if weights is not None:
        model.set_weights(weights(model.get_weights()))
    registry = ModelRegistry(workdir / "models")
    version = registry.register(Forecaster(model, state), parameters={}, data_fingerprint="f" * 64)
    registry.promote(version, reason="test")
    return version


def _forecast_refused(data: Path, workdir: Path, home: Path) -> str:
    """Run ``fusioncast forecast``: it must exit 2 without a traceback and publish nothing."""
    (workdir / "forecasts").mkdir(parents=True, exist_ok=True)
    before = _files(workdir / "forecasts")
    process = _fusioncast("forecast", "--data", str(data), "--workdir", str(workdir), home=home)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 2, (out, err)
    assert "Traceback" not in err
    assert _files(workdir / "forecasts") == before  # nothing published
    return err


def test_a_tampered_model_makes_forecast_refuse_and_publish_nothing(
    data, tmp_path, tiny_model_settings
):
    workdir = tmp_path / "out"
    version = _register_untrained(data, workdir, tiny_model_settings)
    model_file = workdir / "models" / version / "model.keras"
    model_file.write_bytes(model_file.read_bytes() + b"\0")  # one byte more than registered
    err = _forecast_refused(data, workdir, tmp_path / "home")
    assert f"model version {version}: file model.keras does not match its manifest hash" in err


def test_a_model_that_forecasts_nan_publishes_nothing(data, tmp_path, tiny_model_settings):
    """A registered model whose training diverged (NaN weights): no NaN reaches the forecasts."""
    workdir = tmp_path / "out"
    _register_untrained(
        data,
        workdir,
        tiny_model_settings,
        lambda weights: [w * np.nan if w.dtype.kind == "f" else w for w in weights],
    )
    err = _forecast_refused(data, workdir, tmp_path / "home")
    line = next(line for line in err.splitlines() if line.startswith("fusioncast: error:"))
    assert "rule 'forecast_finite' failed on column 'forecast': 4 offending row(s)" in line


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
                "promotion": {"require_beating_last_value": False, "best_baseline_margin": None},
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


def test_a_killed_retrain_rerun_with_another_model_size_starts_fresh(
    data, tmp_path, tiny_model_settings
):
    """Resume is for the run that was killed: another model size does not load its backup."""
    workdir = tmp_path / "out"
    checkpoints = workdir / "checkpoints"

    def retrain(name: str, model: dict, training: dict, **popen) -> subprocess.Popen:
        params = tmp_path / f"{name}.json"
        promotion = {"require_beating_last_value": False, "best_baseline_margin": None}
        params.write_text(
            json.dumps({"model": model, "training": training, "promotion": promotion})
        )
        args = ["--data", str(data), "--workdir", str(workdir), "--params", str(params)]
        return _fusioncast("retrain", *args, home=tmp_path / f"home-{name}", **popen)

    # Its own session: the kill takes the command and whatever it started.
    killed = retrain(
        "killed",
        tiny_model_settings,
        {**TRAINING, "epochs": 1000, "patience": 1000},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("fit-*/training_metadata.json")):  # an epoch is backed up
        assert killed.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=60)
    [backup] = [p for p in checkpoints.iterdir() if p.is_dir()]

    wider = retrain("wider", {**tiny_model_settings, "hidden_units": 32}, TRAINING)
    out, err = wider.communicate(timeout=600)
    assert wider.returncode == 0, err[-3000:]
    said = f"training started fresh: the backup at {backup} was made with other settings"
    assert said in out + err
    assert not list(checkpoints.iterdir())  # the stale backup is gone, and its own
    [version] = ModelRegistry(workdir / "models").versions()
    training = read_json(workdir / "models" / version / "training.json")
    assert training["start"].startswith(said.removeprefix("training "))
    assert training["epochs_run"] == TRAINING["epochs"]
