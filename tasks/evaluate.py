"""Task: evaluate the trained model on the test split against its ablations and the baselines."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from fusioncast.evaluate import Evaluation, evaluate_model, season_length
from fusioncast.forecast import Forecaster
from fusioncast.report import write_report
from fusioncast.windows import SeriesArrays


@task(name="evaluate")
def evaluate(
    forecaster: Forecaster, arrays: SeriesArrays, freq: str, report_dir: Path
) -> Evaluation:
    """Metrics per series and horizon step, written with plots under ``report_dir``.

    Artifacts: ``test-metrics`` (one row per model, ablation and baseline) and
    ``evaluation-report`` (where the metrics file and the plots are).
    """
    evaluation = evaluate_model(forecaster, arrays, season=season_length(freq))
    paths = write_report(evaluation, report_dir)
    summary = evaluation.summary()
    create_table_artifact(
        table=summary.round(5).to_dict(orient="records"),
        key="test-metrics",
        description=(
            "Test split, every window (stride 1): MSE/MAE/pinball on the z-scored target, "
            "MASE and sMAPE (%) on the original scale, interval coverage; the model, the same "
            "model with its text removed or shuffled, and the baselines"
        ),
    )
    lines = ["# Evaluation report", "", "| file | path |", "|---|---|"]
    lines += [f"| {name} | `{path}` |" for name, path in paths.items()]
    create_markdown_artifact(markdown="\n".join(lines), key="evaluation-report")
    return evaluation
