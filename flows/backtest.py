"""The backtest flow: validate -> plan folds -> one retrain-and-score per fold, run concurrently
on the task runner (worker processes, or a Dask cluster) -> one metrics table over all folds."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from fusioncast.flows.runners import fan_out, started
from fusioncast.parameters import BacktestParameters
from fusioncast.tasks.backtest import backtest_fold, combine_folds, plan
from fusioncast.tasks.report import summarise_run
from fusioncast.tasks.validate import validate_data


@flow(name="backtest")
def backtest(parameters: BacktestParameters | None = None) -> dict[str, str]:
    """Replay several past forecast origins and score each fold's forecasts."""
    parameters = parameters or BacktestParameters()
    run_id = str(flow_run.id or "local")
    workspace, contract, model = parameters.workspace, parameters.contract, parameters.model
    training, baselines = parameters.training, parameters.baselines

    with started(parameters.task_runner) as runner:
        frame, report = validate_data(
            parameters.data_path,
            contract,
            model.lookback + model.horizon,
            workspace.reports(run_id),
            parameters.validation,
        )
        folds = plan(frame, contract, model, parameters.backtest)
        fold_metrics = fan_out(
            runner,
            backtest_fold,
            [(frame, contract, model, training, fold, report.freq, baselines) for fold in folds],
        )
    path = combine_folds(fold_metrics, workspace.reports(run_id))
    summarise_run(
        "backtest",
        {
            "data": f"{parameters.data_path} ({report.n_rows} rows, {report.n_series} series)",
            "folds": ", ".join(f"{f.index}: origin {f.origin.date()}" for f in folds),
            "metrics": str(path),
        },
    )
    return {"run_id": run_id, "metrics_path": str(path)}
