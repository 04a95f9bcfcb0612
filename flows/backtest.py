"""The backtest flow: validate -> plan folds -> one retrain-and-score per fold, run concurrently
in separate processes -> one metrics table over all folds."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run
from prefect.task_runners import ProcessPoolTaskRunner

from fusioncast.parameters import BacktestParameters
from fusioncast.tasks.backtest import backtest_fold, combine_folds, plan
from fusioncast.tasks.report import summarise_run
from fusioncast.tasks.validate import validate_data


# Folds run in worker processes (PREFECT_TASKS_RUNNER_PROCESS_POOL_MAX_WORKERS, default: the CPU
# count), each with its own TensorFlow runtime.
@flow(name="backtest", task_runner=ProcessPoolTaskRunner())
def backtest(parameters: BacktestParameters | None = None) -> dict[str, str]:
    """Replay several past forecast origins and score each fold's forecasts."""
    parameters = parameters or BacktestParameters()
    run_id = str(flow_run.id or "local")
    workspace, contract, model = parameters.workspace, parameters.contract, parameters.model

    frame, report = validate_data(
        parameters.data_path,
        contract,
        model.lookback + model.horizon,
        workspace.reports(run_id),
        parameters.validation,
    )
    folds = plan(frame, contract, model, parameters.backtest)
    futures = [
        backtest_fold.submit(
            frame, contract, model, parameters.training, fold, report.freq, parameters.baselines
        )
        for fold in folds
    ]
    path = combine_folds([f.result() for f in futures], workspace.reports(run_id))
    summarise_run(
        "backtest",
        {
            "data": f"{parameters.data_path} ({report.n_rows} rows, {report.n_series} series)",
            "folds": ", ".join(f"{f.index}: origin {f.origin.date()}" for f in folds),
            "metrics": str(path),
        },
    )
    return {"run_id": run_id, "metrics_path": str(path)}
