"""``forecast`` in shards of series on a task runner's workers: the same forecasts as in one piece,
gathered into one file with one creation time; the quarantine policy applies to the run as a
whole, not shard by shard."""

from __future__ import annotations

import pickle
import re
from uuid import UUID

import pandas as pd
import pytest
from dask_cluster import dask_cluster_in
from tiny_pipeline import TINY_MODEL_SETTINGS

from fusioncast.contract import ForecastColumn as F
from fusioncast.demo import DEMO_CONTRACT as C
from fusioncast.demo import write_demo_dataset
from fusioncast.errors import DataValidationError, WorkspaceError
from fusioncast.frames import shards
from fusioncast.parameters import ForecastParameters, RetrainParameters

pytestmark = pytest.mark.slow

NUMBERS = [F.SERIES_ID, F.TARGET_TIMESTAMP, F.FORECAST, "p10", "p50", "p90", F.EXPLANATION]


@pytest.fixture(scope="module")
def trained(prefect_server, tmp_path_factory):
    """A tiny model trained on 2 stores x 3 categories (6 series), and its data."""
    from fusioncast.flows.retrain import retrain

    root = tmp_path_factory.mktemp("shards")
    data = write_demo_dataset(root / "data", n_stores=2, n_categories=3, n_days=200, seed=4)
    retrain(
        RetrainParameters(
            data_path=str(data),
            workspace={"root": str(root / "out")},
            model=TINY_MODEL_SETTINGS,
            training={"epochs": 1, "batch_size": 64, "steps_per_epoch": 3},
            promotion={"best_baseline_margin": None, "require_beating_last_value": False},
        )
    )
    return root, data


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real Dask scheduler and two worker processes for the module's sharded forecasts."""
    with dask_cluster_in(tmp_path_factory.mktemp("dask")) as cluster:
        yield cluster


def _shards_by_worker(cluster) -> list[list[str]]:
    finished = re.compile(r"Task run '(forecast-shard-\d)' - Finished in state Completed")
    return sorted(sorted(finished.findall(log.read_text())) for log in cluster.logs)


def _forecast(root, data, **changes) -> tuple[dict, pd.DataFrame]:
    from fusioncast.flows.forecast import forecast_flow

    parameters = ForecastParameters(
        data_path=str(data), workspace={"root": str(root / "out")}, **changes
    )
    outcome = forecast_flow(parameters)
    return outcome, pd.read_parquet(outcome["forecasts_path"])


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[NUMBERS].reset_index(drop=True)


def test_shards_are_consecutive_groups_of_whole_series(demo_frame):
    parts = shards(demo_frame, C, 3)
    assert len(parts) == 3 and sum(len(p) for p in parts) == len(demo_frame)
    ids = [list(p[C.series_id].unique()) for p in parts]
    assert [len(i) for i in ids] == [1, 1, 2]  # 4 series: as even as whole series allow
    assert sum(ids, []) == list(demo_frame[C.series_id].unique())  # in order, none split
    assert len(shards(demo_frame, C, 10)) == 4  # never an empty shard


def test_a_forecast_in_shards_on_dask_workers_equals_the_forecast_in_one_piece(trained, cluster):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    root, data = trained
    _, whole = _forecast(root, data)
    outcome, sharded = _forecast(
        root, data, shards=3, task_runner={"kind": "dask", "address": cluster.address}
    )
    pd.testing.assert_frame_equal(_numbers(sharded), _numbers(whole))
    assert sharded[F.CREATED_AT].nunique() == 1  # one run, one creation time
    assert set(sharded[F.RUN_ID]) == {outcome["run_id"]}
    assert len(list((root / "out" / "forecasts").rglob(f"run-{outcome['run_id']}.parquet"))) == 1
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(outcome["run_id"])]))
        )
    assert sorted(r.name for r in runs if r.name.startswith("forecast-shard-")) == [
        "forecast-shard-0",
        "forecast-shard-1",
        "forecast-shard-2",
    ]
    assert all(_shards_by_worker(cluster))  # both workers took shards


def _damaged(data, path, series: list[str]):
    """The data with the last weeks of ``series`` in other units (far outside their scale)."""
    frame = pd.read_parquet(data)
    recent = frame[C.timestamp] >= frame[C.timestamp].max() - pd.Timedelta(days=30)
    hit = frame[C.series_id].astype(str).isin(series) & recent
    frame[C.target] = frame[C.target].where(~hit, frame[C.target] * 1e30)
    frame.to_parquet(path / "damaged.parquet", index=False)
    return path / "damaged.parquet"


def test_quarantine_holds_for_the_run_when_one_shard_loses_every_series(trained, cluster, tmp_path):
    """Shard 1 of 2 holds only broken series: under quarantine the run publishes shard 0, as the
    forecast in one piece does."""
    root, data = trained
    ids = sorted(pd.read_parquet(data)[C.series_id].astype(str).unique())
    damaged = _damaged(data, tmp_path, ids[3:])  # the 3 series of the second shard
    quarantine = {"policy": "quarantine"}
    _, whole = _forecast(root, damaged, validation=quarantine)
    assert sorted(whole[F.SERIES_ID].unique()) == ids[:3]
    _, sharded = _forecast(
        root,
        damaged,
        validation=quarantine,
        shards=2,
        task_runner={"kind": "dask", "address": cluster.address},
    )
    pd.testing.assert_frame_equal(_numbers(sharded), _numbers(whole))


def test_errors_cross_from_a_worker_to_the_run_whole():
    """A shard's or a fold's error reaches the run's process with its rule, column and count."""
    error = DataValidationError("within_scale", "units_sold", 7, "detail", example="x")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.rule, copy.column, copy.count, str(copy)) == (
        "within_scale",
        "units_sold",
        7,
        str(error),
    )
    workspace = WorkspaceError("read", "s3://bucket/x", "access denied")
    assert str(pickle.loads(pickle.dumps(workspace))) == str(workspace)
