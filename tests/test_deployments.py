"""fusioncast on a real Prefect server: PostgreSQL, a process work pool and its worker, the
deployments of deployments/prefect.yaml, runs started through the API like the UI's Run button.

The stack (tests/prefect_stack.py) is started by scripts/prefect-local.sh on a fresh database made
for the session and dropped after it; these tests skip where no PostgreSQL is reachable.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from prefect_stack import (
    REPO,
    TIMEZONE,
    TINY_MODEL,
    TINY_TRAINING,
    release_if_unused,
    shared_stack,
)

pytestmark = pytest.mark.slow

RETRAIN, FORECAST = "retrain/retrain-weekly", "forecast/forecast-daily"
BACKTEST = "backtest/backtest"


@pytest.fixture(scope="module")
def stack(request):
    yield shared_stack(request)
    release_if_unused(request)


@pytest.fixture(scope="module")
def retrain_run(stack):
    run = stack.retrain_run()
    assert run.state.is_completed(), f"{run.state!r}\n{stack.log()[-4000:]}"
    return run


def _declared_deployments() -> dict[str, dict]:
    declared = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())
    return {d["name"]: d for d in declared["deployments"]}


def test_both_deployments_are_registered_with_their_cron_schedules(stack):
    declared = _declared_deployments()
    with stack.client() as client:
        pool = client.read_work_pool("fusioncast")
        deployments = {name: client.read_deployment_by_name(name) for name in (RETRAIN, FORECAST)}
    assert pool.type == "process"
    crons = {}
    for full_name, deployment in deployments.items():
        [schedule] = deployment.schedules
        crons[full_name] = schedule.schedule.cron
        assert schedule.active
        assert schedule.schedule.cron == declared[deployment.name]["schedules"][0]["cron"]
        assert schedule.schedule.timezone == TIMEZONE
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.enforce_parameter_schema
        assert deployment.work_pool_name == "fusioncast"
        # FUSIONCAST_PROJECT_DIR was set when deploying: runs start in this checkout.
        assert deployment.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
        ]
    assert crons == {RETRAIN: "0 3 * * 1", FORECAST: "0 5 * * *"}  # weekly, daily


def test_the_run_form_shows_parameters_with_descriptions_defaults_and_bounds(stack):
    with stack.client() as client:
        schema = client.read_deployment_by_name(RETRAIN).parameter_openapi_schema
    epochs = schema["definitions"]["TrainingConfig"]["properties"]["epochs"]
    assert epochs["minimum"] == 1 and epochs["maximum"] >= 1
    assert epochs["default"] >= 1 and epochs["description"]
    workspace = schema["definitions"]["Workspace"]["properties"]["root"]
    assert workspace["description"]


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [("training", "epochs", 0), ("training", "epochs", -1), ("model", "horizon", 0)],
)
def test_an_out_of_range_parameter_is_rejected_by_the_server_naming_it(
    stack, section, field, value
):
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import PrefectHTTPStatusError

    parameters = stack.retrain_parameters()
    parameters["parameters"][section][field] = value
    # The server's scheduler may add the deployment's scheduled runs at any time: count the others.
    not_scheduled = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=[StateType.SCHEDULED]))
    )
    with stack.client() as client:
        deployment = client.read_deployment_by_name(RETRAIN)
        only_this = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        before = client.count_flow_runs(flow_run_filter=not_scheduled, deployment_filter=only_this)
        with pytest.raises(PrefectHTTPStatusError) as raised:
            client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
        after = client.count_flow_runs(flow_run_filter=not_scheduled, deployment_filter=only_this)
    response = raised.value.response
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert f"parameters.{section}.{field}" in detail, detail
    assert after == before  # no run was created


def test_retrain_started_like_the_ui_run_button_publishes_forecasts_to_parquet(stack, retrain_run):
    files = list(stack.workdir.glob(f"forecasts/forecast_date=*/run-{retrain_run.id}.parquet"))
    assert len(files) == 1, sorted(p.name for p in stack.workdir.rglob("*.parquet"))
    forecasts = pd.read_parquet(files[0])
    assert len(forecasts) == 4 * TINY_MODEL["horizon"]  # 2 stores x 2 categories
    assert set(forecasts["run_id"]) == {str(retrain_run.id)}
    assert forecasts["model_version"].nunique() == 1
    assert forecasts["forecast"].notna().all()
    assert retrain_run.work_queue_name == "default" and retrain_run.deployment_id is not None


def test_a_person_can_follow_the_run_per_epoch_and_read_its_summary(stack, retrain_run):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with stack.client() as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[retrain_run.id])
            )
        )
    by_key = {a.key: a for a in artifacts}
    assert {"training-progress", "test-metrics", "run-summary", "validation-summary"} <= set(by_key)
    assert float(by_key["training-progress"].data) == 100.0
    summary = str(by_key["run-summary"].data)
    version = pd.read_parquet(stack.workdir / "forecasts")["model_version"].iloc[0]
    assert version in summary and "forecast_date=" in summary
    assert "| promoted | yes |" in summary and "| why | " in summary
    epoch_lines = [m for m in stack.flow_run_logs(retrain_run.id) if re.match(r"epoch \d+/\d+", m)]
    epochs = TINY_TRAINING["epochs"]
    assert [line.split(":")[0] for line in epoch_lines] == [
        f"epoch {i}/{epochs}" for i in range(1, epochs + 1)
    ]  # one line per epoch, none per batch


def test_the_forecast_deployment_runs_from_the_registry(stack, retrain_run):
    version = pd.read_parquet(stack.workdir / "forecasts")["model_version"].iloc[0]
    run = stack.run_deployment(
        FORECAST,
        {
            "parameters": {
                "data_path": str(stack.data_path),
                "workspace": {"root": str(stack.workdir)},
                "model_version": version,
            }
        },
    )
    assert run.state.is_completed(), f"{run.state!r}\n{stack.log()[-4000:]}"
    [path] = stack.workdir.glob(f"forecasts/forecast_date=*/run-{run.id}.parquet")
    forecasts = pd.read_parquet(path)
    assert set(forecasts["model_version"]) == {version}


def test_the_backtest_deployment_runs_its_folds_on_a_dask_cluster_of_the_run(stack):
    """Started by hand (no schedule); the run form's task_runner picks where the folds run."""
    with stack.client() as client:
        deployment = client.read_deployment_by_name(BACKTEST)
    assert deployment.schedules == [] and deployment.work_pool_name == "fusioncast"
    runner = deployment.parameter_openapi_schema["definitions"]["TaskRunnerConfig"]["properties"]
    assert set(runner["kind"]["enum"]) == {"process", "dask", "dask-local"}
    assert runner["address"]["description"]
    from fusioncast.parameters import BacktestParameters

    parameters = BacktestParameters(
        data_path=str(stack.data_path),
        workspace={"root": str(stack.workdir)},
        model=TINY_MODEL,
        training=TINY_TRAINING,
        backtest={"n_folds": 2},
        task_runner={"kind": "dask-local", "workers": 2},
    ).model_dump(mode="json")
    run = stack.run_deployment(BACKTEST, {"parameters": parameters})
    assert run.state.is_completed(), f"{run.state!r}\n{stack.log()[-4000:]}"
    [path] = stack.workdir.glob(f"reports/{run.id}/backtest_metrics.parquet")
    assert sorted(pd.read_parquet(path)["fold"].unique()) == [0, 1]


