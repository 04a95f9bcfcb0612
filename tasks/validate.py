"""Task: read the input and validate it against the data contract and the validation config."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from fusioncast.contract import DataContract
from fusioncast.errors import FusioncastError
from fusioncast.frames import fingerprint
from fusioncast.validation import (
    REPORT_FILE,
    ValidationConfig,
    ValidationReport,
    validate_dataset,
)


class _WithoutTraceback(logging.Filter):
    """Drop the traceback from Prefect's log of a run that failed on bad data or parameters.

    Such a failure is the user's to fix, not a crash: the log keeps the message (rule, column,
    count), as the run's state does, without the stack of the pipeline's internals.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, FusioncastError):
            record.exc_info, record.exc_text = None, None
        return True


for _name in ("prefect.task_runs", "prefect.flow_runs"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _WithoutTraceback) for f in _logger.filters):
        _logger.addFilter(_WithoutTraceback())


@task(name="validate", retries=0)
def validate_data(
    data_path: str,
    contract: DataContract,
    min_length: int,
    report_dir: Path,
    config: ValidationConfig | None = None,
) -> tuple[pd.DataFrame, ValidationReport, str]:
    """The validated frame (sorted; quarantined rows and too-short series left out), its report,
    and its fingerprint.

    The report is shown as a table artifact (rule, column, failing count, example, status), on
    failure too; the run stops with the rule's message (a ``DataValidationError``).
    """
    logger = get_run_logger()
    try:
        valid, report = validate_dataset(
            data_path, contract, min_length=min_length, config=config, report_dir=report_dir
        )
    finally:
        _publish_report(report_dir)
    create_table_artifact(
        table=report.table_rows(),
        key="validation-summary",
        description=(
            f"Validation of {data_path} ({report.policy} policy): {report.n_rows} rows, "
            f"{report.n_series} series, frequency {report.freq}; {report.n_rows_valid} rows "
            f"used, {report.n_quarantined} quarantined, {len(report.excluded_series)} series "
            f"too short. Report {report.report_path}; GX Data Docs {report.data_docs_path}"
        ),
    )
    for result in report.warnings:
        logger.warning(
            "validation: rule '%s' on '%s': %d row(s) %s (example: %s)",
            result.rule,
            result.column,
            result.failing_count,
            result.action,
            result.example,
        )
    if report.quarantine_path:
        logger.warning(
            "validation: %d row(s) quarantined to %s", report.n_quarantined, report.quarantine_path
        )
    return valid, report, fingerprint(valid)


def _publish_report(report_dir: Path) -> None:
    """On failure too, show the failing rules as an artifact when the report was written."""
    path = Path(report_dir) / REPORT_FILE
    if not path.exists():
        return
    report = json.loads(path.read_text())
    failed = [row for row in report["results"] if not row["success"]]
    if failed:
        create_table_artifact(
            table=[
                {
                    "rule": row["rule"],
                    "column": row["column"],
                    "failing_count": row["failing_count"],
                    "example": row["example"],
                    "status": row["action"],
                }
                for row in report["results"]
            ],
            key="validation-summary",
            description=(
                f"Validation FAILED: {len(failed)} rule(s) broken; report {path}; "
                f"GX Data Docs {report.get('data_docs_path')}"
            ),
        )
