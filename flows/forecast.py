"""The forecast flow: load the champion -> validate new data -> predict (in shards of series on
the task runner's workers, when asked) -> publish."""

from __future__ import annotations

import pandas as pd
from prefect import flow
from prefect.runtime import flow_run

from fusioncast.flows.runners import fan_out, started
from fusioncast.forecast import Forecaster
from fusioncast.frames import shards
from fusioncast.parameters import ForecastParameters
from fusioncast.tasks.forecast import forecast, forecast_shard, gather, publish
from fusioncast.tasks.registry import load_model
from fusioncast.tasks.report import summarise_run
from fusioncast.tasks.validate import validate_data
from fusioncast.validation import ValidationReport


@flow(name="forecast")
def forecast_flow(parameters: ForecastParameters | None = None) -> dict[str, str]:
    """Forecast every series from its latest data with a registered model, without retraining."""
    parameters = parameters or ForecastParameters()
    run_id = str(flow_run.id or "local")
    workspace = parameters.workspace

    forecaster = load_model(workspace.models, parameters.model_version, workspace.embeddings)
    frame, report = validate_data(
        parameters.data_path,
        forecaster.contract,
        forecaster.config.lookback,
        workspace.reports(run_id),
        parameters.validation,
    )
    policy = parameters.validation.policy
    if parameters.shards == 1:
        forecasts = forecast(
            forecaster, frame, report.freq, run_id, timezone=report.timezone, policy=policy
        )
    else:
        forecasts = _in_shards(forecaster, frame, report, run_id, parameters)
    path = publish(forecasts, workspace.forecasts, run_id)
    summarise_run(
        "forecast",
        {
            "data": f"{parameters.data_path} ({report.n_rows} rows)",
            "quarantined rows": f"{report.n_quarantined} ({report.quarantine_path or 'none'})",
            "excluded short series": len(report.excluded_series),
            "validation report (GX Data Docs)": report.data_docs_path or "not built",
            "model version": forecaster.version,
            "forecasts": path,
        },
    )
    return {"run_id": run_id, "model_version": forecaster.version, "forecasts_path": str(path)}


def _in_shards(
    forecaster: Forecaster,
    frame: pd.DataFrame,
    report: ValidationReport,
    run_id: str,
    parameters: ForecastParameters,
) -> pd.DataFrame:
    """Predict the series in ``parameters.shards`` groups on the task runner's workers (each loads
    the model from the registry) and gather their forecasts into one table."""
    workspace = parameters.workspace
    # Workers may run elsewhere: absolute local paths (a bucket's URL is one already).
    models, embeddings = workspace.models, workspace.embeddings
    if not workspace.remote:
        models, embeddings = models.resolve(), embeddings.resolve()
    created_at = pd.Timestamp.now(tz="UTC")  # one run, one creation time in every shard
    common = (report.freq, run_id, created_at, report.timezone, parameters.validation.policy)
    parts = shards(frame, forecaster.contract, parameters.shards)
    with started(parameters.task_runner) as runner:
        results = fan_out(
            runner,
            forecast_shard,
            [
                (index, models, forecaster.version, embeddings, part, *common)
                for index, part in enumerate(parts)
            ],
        )
    return gather(results)