def test_a_failed_retrain_sends_the_failure_notification(stack):
    with stack.client() as client:
        [automation] = client.read_automations_by_name("fusioncast: retrain failed")
    assert automation.enabled and automation.actions[0].type == "send-notification"
    run = stack.failed_retrain_run()
    assert run.state.is_failed(), repr(run.state)
    deadline = time.monotonic() + 90
    while not stack.sink.received and time.monotonic() < deadline:
        time.sleep(1)
    assert stack.sink.received, "no notification arrived within 90 s of the failed run"
    [notification] = stack.sink.received
    assert "retrain" in notification["subject"] and "Failed" in notification["subject"]
    assert run.name in notification["body"] and str(run.id) in notification["body"]


def test_the_api_refuses_requests_without_the_servers_auth_string(stack):
    import base64

    import httpx

    def basic(credentials: str) -> dict[str, str]:
        return {"Authorization": f"Basic {base64.b64encode(credentials.encode()).decode()}"}

    url = f"{stack.api_url}/deployments/filter"
    with httpx.Client(timeout=30) as http:
        anonymous = http.post(url, json={})
        wrong = http.post(url, json={}, headers=basic("fusioncast-ops:not-the-password"))
        right = http.post(url, json={}, headers=basic(stack.auth_string))
        health = http.get(f"{stack.api_url}/health")  # open to probes, tells nothing
    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert right.status_code == 200
    assert {d["name"] for d in right.json()} >= {"retrain-weekly", "forecast-daily", "backtest"}
    assert health.status_code == 200


