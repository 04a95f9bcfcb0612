"""The backtest flow: folds planned without leakage, run concurrently, one metrics table."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from uuid import UUID

import pandas as pd
import pytest
from dask_cluster import DaskCluster, dask_cluster_in, folds_run_by_each, scheduler_state

from fusioncast.backtest import plan_folds
from fusioncast.config import BacktestConfig, ModelConfig, TaskRunnerConfig, TrainingConfig
from fusioncast.demo import DEMO_CONTRACT, write_demo_dataset
from fusioncast.errors import ConfigError
from fusioncast.parameters import BacktestParameters, Workspace


def test_folds_step_back_from_the_end_and_fit_only_on_earlier_steps(demo_frame):
    model = ModelConfig(lookback=21, horizon=5)
    folds = plan_folds(demo_frame, DEMO_CONTRACT, model, BacktestConfig(n_folds=3, step=7))
    times = pd.DatetimeIndex(sorted(demo_frame[DEMO_CONTRACT.timestamp].unique()))
    assert [f.index for f in folds] == [0, 1, 2]
    assert folds[0].test_end == times[-1]
    assert folds[0].origin == times[-1 - 5]
    assert [f.origin for f in folds] == [times[-6], times[-13], times[-20]]
    for fold in folds:
        assert fold.train_end < fold.validation_end == fold.origin < fold.test_end
        assert len(times[(times > fold.train_end) & (times <= fold.origin)]) >= 5
    with pytest.raises(ConfigError, match="fewer backtest.n_folds"):
        plan_folds(demo_frame, DEMO_CONTRACT, model, BacktestConfig(n_folds=100, step=7))


def _parameters(root: Path, tiny_model_settings: dict, **task_runner: object) -> BacktestParameters:
    return BacktestParameters(
        data_path=str(root / "data"),
        workspace=Workspace(root=str(root / "out")),
        model=tiny_model_settings,
        training=TrainingConfig(epochs=2, batch_size=64, steps_per_epoch=3),
        backtest=BacktestConfig(n_folds=2),
        task_runner=TaskRunnerConfig(**task_runner),
    )


@pytest.fixture(scope="module")
def backtest_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("backtest")
    write_demo_dataset(root / "data", n_stores=2, n_categories=2, n_days=160, seed=2)
    return root


@pytest.fixture(scope="module")
def on_processes(prefect_server, backtest_data, tiny_model_settings):
    """The backtest on the default task runner (worker processes)."""
    from fusioncast.flows.backtest import backtest

    return backtest(_parameters(backtest_data, tiny_model_settings))


@pytest.mark.slow
def test_backtest_runs_its_folds_concurrently_into_one_metrics_table(on_processes):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    outcome = on_processes
    metrics = pd.read_parquet(outcome["metrics_path"])
    assert sorted(metrics["fold"].unique()) == [0, 1]
    assert metrics["origin"].nunique() == 2
    # Each fold: one test window per series (4), every candidate, every horizon step.
    fold0 = metrics[(metrics["fold"] == 0) & (metrics["model"] == "fusioncast")]
    assert len(fold0) == 4 * 7 and (fold0["n_windows"] == 1).all()
    assert {"last_value", "fusioncast_text_shuffled", "ridge_normalised"} <= set(metrics["model"])
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(outcome["run_id"])]))
        )
    folds = [r for r in runs if r.name.startswith("backtest-fold-")]
    assert len(folds) == 2 and all(r.state.is_completed() for r in folds)
    # Concurrent: each fold started before the other one ended.
    assert max(r.start_time for r in folds) < min(r.end_time for r in folds)


@pytest.mark.slow
def test_a_dask_worker_killed_during_a_fold_leaves_its_fold_to_the_other(
    on_processes, backtest_data, tiny_model_settings, tmp_path
):
    """The flow on a Dask cluster, and SIGKILL to a worker (its nanny and its process) while it
    trains a fold: Dask runs the fold again on the other worker, and the run's table is the
    process pool's to the last bit (each fold seeds its own training; nothing in it depends on
    where it runs). One fold on each worker: tests/test_object_storage.py."""
    from distributed import Client

    from fusioncast.flows.backtest import backtest

    killed: list[str] = []
    finished = threading.Event()

    def kill_worker_1_once_it_trains(cluster: DaskCluster) -> None:
        with Client(cluster.address, timeout=60) as client:
            names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                busy = [names.get(a) for a, keys in client.processing().items() if keys]
                if "worker-1" in busy:
                    time.sleep(3)  # well inside its fold
                    os.killpg(cluster.workers[0].pid, signal.SIGKILL)
                    killed.append("worker-1")
                    break
                time.sleep(0.2)
        # The run takes about a minute after the kill. Should it hang (seen once), its failure
        # (the test's timeout) shows what the scheduler held by then.
        if not finished.wait(300):
            print(f"no end 300 s after the kill:\n{scheduler_state(cluster)}", file=sys.stderr)

    with dask_cluster_in(tmp_path) as cluster:
        killer = threading.Thread(target=kill_worker_1_once_it_trains, args=(cluster,))
        killer.start()
        parameters = _parameters(
            backtest_data, tiny_model_settings, kind="dask", address=cluster.address
        )
        parameters.workspace.root = str(tmp_path / "out")
        try:
            outcome = backtest(parameters)
        finally:
            finished.set()
            killer.join()
        assert killed == ["worker-1"]
        assert cluster.workers[0].wait(timeout=30) == -signal.SIGKILL
        assert folds_run_by_each(cluster)[1] == ["backtest-fold-0", "backtest-fold-1"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(outcome["metrics_path"]), pd.read_parquet(on_processes["metrics_path"])
    )


def _cli(tmp_path: Path, parameters: BacktestParameters, **env: str):
    """``fusioncast backtest --params`` in a process of its own, on Prefect's temporary server."""
    params = tmp_path / "params.json"
    params.write_text(parameters.model_dump_json())
    environment = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), **env)
    environment.pop("PREFECT_API_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "fusioncast.flows.cli", "backtest", "--params", str(params)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=600,
    )


