"""The workspace on object storage: ``workspace.root=s3://bucket/prefix`` against a real
S3-protocol server on 127.0.0.1 (moto's standalone server, tests/s3_server.py), with the backtest's
folds and the forecast's shards on a real Dask cluster (tests/dask_cluster.py).

The same retrain runs twice with the same seed, once on a local workspace and once on the bucket;
what it publishes must be the same numbers, read back through ``s3://`` by pandas, pyarrow and
DuckDB. Bad endpoints, buckets, credentials and URLs end in one line, exit 2, nothing written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from dask_cluster import dask_cluster_in, folds_run_by_each
from s3_server import BUCKET, S3Server, environment, free_port
from tiny_pipeline import TINY_MODEL_SETTINGS

from fusioncast.contract import ForecastColumn as F
from fusioncast.demo import write_demo_dataset
from fusioncast.parameters import (
    BacktestParameters,
    ForecastParameters,
    RetrainParameters,
    Workspace,
)

pytestmark = pytest.mark.slow

TINY = TINY_MODEL_SETTINGS
NUMBERS = [F.FORECAST, "p10", "p50", "p90"]
ROOT = f"s3://{BUCKET}/team/fusioncast"


@pytest.fixture(scope="module")
def s3():
    server = S3Server()
    try:
        with environment(server.env()):
            server.create_bucket()
            yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def runs(s3, prefect_server, tmp_path_factory):
    """retrain on a local workspace and on the bucket (same data, same seed), then forecast on
    the bucket."""
    from fusioncast.flows.backtest import backtest
    from fusioncast.flows.forecast import forecast_flow
    from fusioncast.flows.retrain import retrain

    root = tmp_path_factory.mktemp("object-storage")
    data = write_demo_dataset(root / "data", n_stores=2, n_categories=2, n_days=200, seed=1)

    def parameters(workspace: str) -> RetrainParameters:
        return RetrainParameters(
            data_path=str(data),
            workspace=Workspace(root=workspace),
            model=TINY,
            training={"epochs": 2, "batch_size": 64, "steps_per_epoch": 5},
            promotion={"best_baseline_margin": None},
        )

    local = retrain(parameters(str(root / "local")))
    remote = retrain(parameters(ROOT))
    with dask_cluster_in(root) as cluster:
        folds = BacktestParameters(
            **parameters(ROOT).model_dump(exclude={"promotion", "publish_forecasts"}),
            backtest={"n_folds": 2},
            task_runner={"kind": "dask", "address": cluster.address},
        )
        backtested = backtest(folds)
        ran_folds = folds_run_by_each(cluster)
        forecast = forecast_flow(
            ForecastParameters(
                data_path=str(data),
                workspace={"root": ROOT},
                shards=2,  # each Dask worker loads the model from the bucket
                task_runner={"kind": "dask", "address": cluster.address},
            )
        )
    return {
        "data": data,
        "local": local,
        "remote": remote,
        "backtest": backtested,
        "folds by worker": ran_folds,
        "forecast": forecast,
    }


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    keys = [F.SERIES_ID, F.TARGET_TIMESTAMP]
    return frame.sort_values(keys).reset_index(drop=True)[[*keys, *NUMBERS, F.EXPLANATION]]


def test_a_retrain_on_a_bucket_publishes_what_a_local_one_does(runs):
    local = pd.read_parquet(runs["local"]["forecasts_path"])
    assert runs["remote"]["forecasts_path"].startswith(f"{ROOT}/forecasts/forecast_date=")
    remote = pd.read_parquet(runs["remote"]["forecasts_path"])
    # Same data and seed, the same training: the very same numbers (not merely close ones).
    pd.testing.assert_frame_equal(_numbers(remote), _numbers(local))
    assert runs["remote"]["promoted"] == "True"
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[runs["remote"]["run_id"]]))
        )
    # Epoch backups stay on local scratch; the run says what that means for a resume elsewhere.
    assert any("trains from its first epoch" in log.message for log in logs)


def test_a_backtest_on_the_bucket_runs_one_fold_on_each_dask_worker(runs):
    assert sorted(runs["folds by worker"]) == [["backtest-fold-0"], ["backtest-fold-1"]]
    path = runs["backtest"]["metrics_path"]
    assert path == f"{ROOT}/reports/{runs['backtest']['run_id']}/backtest_metrics.parquet"
    assert sorted(pd.read_parquet(path)["fold"].unique()) == [0, 1]


def test_forecasts_on_the_bucket_read_back_with_pandas_pyarrow_and_duckdb(runs):
    import duckdb
    import pyarrow.dataset as ds
    import s3fs

    expected = _numbers(pd.read_parquet(runs["local"]["forecasts_path"]))
    forecasts = f"{ROOT}/forecasts"
    with_pandas = pd.read_parquet(forecasts)
    with_pyarrow = ds.dataset(forecasts, format="parquet", partitioning="hive").to_table()
    connection = duckdb.connect()
    connection.register_filesystem(s3fs.S3FileSystem())
    with_duckdb = connection.sql(
        f"SELECT * FROM read_parquet('{forecasts}/*/*.parquet', hive_partitioning = true)"
    ).df()
    for frame in (with_pandas, with_pyarrow.to_pandas(), with_duckdb):
        assert set(frame[F.RUN_ID]) == {runs["remote"]["run_id"], runs["forecast"]["run_id"]}
        for run_id in (runs["remote"]["run_id"], runs["forecast"]["run_id"]):
            one_run = frame[frame[F.RUN_ID] == run_id].astype({F.SERIES_ID: str})
            pd.testing.assert_frame_equal(
                _numbers(one_run), expected, check_dtype=False, check_categorical=False
            )


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    environment.update(TF_CPP_MIN_LOG_LEVEL="3", **env)
    return subprocess.run(
        [str(Path(sys.executable).parent / "fusioncast"), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _error_line(result: subprocess.CompletedProcess) -> str:
    """The CLI's one line about the error (Prefect's own log lines aside)."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("fusioncast: ")]
    return lines[-1] if lines else ""


