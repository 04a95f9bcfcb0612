"""Task: read the input and validate it against the data contract and the validation config."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import create_table_artifact

from fusioncast.config import ValidationConfig
from fusioncast.contract import DataContract
from fusioncast.frames import fingerprint
from fusioncast.storage import failures_name, location, read_json
from fusioncast.tasks import task
from fusioncast.validation import REPORT_FILE, ValidationReport, validate_dataset


@task(name="validate", retries=0)
def validate_data(
    data_path: str,
    contract: DataContract,
    min_length: int,
    report_dir: Path,
    config: ValidationConfig | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """The validated frame (sorted; quarantined rows and too-short series left out) and its
    report.

    The report is shown as a table artifact (rule, column, failing count, example, status), on
    failure too; the run stops with the rule's message (a ``DataValidationError``).
    """
    logger = get_run_logger()
    try:
        with failures_name(report_dir):  # the report, its Data Docs, quarantined rows
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
    return valid, report


@task(name="fingerprint")
def fingerprint_data(frame: pd.DataFrame) -> str:
    """sha256 of the validated data, recorded with the model trained on it."""
    return fingerprint(frame)


def _publish_report(report_dir: Path) -> None:
    """On failure too, show the failing rules as an artifact when the report was written."""
    path = location(report_dir) / REPORT_FILE
    if not path.exists():
        return
    report = read_json(path)
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