def _fusioncast_cli(stack, auth_string: str | None, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_API_URL=stack.api_url,
        PREFECT_HOME=str(stack.root / "cli-home"),
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    if auth_string is not None:
        env["PREFECT_API_AUTH_STRING"] = auth_string
    return subprocess.run(
        [str(Path(sys.executable).parent / "fusioncast"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_cli_runs_on_the_locked_server_with_its_auth_string_and_names_the_setting_without(
    stack, retrain_run
):
    args = ("forecast", "--data", str(stack.data_path), "--workdir", str(stack.workdir))
    before = sorted(stack.workdir.glob("forecasts/*/*.parquet"))
    for auth_string in (None, "fusioncast-ops:not-the-password"):
        refused = _fusioncast_cli(stack, auth_string, *args)
        assert refused.returncode == 2, refused.stderr[-3000:]
        last = refused.stderr.strip().splitlines()[-1]
        assert last.startswith(f"fusioncast: error: the Prefect server at {stack.api_url}")
        assert "PREFECT_API_AUTH_STRING" in refused.stderr and "HTTP 401" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert sorted(stack.workdir.glob("forecasts/*/*.parquet")) == before  # nothing ran

    ran = _fusioncast_cli(stack, stack.auth_string, *args)
    assert ran.returncode == 0, ran.stderr[-3000:]
    [path] = set(stack.workdir.glob("forecasts/*/*.parquet")) - set(before)
    run_id = path.stem.removeprefix("run-")
    with stack.client() as client:
        run = client.read_flow_run(run_id)
        assert run.state.is_completed()
        assert client.read_flow(run.flow_id).name == "forecast"


def _readable(path: Path) -> str:
    """A written file's content as text, through its compression (Parquet pages, zip members)."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path).to_json() + str(pq.read_schema(path).metadata)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return "".join(archive.read(name).decode("latin-1") for name in archive.namelist())
    return path.read_bytes().decode("latin-1")


def test_no_secret_reaches_a_log_an_artifact_or_a_written_file(stack, retrain_run):
    """The sentinel is the runs' bucket credentials (AWS_ACCESS_KEY_ID in the worker's environment,
    AWS_SECRET_ACCESS_KEY from a Secret block through the work pool) and the token in the failure
    webhook's URL; the auth string is the server's password. A successful and a failed retrain
    ran with them; the failure notification went out."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    failed = stack.failed_retrain_run()
    assert failed.state.is_failed(), repr(failed.state)
    deadline = time.monotonic() + 90
    while not stack.sink.received and time.monotonic() < deadline:
        time.sleep(1)
    # The secret webhook URL was used where it belongs: the notification reached it, token and all.
    assert [n["path"] for n in stack.sink.received] == [f"/hook?token={stack.sentinel}"]

    runs = (retrain_run, failed)
    seen: dict[str, str] = {}
    with stack.client() as client:
        pool = client.read_work_pool("fusioncast")
        env = pool.base_job_template["variables"]["properties"]["env"]["default"]
        # The pool holds a reference to the Secret block; the worker resolves it per run.
        assert env == {
            "AWS_SECRET_ACCESS_KEY": f"{{{{ prefect.blocks.secret.{stack.secret_block} }}}}"
        }
        for run in runs:
            run = client.read_flow_run(run.id)
            seen[f"run {run.name}: state, parameters, job variables"] = run.model_dump_json()
            for artifact in client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
            ):
                seen[f"run {run.name}: artifact {artifact.key}"] = artifact.model_dump_json()
        for name in ("retrain/retrain-weekly", "forecast/forecast-daily", "backtest/backtest"):
            seen[f"deployment {name}"] = client.read_deployment_by_name(name).model_dump_json()
        webhook = client.read_block_document_by_name(
            "fusioncast-alerts", "custom-webhook", include_secrets=False
        )
        seen["webhook block as the UI shows it"] = webhook.model_dump_json()
    for run in runs:
        seen[f"run {run.name}: logs"] = "\n".join(stack.flow_run_logs(run.id))
    seen["server, worker and flow output"] = stack.log()
    seen["notification bodies"] = json.dumps([n["body"] for n in stack.sink.received])
    files = [p for p in stack.workdir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".keras" for p in files) and any(p.suffix == ".html" for p in files)
    for path in files:
        seen[str(path.relative_to(stack.workdir))] = _readable(path)

    assert any("Completed" in text for text in seen.values())  # what was read is the real thing
    for secret in (stack.sentinel, stack.auth_string, stack.auth_string.split(":", 1)[1]):
        leaks = [where for where, text in seen.items() if secret in text]
        assert not leaks, f"a secret was written to: {leaks}"


def test_the_serve_alternative_declares_the_same_deployments(monkeypatch):
    import runpy

    monkeypatch.setenv("FUSIONCAST_TIMEZONE", TIMEZONE)
    monkeypatch.syspath_prepend(str(REPO))
    serve = runpy.run_path(str(REPO / "deployments" / "serve.py"))
    declared = _declared_deployments()
    served = serve["deployments"]()
    assert {d.name for d in served} == set(declared)
    for deployment in served:
        crons = [s["cron"] for s in declared[deployment.name].get("schedules", [])]
        assert [s.schedule.cron for s in deployment.schedules] == crons
        assert all(s.schedule.timezone == TIMEZONE for s in deployment.schedules)
        assert deployment.concurrency_limit == 1
        assert deployment.enforce_parameter_schema


def test_a_credentials_list_giving_a_value_instead_of_a_block_is_refused_without_showing_it(
    monkeypatch,
):
    monkeypatch.syspath_prepend(str(REPO / "deployments"))
    import pool

    assert pool.parse("AWS_ACCESS_KEY_ID=aws-key-id, AWS_SECRET_ACCESS_KEY=aws-secret") == {
        "AWS_ACCESS_KEY_ID": "aws-key-id",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
    }
    with pytest.raises(ValueError) as refused:
        pool.parse("AWS_ACCESS_KEY_ID=aws-key-id AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG")
    assert "'AWS_SECRET_ACCESS_KEY' is not followed by =secret-block-name" in str(refused.value)
    assert "wJalrXUtnFEMI" not in str(refused.value)
