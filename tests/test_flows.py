"""The flows end to end on a real (temporary) Prefect server, real Parquet and real GX suites."""

from __future__ import annotations

import hashlib
from pathlib import Path
from uuid import UUID

import pandas as pd
import pytest

from fusioncast.config import TrainingConfig
from fusioncast.contract import ForecastColumn as F
from fusioncast.demo import write_demo_dataset
from fusioncast.parameters import ForecastParameters, RetrainParameters, Workspace

pytestmark = pytest.mark.slow

DOCUMENTED_COLUMNS = [
    F.SERIES_ID,
    F.FORECAST_ORIGIN,
    F.TARGET_TIMESTAMP,
    F.HORIZON_STEP,
    F.FORECAST,
    "p10",
    "p50",
    "p90",
    F.EXPLANATION,
    F.MODEL_VERSION,
    F.RUN_ID,
    F.CREATED_AT,
]


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def retrained(prefect_server, tmp_path_factory):
    from fusioncast.flows.retrain import retrain

    root = tmp_path_factory.mktemp("pipeline")
    data = write_demo_dataset(root / "data", n_stores=2, n_categories=2, n_days=200, seed=1)
    parameters = RetrainParameters(
        data_path=str(data),
        workspace=Workspace(root=str(root / "out")),
        model={
            "lookback": 21,
            "horizon": 7,
            "numeric_units": 8,
            "text_units": 8,
            "hidden_units": 16,
            "max_text_tokens": 24,
            "min_token_count": 1,
        },
        training=TrainingConfig(epochs=2, batch_size=64, steps_per_epoch=5),
        # two short epochs need not come near the statistical peers to be published
        promotion={"best_baseline_margin": None},
    )
    outcome = retrain(parameters)
    return parameters, outcome


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def test_retrain_publishes_one_row_per_series_and_horizon_step(retrained):
    parameters, outcome = retrained
    forecasts = pd.read_parquet(outcome["forecasts_path"])
    assert list(forecasts.columns) == DOCUMENTED_COLUMNS
    assert len(forecasts) == 4 * 7
    assert not forecasts.duplicated([F.SERIES_ID, F.HORIZON_STEP]).any()
    assert (forecasts[F.MODEL_VERSION] == outcome["model_version"]).all()
    assert (forecasts[F.RUN_ID] == outcome["run_id"]).all()
    assert (forecasts["p10"] <= forecasts["p50"]).all() and (
        forecasts["p50"] <= forecasts["p90"]
    ).all()
    first = forecasts[forecasts[F.SERIES_ID] == "S01-dairy"].sort_values(F.HORIZON_STEP)
    assert first[F.TARGET_TIMESTAMP].diff().dropna().eq(pd.Timedelta(days=1)).all()
    assert (first[F.TARGET_TIMESTAMP].iloc[0] - first[F.FORECAST_ORIGIN].iloc[0]) == pd.Timedelta(
        days=1
    )


def test_retrain_run_is_recorded_in_prefect_with_its_artifacts(retrained):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    _, outcome = retrained
    with _client() as client:
        run = client.read_flow_run(UUID(outcome["run_id"]))
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    assert run.state.is_completed()
    keys = {a.key for a in artifacts}
    assert {"validation-summary", "test-metrics", "run-summary", "training-progress"} <= keys
    metrics = next(a for a in artifacts if a.key == "test-metrics")
    assert "last_value" in str(metrics.data) and "fusioncast" in str(metrics.data)


def test_forecast_reuses_the_saved_model_without_training(retrained):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from fusioncast.flows.forecast import forecast_flow

    parameters, first = retrained
    models = parameters.workspace.models
    before = _tree_digest(models)
    outcome = forecast_flow(
        ForecastParameters(data_path=parameters.data_path, workspace=parameters.workspace)
    )
    assert outcome["model_version"] == first["model_version"]
    assert outcome["forecasts_path"] != first["forecasts_path"]
    assert _tree_digest(models) == before  # nothing retrained or re-registered
    with _client() as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(outcome["run_id"])]))
        )
    names = {t.name.rsplit("-", 1)[0] for t in tasks}
    assert "train" not in names and {"load-model", "validate", "forecast", "publish"} <= names
    new = pd.read_parquet(outcome["forecasts_path"])
    old = pd.read_parquet(first["forecasts_path"])
    pd.testing.assert_series_equal(new[F.FORECAST], old[F.FORECAST])  # same model, same data
    everything = pd.read_parquet(parameters.workspace.forecasts)
    assert set(everything[F.RUN_ID]) == {first["run_id"], outcome["run_id"]}


def test_cli_reports_bad_data_in_one_line_and_touches_nothing(retrained, tmp_path, capsys):
    from fusioncast.flows.cli import main

    parameters, _ = retrained
    workspace = parameters.workspace
    frame = pd.read_parquet(parameters.data_path)
    frame.loc[frame.index[:3], "units_sold"] = float("nan")
    bad = tmp_path / "bad.parquet"
    frame.to_parquet(bad)
    before_models, before_forecasts = (
        _tree_digest(workspace.models),
        _tree_digest(workspace.forecasts),
    )
    status = main(["forecast", "--data", str(bad), "--workdir", workspace.root])
    err = capsys.readouterr().err
    assert status == 2
    assert "units_sold" in err and "Traceback" not in err
    assert _tree_digest(workspace.models) == before_models
    assert _tree_digest(workspace.forecasts) == before_forecasts


