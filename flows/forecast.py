"""The forecast flow: load the champion -> validate new data -> predict -> publish."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from fusioncast.parameters import ForecastParameters
from fusioncast.tasks.forecast import forecast, publish
from fusioncast.tasks.registry import load_model
from fusioncast.tasks.report import summarise_run
from fusioncast.tasks.validate import validate_data


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
    forecasts = forecast(
        forecaster,
        frame,
        report.freq,
        run_id,
        timezone=report.timezone,
        policy=parameters.validation.policy,
    )
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
