"""The select flow: the candidate settings -> validate -> cut off the test split -> plan the
folds -> one fit-and-score per candidate and fold, run concurrently on the task runner ->
the settings with the lowest mean fold MSE, beside the best baseline."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from fusioncast.flows.runners import fan_out, started
from fusioncast.parameters import SelectParameters
from fusioncast.tasks.report import summarise_run
from fusioncast.tasks.selection import (
    choose_settings,
    cut_before_test,
    plan_selection,
    selection_trial,
    settings_to_compare,
)
from fusioncast.tasks.validate import validate_data


@flow(name="select")
def select(parameters: SelectParameters | None = None) -> dict[str, str]:
    """Choose among presets and the defaults by rolling-origin MSE before the test split."""
    parameters = parameters or SelectParameters()
    run_id = str(flow_run.id or "local")
    workspace, contract, model = parameters.workspace, parameters.contract, parameters.model

    candidates = settings_to_compare(parameters.candidates, model, parameters.training)
    with started(parameters.task_runner) as runner:
        frame, report = validate_data(
            parameters.data_path,
            contract,
            model.lookback + model.horizon,
            workspace.reports(run_id),
            parameters.validation,
        )
        history = cut_before_test(frame, contract, parameters.training)
        trials = plan_selection(
            history, contract, candidates, model, parameters.backtest, parameters.baselines
        )
        scores = fan_out(
            runner,
            selection_trial,
            [(history, contract, trial, report.freq) for trial in trials],
        )
    selection, paths = choose_settings(candidates, trials, scores, workspace.reports(run_id))
    chosen, baseline = selection.chosen, selection.best_baseline
    summarise_run(
        "select",
        {
            "data": f"{parameters.data_path} ({report.n_rows} rows, {report.n_series} series)",
            "folds": ", ".join(f"{f.index}: origin {f.origin.date()}" for f in selection.folds),
            "mean fold MSE": ", ".join(f"{k} {v:.4f}" for k, v in selection.mean_mse.items()),
            "chosen": chosen,
            "best baseline": f"{baseline} {selection.baseline_mean_mse.get(baseline, 0):.4f}",
            "report": f"{paths['report']}, {paths['table']}",
        },
    )
    return {
        "run_id": run_id,
        "chosen": chosen,
        "mean_mse": f"{selection.mean_mse[chosen]:.4f}",
        "best_baseline": str(baseline),
        "best_baseline_mse": f"{selection.baseline_mean_mse.get(baseline, float('nan')):.4f}",
        "report": str(paths["report"]),
        "table": str(paths["table"]),
    }
