"""The backtest flow: folds planned without leakage, run concurrently, one metrics table."""

from __future__ import annotations

from uuid import UUID

import pandas as pd
import pytest

from fusioncast.backtest import plan_folds
from fusioncast.config import BacktestConfig, ModelConfig, TrainingConfig
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


@pytest.mark.slow
def test_backtest_runs_its_folds_concurrently_into_one_metrics_table(
    prefect_server, tmp_path, tiny_model_settings
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from fusioncast.flows.backtest import backtest

    data = write_demo_dataset(tmp_path / "data", n_stores=2, n_categories=2, n_days=160, seed=2)
    parameters = BacktestParameters(
        data_path=str(data),
        workspace=Workspace(root=str(tmp_path / "out")),
        model=tiny_model_settings,
        training=TrainingConfig(epochs=2, batch_size=64, steps_per_epoch=3),
        backtest=BacktestConfig(n_folds=2),
    )
    outcome = backtest(parameters)
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