def test_first_model_is_promoted_with_its_report_and_the_reason(retrained):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from fusioncast.registry import ModelRegistry

    parameters, outcome = retrained
    assert outcome["promoted"] == "True", outcome["promotion"]
    assert outcome["promotion"].startswith("promoted: first model")
    assert ModelRegistry(parameters.workspace.models).champion() == outcome["model_version"]
    report = parameters.workspace.reports(outcome["run_id"])
    metrics = pd.read_parquet(report / "metrics.parquet")
    assert {"mse", "mae", "mase", "smape", "pinball", "coverage_80"} <= set(metrics.columns)
    assert {"fusioncast_text_removed", "fusioncast_text_shuffled", "ridge_normalised"} <= set(
        metrics["model"]
    )
    for plot in ("forecast_best.png", "forecast_worst.png", "error_by_horizon.png"):
        assert (report / plot).stat().st_size > 1000
    with _client() as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(outcome["run_id"])])
            )
        )
    by_key = {a.key: a for a in artifacts}
    assert "forecast_worst.png" in str(by_key["evaluation-report"].data)
    assert "promoted: first model" in str(by_key["run-summary"].data)


def test_retrain_on_demo_data_reports_its_knowable_limit(retrained):
    import json
    import math

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from fusioncast.references import LIMIT, NO_TEXT_LIMIT

    parameters, outcome = retrained
    report = parameters.workspace.reports(outcome["run_id"])
    metrics = pd.read_parquet(report / "metrics.parquet")
    references = metrics[metrics["reference"]]
    assert set(references["model"]) == {LIMIT, NO_TEXT_LIMIT}
    assert references["mse"].notna().all() and (references["n_windows"] > 0).all()
    limit = json.loads((report / "limit.json").read_text())
    assert math.isfinite(limit["text_gain_share"]) and limit["mse_over_limit"] > 1
    # the demo's limits forecast 14 steps from origins with 14 days after them: of this 7-step
    # model's test windows, the last 7 of every series are left out
    assert limit["n_windows"] == limit["test_windows"] - 4 * 7
    assert limit["mse"][LIMIT] < limit["mse"][NO_TEXT_LIMIT]
    with _client() as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(outcome["run_id"])])
            )
        )
    by_key = {a.key: str(a.data) for a in artifacts}
    share = f"share of the knowable text gain captured {limit['text_gain_share']:.3f}"
    assert share in by_key["run-summary"] and share in by_key["knowable-limit"]
    assert share in outcome["knowable_limit"]
    assert LIMIT in by_key["test-metrics"]


def test_a_worse_candidate_is_registered_but_not_promoted(retrained):
    from fusioncast.flows.retrain import retrain
    from fusioncast.registry import ModelRegistry

    parameters, first = retrained
    registry = ModelRegistry(parameters.workspace.models)
    champion = registry.champion()
    # One step at a tiny learning rate: the candidate stays the untrained model, which repeats
    # the last value, while the champion beat it.
    worse = parameters.model_copy(
        update={
            "training": TrainingConfig(
                epochs=1, batch_size=64, steps_per_epoch=1, learning_rate=1e-7
            )
        }
    )
    outcome = retrain(worse)
    assert outcome["promoted"] == "False"
    assert outcome["promotion"].startswith("not promoted: test MSE")
    assert "does not beat" in outcome["promotion"]
    assert outcome["model_version"] in registry.versions()  # registered, complete
    registry.verify(outcome["model_version"])
    assert registry.champion() == champion
    # The run still publishes fresh forecasts, made by the champion.
    published = pd.read_parquet(outcome["forecasts_path"])
    assert set(published[F.MODEL_VERSION]) == {champion}


def test_registry_commands_list_promote_and_roll_back(retrained, capsys):
    from fusioncast.flows.cli import main
    from fusioncast.registry import ModelRegistry

    parameters, first = retrained
    workdir = parameters.workspace.root
    registry = ModelRegistry(parameters.workspace.models)
    champion = registry.champion()
    other = next(v for v in registry.versions() if v != champion)

    assert main(["models", "list", "--workdir", workdir]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == len(registry.versions())
    assert any(line.startswith(f"* {champion}") and "test MSE" in line for line in listed)

    assert main(["models", "promote", other, "--workdir", workdir]) == 0
    assert registry.champion() == other
    assert main(["models", "rollback", "--workdir", workdir]) == 0
    assert registry.champion() == champion
    assert "rollback" in read_pointer(parameters)["reason"]
    assert main(["models", "promote", "no-such-version", "--workdir", workdir]) == 2
    assert "no-such-version" in capsys.readouterr().err
    assert registry.champion() == champion


def read_pointer(parameters):
    from fusioncast.storage import read_json

    return read_json(parameters.workspace.models / "champion.json")
