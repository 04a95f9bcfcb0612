"""Tasks: read the reference forecasts the data carries; evaluate the trained model on the test
split against its ablations, the baselines and those references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from fusioncast.config import BaselineConfig
from fusioncast.contract import ForecastColumn as F
from fusioncast.evaluate import Evaluation, evaluate_model, season_length
from fusioncast.forecast import Forecaster
from fusioncast.references import REFERENCE, held_origins, read_reference_forecasts
from fusioncast.report import limit_summary, write_report
from fusioncast.tasks import task
from fusioncast.windows import SeriesArrays


@task(name="read-references")
def read_references(data_path: str, timezone: str | None, freq: str | None) -> pd.DataFrame | None:
    """The reference forecasts beside the data (None: there are none), their origins held like
    the validated input's timestamps. Read before training, so a broken file stops the run early."""
    references = read_reference_forecasts(data_path)
    logger = get_run_logger()
    if references is None:
        logger.info("no reference forecasts beside the data")
        return None
    references[F.FORECAST_ORIGIN] = held_origins(references[F.FORECAST_ORIGIN], timezone, freq)
    names = ", ".join(map(str, pd.unique(references[REFERENCE])))
    logger.info("reference forecasts: %s (%d rows)", names or "none", len(references))
    return references


@task(name="evaluate")
def evaluate(
    forecaster: Forecaster,
    arrays: SeriesArrays,
    freq: str,
    report_dir: Path,
    references: pd.DataFrame | None = None,
    baselines: BaselineConfig | None = None,
) -> Evaluation:
    """Metrics per series and horizon step, written with plots under ``report_dir``.

    Artifacts: ``test-metrics`` (one row per model, ablation, baseline and reference),
    ``evaluation-report`` (where the metrics file and the plots are) and, when the data carries
    both knowable limits, ``knowable-limit``.
    """
    evaluation = evaluate_model(
        forecaster,
        arrays,
        season=season_length(freq),
        references=references,
        baselines=baselines,
    )
    logger = get_run_logger()
    n_windows, horizon = len(evaluation.origins), forecaster.config.horizon
    for name, covered in evaluation.reference_windows.items():
        log = logger.info if covered else logger.warning
        log(
            "reference %r forecasts %d of the %d test windows at every step 1..%d: %s",
            name,
            covered,
            n_windows,
            horizon,
            "scored on those" if covered else "left out of the metrics",
        )
    paths = write_report(evaluation, report_dir)
    create_table_artifact(
        table=evaluation.summary().round(5).to_dict(orient="records"),
        key="test-metrics",
        description=(
            "Test split, every window (stride 1): MSE/MAE/pinball on the z-scored target, "
            "MASE and sMAPE (%) on the original scale, interval coverage; the model, the same "
            "model with its text removed or shuffled, the baselines, and the reference "
            "forecasts the data carries (reference = true: never candidates)"
        ),
    )
    lines = ["# Evaluation report", "", "| file | path |", "|---|---|"]
    lines += [f"| {name} | `{path}` |" for name, path in paths.items()]
    create_markdown_artifact(markdown="\n".join(lines), key="evaluation-report")
    if evaluation.limit is not None:
        create_markdown_artifact(markdown=limit_markdown(evaluation.limit), key="knowable-limit")
    return evaluation


def limit_markdown(limit: dict[str, Any]) -> str:
    """The figures against the knowable limit, for people."""
    lines = [
        "# Knowable limit",
        "",
        limit_summary(limit) + f"; the model without text is `{limit['no_text_model']}`, the "
        "same trained model given no text. MSE on the z-scored target:",
        "",
        "| forecast | MSE |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {value:.4f} |" for name, value in limit["mse"].items()]
    return "\n".join(lines)
