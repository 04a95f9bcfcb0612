"""``training.distribution: multi_worker``: one retrain as a job of two real processes on
127.0.0.1 (JAX backend, joined through Keras's ``KERAS_DISTRIBUTION_*`` variables), each a
``fusioncast retrain`` with its own Prefect home, both on one workspace."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fusioncast.contract import ForecastColumn as F
from fusioncast.demo import write_demo_dataset
from fusioncast.distribution import PEER_TIMEOUT_S
from fusioncast.registry import ModelRegistry

pytest.importorskip("jax")
# every process reports to the session's Prefect server (PREFECT_API_URL), as a job's processes
# report to the deployment's
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

PROMOTION = {"require_beating_last_value": False, "best_baseline_margin": None}
#: the epochs of the killed job: enough that the kill lands before the last
EPOCHS = 12


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multi-worker")
    return write_demo_dataset(root / "demo.parquet", n_stores=1, n_categories=2, n_days=120)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _retrain(
    data: Path, tmp_path: Path, name: str, model: dict, training: dict, **env: str
) -> subprocess.Popen:
    """``fusioncast retrain`` on JAX with its own Prefect home, on the session's Prefect server,
    its output in files (``out-<name>``, ``err-<name>``)."""
    from prefect.settings import PREFECT_API_URL

    params = tmp_path / f"params-{name}.json"
    training = {**training, "batch_size": 32}
    params.write_text(json.dumps({"model": model, "training": training, "promotion": PROMOTION}))
    environment = dict(
        os.environ,
        PREFECT_HOME=str(tmp_path / f"home-{name}"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_API_URL=PREFECT_API_URL.value(),
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        TF_CPP_MIN_LOG_LEVEL="3",
        **env,
    )
    workdir = tmp_path / ("out" if name in ("0", "1") else f"workspace-{name}")
    args = ["--data", str(data), "--workdir", str(workdir), "--params", str(params)]
    return subprocess.Popen(
        [sys.executable, "-m", "fusioncast.flows.cli", "retrain", *args],
        env=environment,
        stdout=(tmp_path / f"out-{name}").open("w"),
        stderr=(tmp_path / f"err-{name}").open("w"),
        start_new_session=True,  # a kill takes the whole process group
    )


def _job(data: Path, tmp_path: Path, model: dict, training: dict) -> list[subprocess.Popen]:
    """The two processes of one job, on one workspace (``out``)."""
    coordinator = f"127.0.0.1:{_free_port()}"
    training = {**training, "distribution": "multi_worker"}
    return [
        _retrain(
            data,
            tmp_path,
            str(index),
            model,
            training,
            KERAS_DISTRIBUTION_JOB_ADDRESSES=coordinator,
            KERAS_DISTRIBUTION_NUM_PROCESSES="2",
            KERAS_DISTRIBUTION_PROCESS_ID=str(index),
        )
        for index in range(2)
    ]


def _epochs(log: str) -> list[dict[str, float]]:
    """The losses of each epoch a retrain logged (``epoch 2/2: loss=0.4494, val_loss=0.2301``)."""
    return [
        {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.e]+)", line)}
        for line in re.findall(r"epoch \d+/\d+: (.*)", log)
    ]


def test_a_job_of_two_processes_trains_one_model_and_registers_it_once(
    data, tmp_path, tiny_model_settings
):
    training = {"epochs": 2, "steps_per_epoch": 4}
    # one process training alone on the same data and seed, at the same time as the job
    alone = _retrain(data, tmp_path, "alone", tiny_model_settings, training)
    processes = _job(data, tmp_path, tiny_model_settings, training)
    codes = [p.wait(timeout=600) for p in processes]
    err = [(tmp_path / f"err-{i}").read_text() for i in range(2)]
    assert codes == [0, 0], [e[-3000:] for e in err]
    chief, worker = ((tmp_path / f"out-{i}").read_text() for i in range(2))
    assert "process 1 of 2: trained; process 0 registers" in worker
    assert "model version:" not in worker
    # Both processes ran every epoch, in step; and the job trained the model one process trains
    # (each process gathered its half of every batch). The logs round to 4 digits; the sums of
    # the two halves differ from one device's by float32 rounding only (about 1e-7).
    assert alone.wait(timeout=600) == 0, (tmp_path / "err-alone").read_text()[-3000:]
    one = _epochs((tmp_path / "err-alone").read_text())
    assert len(one) == 2 and _epochs(err[0]) == _epochs(err[1])
    for job_epoch, one_epoch in zip(_epochs(err[0]), one, strict=True):
        assert job_epoch == pytest.approx(one_epoch, rel=1e-3)
    registry = ModelRegistry(tmp_path / "out" / "models")
    [version] = registry.versions()
    assert f"model version: {version}" in chief
    assert set(registry.verify(version)["files"]) >= {"model.keras", "spec.json"}
    forecasts = pd.read_parquet(tmp_path / "out" / "forecasts")
    assert forecasts[F.RUN_ID].nunique() == 1 and set(forecasts[F.MODEL_VERSION]) == {version}


def test_a_killed_process_fails_the_job_and_the_job_started_again_resumes_as_one(
    data, tmp_path, tiny_model_settings
):
    """The kill: a clear message, no hang, nothing registered. Started again with the same
    settings, every process resumes from process 0's backup and the job registers one model."""
    settings = {"epochs": EPOCHS, "patience": EPOCHS, "steps_per_epoch": 4}
    chief, worker = _job(data, tmp_path, tiny_model_settings, settings)
    try:
        deadline = time.monotonic() + 300
        while f"epoch 2/{EPOCHS}" not in (tmp_path / "err-0").read_text():  # training, in step
            assert chief.poll() is None and worker.poll() is None, (tmp_path / "err-0").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        os.killpg(worker.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        code = chief.wait(timeout=PEER_TIMEOUT_S * 4)  # no hang: JAX's heartbeat timeout at most
        assert time.monotonic() - killed_at < PEER_TIMEOUT_S * 4
    finally:
        # the aborted chief and whatever it started, whatever the assertions said
        for process in (chief, worker):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    err = (tmp_path / "err-0").read_text()
    assert code != 0
    assert "another process of the job failed or cannot be reached" in err, err[-3000:]
    models = tmp_path / "out" / "models"
    assert not ModelRegistry(models).versions()
    assert not [p for p in models.rglob("*") if p.name.startswith(".staging")]
    assert not (tmp_path / "out" / "forecasts").exists() or not list(
        (tmp_path / "out" / "forecasts").rglob("*.parquet")
    )
    done = max(int(n) for n in re.findall(rf"epoch (\d+)/{EPOCHS}", err))
    assert done < EPOCHS, "the job ended before the kill: raise EPOCHS"

    again = _job(data, tmp_path, tiny_model_settings, settings)
    codes = [p.wait(timeout=600) for p in again]
    chief_err, worker_err = ((tmp_path / f"err-{i}").read_text() for i in range(2))
    assert codes == [0, 0], [chief_err[-3000:], worker_err[-3000:]]
    [resumed] = re.findall(
        r"training resumed from epoch (\d+) of a killed run \(backup ", chief_err
    )
    assert 1 <= int(resumed) <= done
    said = f"training resumed from epoch {resumed} of a killed run (process 0's backup)"
    assert said in worker_err, worker_err[-3000:]
    # both processes ran the remaining epochs, in step, with the same losses
    for log in (chief_err, worker_err):
        epochs = [int(n) for n in re.findall(rf"epoch (\d+)/{EPOCHS}", log)]
        assert epochs == list(range(int(resumed) + 1, EPOCHS + 1))
    assert _epochs(chief_err) == _epochs(worker_err)
    [version] = ModelRegistry(models).versions()
    training = json.loads((models / version / "training.json").read_text())
    assert training["start"].startswith(f"resumed from epoch {resumed} of a killed run (backup ")
    assert not [p for p in (tmp_path / "out" / "checkpoints").iterdir() if p.is_dir()]
