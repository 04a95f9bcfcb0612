"""The retrain flow: validate -> split -> scale -> tokenize -> train -> evaluate -> register ->
forecast -> publish."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from fusioncast.evaluate import summarise
from fusioncast.parameters import RetrainParameters
from tasks.evaluate import evaluate
from tasks.forecast import forecast, publish
from tasks.prepare import build_windows, fit_scaling, fit_tokenization, split_data
from tasks.registry import promote_model, register_model
from tasks.report import summarise_run
from tasks.train import train
from tasks.validate import validate_data


@flow(name="retrain")
def retrain(parameters: RetrainParameters | None = None) -> dict[str, str]:
    """Train a new model on the data, evaluate it, register it and publish its forecasts."""
    parameters = parameters or RetrainParameters()
    run_id = str(flow_run.id or "local")
    workspace, contract = parameters.workspace, parameters.contract
    model_config, training = parameters.model, parameters.training

    frame, report, data_fingerprint = validate_data(
        parameters.data_path,
        contract,
        model_config.lookback + model_config.horizon,
        workspace.reports(run_id),
        parameters.validation,
    )
    boundaries = split_data(frame, contract, training.train_fraction, training.validation_fraction)
    scaler = fit_scaling(frame, contract, boundaries)
    encoder, tokenizers = fit_tokenization(frame, contract, boundaries, model_config)
    state, arrays = build_windows(
        frame, contract, scaler, encoder, tokenizers, model_config, boundaries
    )
    result = train(
        arrays, state.spec, training, workspace.checkpoints(f"retrain-{data_fingerprint[:16]}")
    )
    metrics = evaluate(result.model, arrays, model_config, report.freq)
    version = register_model(
        workspace.models,
        result.model,
        state,
        parameters.model_dump(mode="json"),
        data_fingerprint,
        {**result.to_json(), "split": boundaries.to_json()},
        metrics,
    )
    outcome = {"run_id": run_id, "model_version": version, "forecasts_path": ""}
    if parameters.publish_forecasts:
        forecasts = forecast(result.model, frame, state, report.freq, version, run_id)
        outcome["forecasts_path"] = str(publish(forecasts, workspace.forecasts, run_id))
    # Promoted last: a run that fails before this point leaves the champion as it was.
    promote_model(workspace.models, version, "newest trained model")
    summary = summarise(metrics).set_index("model")["mse"].round(4).to_dict()
    summarise_run(
        "retrain",
        {
            "data": f"{parameters.data_path} ({report.n_rows} rows, {report.n_series} series)",
            "quarantined rows": f"{report.n_quarantined} ({report.quarantine_path or 'none'})",
            "excluded short series": len(report.excluded_series),
            "validation report (GX Data Docs)": report.data_docs_path or "not built",
            "model version": version,
            "test MSE (scaled)": summary,
            "forecasts": outcome["forecasts_path"] or "not published",
        },
    )
    return outcome
