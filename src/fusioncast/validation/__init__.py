"""Validation of an input frame against the data contract and the run's :class:`ValidationConfig`.

Each rule is declared once in :mod:`fusioncast.validation.rules`: its name, column roles, check,
GX expectation and what happens on failure (the README table is made from the declarations).
:func:`validate_dataset` reads the files first (:func:`read_dataset`: every file is Parquet and the
files agree on columns, types and time zone). A run then goes through four stages and stops after
the first one in which a rule failed:

1. table (pandas): a non-empty table, unique column names, every contract column present;
2. types (pandas, :mod:`~fusioncast.validation.coerce`): timestamps parse, target and numeric
   covariates are numbers, text is text (a binary column is decoded as UTF-8), categorical
   columns do not mix numbers and strings;
3. rows: a Great Expectations (GX Core 1.x) suite built from the declarations, the contract and
   the configuration (non-null key and target, finite numbers, unique (series, timestamp), no
   future step, categorical cardinality, text length);
4. series (:mod:`~fusioncast.validation.series`): a second GX suite over one summary row per
   series: every step on the declared (or inferred) frequency, gaps within a tolerated share, and
   at least ``min_length`` steps (shorter series are excluded with a warning; an error only if
   none remain).

Rules about the whole table (structure, types, cardinality, an unknown frequency) always stop the
run. Rules about rows or series stop it under the ``fail`` policy; under ``quarantine`` the
offending rows are set aside with the rule they broke, written to ``quarantine.parquet`` in the
report directory, and the run goes on with the rest. Every rule ends up as one
:class:`RuleResult` of a :class:`ValidationReport`; a run that stops raises the first failing rule
as a :class:`~fusioncast.errors.DataValidationError` naming the rule, the column and the count.

Rows may come in any order: the returned frame is sorted by (series, timestamp). Tz-aware
timestamps are checked as instants and handed on tz-naive (:mod:`fusioncast.timestamps`).

GX runs the row and series suites; the row masks needed for examples and for quarantine are
computed with pandas/numpy for the rules GX reported as failing only. GX Data Docs for both
suites are written to ``<report dir>/data_docs``.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import pandas as pd

from fusioncast import storage
from fusioncast.config import ValidationConfig
from fusioncast.contract import DataContract
from fusioncast.errors import ConfigError, DataValidationError
from fusioncast.validation.gx import DATA_DOCS_DIR
from fusioncast.validation.quarantine import (
    QUARANTINE_COLUMN,
    QUARANTINE_FILE,
    QUARANTINE_RULE,
    write_quarantine,
)
from fusioncast.validation.reading import (
    PARQUET_SUFFIXES,
    DatasetFiles,
    dataset_files,
    read_dataset,
)
from fusioncast.validation.report import (
    IGNORED,
    REPORT_FILE,
    REPORT_VERSION,
    RuleResult,
    ValidationReport,
    result,
)
from fusioncast.validation.rule import OnFailure
from fusioncast.validation.rules import FINITE_BOUND, RULES, stage
from fusioncast.validation.run import Run
from fusioncast.validation.series import FREQ_MAX_SERIES, FREQ_STEPS, infer_frequency

__all__ = [
    "DATA_DOCS_DIR",
    "FINITE_BOUND",
    "FREQ_MAX_SERIES",
    "FREQ_STEPS",
    "QUARANTINE_COLUMN",
    "QUARANTINE_FILE",
    "QUARANTINE_RULE",
    "REPORT_FILE",
    "REPORT_VERSION",
    "RULES",
    "DatasetFiles",
    "RuleResult",
    "ValidationConfig",
    "ValidationReport",
    "dataset_files",
    "infer_frequency",
    "read_dataset",
    "validate_dataset",
    "validate_frame",
]


def validate_dataset(
    source: str | Path,
    contract: DataContract,
    *,
    min_length: int = 1,
    config: ValidationConfig | None = None,
    report_dir: Path | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Read ``source`` with :func:`read_dataset` and validate it with :func:`validate_frame`.

    A dataset that cannot be read as one table fails like a rule (with a report); files of a
    dataset directory that are not Parquet are left out with a warning (rule ``parquet_files``).
    """
    config = config or ValidationConfig()
    try:
        files = dataset_files(source)
        frame = read_dataset(files, contract)
    except DataValidationError as error:
        report = ValidationReport(n_rows=0, n_series=0, freq=None, policy=config.policy)
        report.results.append(result(error.rule, error.column, error.count, error.example))
        if report_dir is not None:
            report.write(storage.location(report_dir))
        raise
    ignored = [files.name(path) for path in files.ignored]
    suffixes = " or ".join("*" + s for s in PARQUET_SUFFIXES)
    read = [
        result(
            rule.name,
            rule.columns(contract)[0],
            len(ignored),
            f"{ignored[0]} (not {suffixes}: not read)",
            action=IGNORED,
        )
        if rule.on_failure is OnFailure.IGNORE and ignored
        else result(rule.name, rule.columns(contract)[0], 0)
        for rule in stage("read")
    ]
    return validate_frame(
        frame, contract, min_length=min_length, config=config, report_dir=report_dir, read=read
    )


def validate_frame(
    frame: pd.DataFrame,
    contract: DataContract,
    *,
    min_length: int = 1,
    config: ValidationConfig | None = None,
    report_dir: Path | None = None,
    read: list[RuleResult] | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Check ``frame`` against ``contract``; return the rows to use, normalised and sorted.

    The returned frame keeps every input column; the series id is of pandas ``str`` dtype, the
    timestamp tz-naive ``datetime64[ns]`` (tz-aware input: UTC at a sub-daily frequency,
    wall-clock time at a daily or longer one, its zone in ``report.timezone``; see
    :mod:`fusioncast.timestamps`), target and numeric covariates ``float64``, text columns
    ``str`` (binary columns decoded as UTF-8, longer text truncated). Rows are sorted by
    (series id, timestamp) with a fresh RangeIndex; series shorter than ``min_length`` and, under
    the quarantine policy, quarantined rows are left out. The input frame is left untouched.

    With ``report_dir``, ``validation.json``, the GX Data Docs (``data_docs/index.html``, once
    the GX suites ran) and the quarantined rows (``quarantine.parquet``, when the run goes on)
    are written there, whether or not validation passes. ``read`` are the results of the rules
    met while reading the files (:func:`validate_dataset`); they come first in the report.

    Raises:
        DataValidationError: for the first rule that failed; its message says how many others
            failed too.
        ConfigError: for ``min_length < 1``.
    """
    if min_length < 1:
        raise ConfigError(f"min_length must be at least 1, got {min_length}")
    config = config or ValidationConfig()
    report_dir = storage.location(report_dir) if report_dir is not None else None
    docs_dir = report_dir / DATA_DOCS_DIR if report_dir is not None and config.data_docs else None
    # GX writes its site on a local disk: on an object store, in a folder uploaded afterwards.
    with storage.local_folder(docs_dir) if docs_dir is not None else nullcontext() as local_docs:
        run = Run(frame, contract, config, min_length, local_docs)
        run.results += read or []
        out = run.run()
        report = run.report(out)
        built = run.build_data_docs() if report_dir is not None else None
    if report_dir is not None:
        if out is not None and report.quarantined is not None:
            path = report_dir / QUARANTINE_FILE
            write_quarantine(report.quarantined, path)
            report.quarantine_path = str(path)
        if built is not None:
            report.data_docs_path = str(docs_dir / Path(built).relative_to(local_docs))
        report.write(report_dir)
    if out is None:
        report.raise_first(run.note)
    return out, report
