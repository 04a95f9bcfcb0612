"""Task: read the input and validate it against the data contract."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.artifacts import create_table_artifact

from fusioncast.contract import DataContract, read_dataset
from fusioncast.frames import fingerprint
from fusioncast.validation import ValidationReport, validate_frame


@task(name="validate", retries=0)
def validate_data(
    data_path: str, contract: DataContract, min_length: int, report_dir: Path
) -> tuple[pd.DataFrame, ValidationReport, str]:
    """The validated frame (sorted), its report, and its fingerprint."""
    frame = read_dataset(data_path, contract)
    try:
        valid, report = validate_frame(
            frame, contract, min_length=min_length, report_dir=report_dir
        )
    finally:
        _publish_report(report_dir)
    create_table_artifact(
        table=report.table_rows(),
        key="validation-summary",
        description=(
            f"Validation of {data_path}: {report.n_rows} rows, {report.n_series} series, "
            f"frequency {report.freq}; report {report.report_path}"
        ),
    )
    return valid, report, fingerprint(valid)


def _publish_report(report_dir: Path) -> None:
    """On failure too, show the failing rules as an artifact when the report was written."""
    path = report_dir / "validation.json"
    if not path.exists():
        return
    report = json.loads(path.read_text())
    failed = [row for row in report["results"] if not row["success"]]
    if failed:
        create_table_artifact(
            table=report["results"],
            key="validation-summary",
            description=f"Validation FAILED: {len(failed)} rule(s) broken; report {path}",
        )