@pytest.mark.slow
def test_the_command_line_starts_a_local_dask_cluster_for_the_folds(
    on_processes, backtest_data, tiny_model_settings, tmp_path
):
    """``--task-runner dask-local`` from the command line: the workers report to the command's
    temporary server, and the table is the process pool's."""
    parameters = _parameters(backtest_data, tiny_model_settings, kind="dask-local", workers=2)
    done = _cli(tmp_path, parameters)
    assert done.returncode == 0, done.stderr[-3000:]
    # the command's own start of the server is quiet; a worker starting one would say so
    assert "Starting temporary server" not in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    written = done.stdout.strip().splitlines()[-1].removeprefix("backtest metrics written to ")
    pd.testing.assert_frame_equal(
        pd.read_parquet(written), pd.read_parquet(on_processes["metrics_path"])
    )


@pytest.mark.slow
def test_an_unreachable_dask_scheduler_fails_the_run_with_its_address(
    backtest_data, tiny_model_settings, tmp_path
):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{closed.getsockname()[1]}"
    parameters = _parameters(backtest_data, tiny_model_settings, kind="dask", address=address)
    parameters.workspace.root = str(tmp_path / "out")
    done = _cli(tmp_path, parameters, DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="2s")
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("fusioncast: error")]
    assert len(errors) == 1 and errors[0].startswith(
        f"fusioncast: error: task_runner dask: cannot reach the Dask scheduler at {address}"
    ), errors
    assert not (tmp_path / "out").exists()  # stopped before the data was read
    assert "temporary server" not in done.stderr  # and before Prefect started


def test_a_flow_started_without_the_command_line_names_the_unreachable_scheduler():
    """A deployment's run checks the scheduler itself, when it starts its task runner."""
    import re

    import dask

    from fusioncast.flows.runners import started

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{closed.getsockname()[1]}"
    runner = TaskRunnerConfig(kind="dask", address=address)
    expected = re.escape(f"task_runner dask: cannot reach the Dask scheduler at {address}")
    short = dask.config.set({"distributed.comm.timeouts.connect": "2s"})
    with short, pytest.raises(ConfigError, match=expected), started(runner):
        pytest.fail("the runner started")
