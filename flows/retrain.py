"""The retrain flow: check the champion -> validate -> read the reference forecasts -> split ->
prepare (scale, tokenize, arrays) -> train -> evaluate -> register -> promotion gate -> forecast
-> publish -> promote."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from fusioncast import distribution
from fusioncast.contract import MetricColumn as M
from fusioncast.parameters import RetrainParameters
from fusioncast.report import LIMIT_FILE, limit_summary
from fusioncast.tasks.evaluate import evaluate, read_references
from fusioncast.tasks.forecast import forecast, publish
from fusioncast.tasks.prepare import prepare_data, split_data
from fusioncast.tasks.registry import (
    check_registry,
    decision_lock,
    load_model,
    promote_model,
    promotion_gate,
    register_model,
)
from fusioncast.tasks.report import summarise_run
from fusioncast.tasks.train import train
from fusioncast.tasks.validate import fingerprint_data, validate_data


@flow(name="retrain")
def retrain(parameters: RetrainParameters | None = None) -> dict[str, str]:
    """Train a new model, evaluate it, register it, promote it if it beats the champion, and
    publish the champion's forecasts."""
    parameters = parameters or RetrainParameters()
    run_id = str(flow_run.id or "local")
    workspace, contract = parameters.workspace, parameters.contract
    model_config, training = parameters.model, parameters.training

    check_registry(workspace.models)  # a broken champion pointer stops the run before training
    frame, report = validate_data(
        parameters.data_path,
        contract,
        model_config.lookback + model_config.horizon,
        workspace.reports(run_id),
        parameters.validation,
    )
    data_fingerprint = fingerprint_data(frame)
    references = read_references(parameters.data_path, report.timezone, report.freq)
    boundaries = split_data(frame, contract, training.train_fraction, training.validation_fraction)
    state, arrays = prepare_data(frame, contract, boundaries, model_config, workspace.embeddings)
    forecaster, result = train(
        state, arrays, training, workspace.checkpoints, backups_on_this_machine=workspace.remote
    )
    if not distribution.writes(training.distribution):  # a multi_worker job: process 0 goes on
        index, count = distribution.share(training.distribution)
        worker = f"process {index} of {count}: trained; process 0 registers"
        summarise_run("retrain", {"data": str(parameters.data_path), "training": worker})
        return {"run_id": run_id, "model_version": "", "forecasts_path": "", "worker": worker}
    evaluation = evaluate(
        forecaster,
        arrays,
        report.freq,
        workspace.reports(run_id),
        references,
        parameters.baselines,
    )
    candidate = register_model(
        workspace.models,
        forecaster,
        parameters.model_dump(mode="json"),
        data_fingerprint,
        {**result.to_json(), "split": boundaries.to_json()},
        evaluation.metrics,
    )
    version = candidate.version
    outcome = {"run_id": run_id, "model_version": version, "forecasts_path": ""}
    # One decision at a time per registry: concurrent runs compare against each other's result.
    with decision_lock(workspace.models):
        decision = promotion_gate(
            workspace.models, evaluation, candidate.scaler, frame, parameters.promotion
        )
        outcome.update(promoted=str(decision.promote), promotion=decision.reason)
        # Forecasts come from the champion after the gate; without one there is nothing to publish.
        if parameters.publish_forecasts and (decision.promote or decision.champion):
            published = (
                candidate
                if decision.promote
                else load_model(workspace.models, decision.champion, workspace.embeddings)
            )
            forecasts = forecast(
                published,
                frame,
                report.freq,
                run_id,
                timezone=report.timezone,
                policy=parameters.validation.policy,
            )
            outcome["forecasts_path"] = str(publish(forecasts, workspace.forecasts, run_id))
        # Promoted last: a run that fails before this point leaves the champion as it was.
        if decision.promote:
            promote_model(workspace.models, version, decision.reason)
    if evaluation.limit:
        outcome["knowable_limit"] = limit_summary(evaluation.limit)
    summary = evaluation.summary().set_index(M.MODEL)[M.MSE].round(4).to_dict()
    summarise_run(
        "retrain",
        {
            "data": f"{parameters.data_path} ({report.n_rows} rows, {report.n_series} series)",
            "quarantined rows": f"{report.n_quarantined} ({report.quarantine_path or 'none'})",
            "excluded short series": len(report.excluded_series),
            "validation report (GX Data Docs)": report.data_docs_path or "not built",
            "model version": version,
            "promoted": "yes" if decision.promote else "no",
            "why": decision.reason,
            "baseline best on validation": (
                f"{decision.best_baseline} (test MSE {decision.best_baseline_mse:.4f})"
                if decision.best_baseline
                else "none (no validation window)"
            ),
            "champion now": version if decision.promote else (decision.champion or "none"),
            "test MSE (scaled)": summary,
            "knowable limit": (
                f"{outcome['knowable_limit']}; {workspace.reports(run_id) / LIMIT_FILE}"
                if evaluation.limit
                else "not scored (no knowable limits for these test windows)"
            ),
            "evaluation report": str(workspace.reports(run_id)),
            "forecasts": outcome["forecasts_path"] or "not published",
        },
    )
    return outcome