def test_models_list_on_the_bucket_shows_the_verified_version(runs):
    listed = _cli("models", "list", "--workdir", ROOT)
    assert listed.returncode == 0, listed.stderr[-3000:]
    [line] = [row for row in listed.stdout.splitlines() if runs["remote"]["model_version"] in row]
    assert line.startswith("* ") and line.endswith("  ok")


def test_a_version_without_its_manifest_is_not_used_and_is_listed(runs):
    from fusioncast import storage
    from fusioncast.registry import MANIFEST_FILE, ModelRegistry

    registry = ModelRegistry(f"{ROOT}/models")
    version = runs["remote"]["model_version"]
    unfinished = "20990101T000000Z-upload"
    for source in (registry.root / version).iterdir():
        if source.name != MANIFEST_FILE:  # an upload that stopped before its manifest
            storage.copy_file(source, registry.root / unfinished / source.name)
    assert unfinished not in registry.versions()
    assert registry.check_champion() == version
    status = registry.describe().set_index("model_version")["status"]
    assert status[unfinished].startswith("damaged: manifest.json missing")
    assert status[version] == "ok"


def _objects(s3: object) -> list[str]:
    import s3fs

    return sorted(s3fs.S3FileSystem(skip_instance_cache=True).find(BUCKET))


def test_bad_object_store_settings_end_in_one_line_and_write_nothing(s3, runs):
    data = str(runs["data"])
    before = _objects(s3)
    denied = S3Server(deny_everyone=True)
    try:
        cases = {
            "unreachable endpoint": (
                ("retrain", "--data", data, "--workdir", ROOT),
                {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"},
                "cannot read s3://",
            ),
            "missing bucket": (
                ("retrain", "--data", data, "--workdir", "s3://no-such-bucket/fusioncast"),
                {},
                "the bucket does not exist",
            ),
            "denied credentials": (
                ("forecast", "--data", data, "--workdir", ROOT),
                {"AWS_ENDPOINT_URL": denied.endpoint},
                "access denied",
            ),
            "unknown scheme for the data": (
                ("forecast", "--data", "nosuchscheme://bucket/sales", "--workdir", ROOT),
                {},
                "nosuchscheme://bucket/sales",
            ),
            "unknown scheme for the workspace": (
                ("forecast", "--data", data, "--workdir", "nosuchscheme://bucket/x"),
                {},
                "nosuchscheme",
            ),
        }
        for case, (args, env, expected) in cases.items():
            result = _cli(*args, **env)
            line = _error_line(result)
            assert result.returncode == 2, f"{case}: {result.stderr[-3000:]}"
            assert line.startswith("fusioncast: "), f"{case}: {result.stderr[-3000:]}"
            assert expected in line, f"{case}: {line}"
            assert "Traceback" not in result.stderr, f"{case}: {result.stderr[-3000:]}"
            # refused before Prefect starts: the user waits for one request, not a server
            assert "temporary server" not in result.stderr, f"{case}: {result.stderr[-3000:]}"
    finally:
        denied.stop()
    assert _objects(s3) == before


_SLOW_UPLOAD = """
import asyncio, os
import s3fs.core

_call_s3 = s3fs.core.S3FileSystem._call_s3


async def _held(self, method, *args, **kwargs):
    # The forecast's upload starts and never ends: the test kills the process meanwhile.
    if method in ("put_object", "upload_part", "create_multipart_upload") and "/forecasts/" in (
        "/" + str(kwargs.get("Key", ""))
    ):
        open(os.environ["FUSIONCAST_TEST_UPLOADING"], "w").close()
        await asyncio.sleep(3600)
    return await _call_s3(self, method, *args, **kwargs)


s3fs.core.S3FileSystem._call_s3 = _held
"""


def test_a_forecast_killed_during_its_upload_leaves_no_part_of_it(runs, tmp_path):
    import signal
    import time

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_SLOW_UPLOAD)
    uploading = tmp_path / "uploading"
    forecasts = f"{ROOT}/forecasts"
    before = pd.read_parquet(forecasts)
    objects = _objects(None)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    environment.update(
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
        FUSIONCAST_TEST_UPLOADING=str(uploading),
    )
    child = subprocess.Popen(
        [str(Path(sys.executable).parent / "fusioncast"), "forecast"]
        + ["--data", str(runs["data"]), "--workdir", ROOT],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not uploading.exists():
            assert child.poll() is None, "the forecast ended before its upload"
            assert time.monotonic() < deadline, "the forecast's upload did not start in 240 s"
            time.sleep(0.2)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    after = _objects(None)
    assert [k for k in after if "/forecasts/" in k] == [k for k in objects if "/forecasts/" in k]
    pd.testing.assert_frame_equal(pd.read_parquet(forecasts), before)


def test_two_retrains_on_one_bucket_at_once_register_two_versions_and_one_champion(runs, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    from fusioncast.registry import ModelRegistry

    registry = ModelRegistry(f"{ROOT}/models")
    versions = set(registry.versions())
    api = PREFECT_API_URL.value()  # the session's server: the runs share its concurrency limit
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    environment.update(TF_CPP_MIN_LOG_LEVEL="3", PREFECT_API_URL=api)
    settings = tmp_path / "tiny.json"
    settings.write_text(
        json.dumps(
            {"model": TINY, "training": {"epochs": 2, "batch_size": 64, "steps_per_epoch": 5}}
        )
    )
    args = ["retrain", "--data", str(runs["data"]), "--workdir", ROOT, "--params", str(settings)]
    children = [
        subprocess.Popen(
            [str(Path(sys.executable).parent / "fusioncast"), *args],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [child.communicate(timeout=600) for child in children]
    for child, (_, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err[-3000:]
    new = set(registry.versions()) - versions
    assert len(new) == 2
    for version in new:
        registry.verify(version)  # every file matches its manifest
    champion = registry.check_champion()
    history = [h["model_version"] for h in registry.champion_history()]
    assert champion in versions | new and champion not in history[-1:]
    with get_client(sync_client=True) as client:
        limits = [
            limit
            for limit in client.read_global_concurrency_limits(limit=100)
            if limit.name.startswith("fusioncast-registry-")
        ]
    # The promotion decisions went one at a time through this limit, and none holds it now.
    assert [(limit.limit, limit.active_slots) for limit in limits] == [(1, 0)]
