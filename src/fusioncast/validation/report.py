"""A validation run's report: a :class:`RuleResult` per rule and column; ``validation.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusioncast.contract import DataContract
from fusioncast.errors import DataValidationError
from fusioncast.storage import location, write_json

REPORT_VERSION = 3
REPORT_FILE = "validation.json"

_EXAMPLE_CHARS = 200

#: What happened to the rows that broke a rule (``RuleResult.action``).
PASSED, FAILED, QUARANTINED = "passed", "failed", "quarantined"
EXCLUDED, TRUNCATED, FILLED, TOLERATED = "excluded", "truncated", "filled", "tolerated"
IGNORED = "ignored"


@dataclass
class RuleResult:
    """One row of the report: a rule, the column(s) it is about and how many rows broke it.

    ``action`` says what happened to them: ``passed`` (none broke it), ``failed`` (the run
    stops), ``quarantined``, ``excluded`` (series too short), ``truncated`` (text),
    ``ignored`` (files of a dataset directory that are not Parquet),
    ``filled`` (tolerated missing targets) or ``tolerated`` (gaps within the tolerated share).
    Only ``failed`` makes ``success`` false. ``expectation`` is the GX expectation type behind
    the rule, where GX evaluated it.
    """

    rule: str
    column: str
    failing_count: int
    example: str | None
    success: bool
    action: str = PASSED
    expectation: str | None = None


@dataclass
class ValidationReport:
    n_rows: int
    n_series: int
    freq: str | None  # None only in the report of a failed validation
    #: the time zone of tz-aware timestamps (see fusioncast.timestamps); None for tz-naive ones
    timezone: str | None = None
    results: list[RuleResult] = field(default_factory=list)
    report_path: str | None = None
    policy: str = "fail"
    n_rows_valid: int = 0
    n_quarantined: int = 0
    quarantine_path: str | None = None
    data_docs_path: str | None = None
    #: series left out for being shorter than ``min_length``: id -> usable steps
    excluded_series: dict[str, int] = field(default_factory=dict)
    #: the quarantined input rows with their rule (not part of the JSON report)
    quarantined: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.results if not r.success]

    @property
    def warnings(self) -> list[RuleResult]:
        """Rules broken without stopping the run (quarantined, excluded, truncated, ...)."""
        return [r for r in self.results if r.success and r.action != PASSED]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION,
            "success": self.success,
            "policy": self.policy,
            "n_rows": self.n_rows,
            "n_series": self.n_series,
            "n_rows_valid": self.n_rows_valid,
            "n_quarantined": self.n_quarantined,
            "freq": self.freq,
            "timezone": self.timezone,
            "quarantine_path": self.quarantine_path,
            "data_docs_path": self.data_docs_path,
            "excluded_series": self.excluded_series,
            "results": [asdict(r) for r in self.results],
        }

    def table_rows(self) -> list[dict[str, Any]]:
        """Rows for a table artifact: rule, column, failing_count, example, status."""
        return [
            {
                "rule": r.rule,
                "column": r.column,
                "failing_count": r.failing_count,
                "example": r.example,
                "status": r.action,
            }
            for r in self.results
        ]

    def write(self, report_dir: Path) -> None:
        """``validation.json`` in ``report_dir`` (:func:`fusioncast.storage.write_json`)."""
        path = location(report_dir) / REPORT_FILE
        self.report_path = str(path)
        write_json(path, self.to_json())

    def raise_first(self, note: str = "") -> None:
        """Raise the first failed rule, saying how many others failed too."""
        first, *others = self.failures
        detail = (
            f"{len(others)} other rule(s) failed too: "
            + "; ".join(f"{r.rule} on '{r.column}' ({r.failing_count})" for r in others)
            if others
            else "no other rule failed"
        )
        if note:
            detail = f"{note}; {detail}"
        if self.report_path:
            detail += f"; report: {self.report_path}"
        raise DataValidationError(
            first.rule, first.column, first.failing_count, detail=detail, example=first.example
        )


def result(
    rule: str,
    column: str,
    failing: int,
    example: object = None,
    *,
    action: str | None = None,
    expectation: str | None = None,
) -> RuleResult:
    """A rule's result; ``failing`` rows without an ``action`` fail the run."""
    failing = int(failing)
    action = action or (FAILED if failing else PASSED)
    return RuleResult(
        rule=rule,
        column=column,
        failing_count=failing,
        example=render(example) if failing else None,
        success=action != FAILED,
        action=action,
        expectation=expectation,
    )


def render(value: object) -> str | None:
    """One offending value as a short string for people (and JSON)."""
    if value is None:
        return None
    if isinstance(value, dict):
        text = ", ".join(f"{k}={render(v)}" for k, v in value.items())
    elif isinstance(value, bytes):
        text = repr(value)
    else:
        text = str(value)
    return text if len(text) <= _EXAMPLE_CHARS else text[: _EXAMPLE_CHARS - 3] + "..."


def render_stamp(value: object, utc_zone: str | None = None) -> str:
    """A timestamp for people: a date at midnight; held as UTC, shown in ``utc_zone``."""
    if isinstance(value, pd.Timestamp) and utc_zone is not None:
        value = value.tz_localize("UTC").tz_convert(utc_zone)
    if isinstance(value, pd.Timestamp) and value == value.normalize():
        return str(value.date())
    return str(value)


def row_example(
    out: pd.DataFrame,
    mask: np.ndarray,
    contract: DataContract,
    value: str | None,
    utc_zone: str | None = None,
) -> str | None:
    """``<value> at series_id=..., timestamp=...`` for the first offending row."""
    hits = np.flatnonzero(mask)
    if not len(hits):
        return None
    row = out.iloc[hits[0]]
    stamp = render_stamp(row[contract.timestamp], utc_zone)
    where = []
    if contract.series_id is not None:
        where.append(f"{contract.series_id}={row[contract.series_id]}")
    if value != contract.timestamp:
        where.append(f"{contract.timestamp}={stamp}")
    location = ", ".join(where)
    if value is None:
        return location
    shown = stamp if value == contract.timestamp else str(row[value])
    return f"{shown} at {location}" if location else shown
