"""Validation of an input frame against the data contract and the run's :class:`ValidationConfig`.

:func:`validate_dataset` reads the files first (:func:`~fusioncast.contract.read_dataset`: every
file is Parquet and the files agree on columns, types and time zone). A run then goes through four
stages and stops after the first one in which a rule failed:

1. structure (pandas): a non-empty table, unique column names, every contract column present;
2. types (pandas): timestamps parse, target and numeric covariates are numbers, text is text
   (a binary column is decoded as UTF-8), categorical columns do not mix numbers and strings;
3. rows: a Great Expectations (GX Core 1.x) suite built from the contract and the configuration:
   non-null series id, timestamp and target (a tolerated share of missing targets), finite target
   and covariates, unique (series, timestamp), no timestamp in the future, categorical cardinality
   within a bound, text within a length bound (longer text is truncated and counted);
4. series: a second GX suite over one summary row per series: every step on the declared (or
   inferred) frequency, gaps within a tolerated share, and at least ``min_length`` steps (shorter
   series are excluded with a warning; an error only if none remain).

Rules about the whole table (structure, types, cardinality, an unknown frequency) always stop the
run. Rules about rows or series stop it under the ``fail`` policy; under ``quarantine`` the
offending rows are set aside with the rule they broke, written to ``quarantine.parquet`` in the
report directory, and the run goes on with the rest. Every rule ends up as one
:class:`RuleResult` of a :class:`ValidationReport`; a run that stops raises the first failing rule
as a :class:`~fusioncast.errors.DataValidationError` naming the rule, the column and the count.

Rows may come in any order: the returned frame is sorted by (series, timestamp). Tz-aware
timestamps are checked as instants and handed on tz-naive (:mod:`fusioncast.timestamps`).

GX is imported on first use (its import takes seconds). GX runs the row and series suites; the
row masks needed for examples and for quarantine are computed with pandas/numpy for the rules GX
reported as failing only. GX Data Docs for both suites are written to ``<report dir>/data_docs``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api import types as ptypes

from fusioncast.config import ValidationConfig
from fusioncast.contract import (
    SINGLE_SERIES_ID,
    DataContract,
    dataset_files,
    read_dataset,
)
from fusioncast.errors import ConfigError, DataValidationError
from fusioncast.storage import write_json, write_parquet
from fusioncast.timestamps import held_in_utc, parse_timestamps, split_zone, wall_clock

REPORT_VERSION = 3
REPORT_FILE = "validation.json"
QUARANTINE_FILE = "quarantine.parquet"
DATA_DOCS_DIR = "data_docs"
#: Columns added to every quarantined row: the first rule it broke and that rule's column.
QUARANTINE_RULE = "quarantine_rule"
QUARANTINE_COLUMN = "quarantine_column"

#: Values outside this range fail the ``finite`` rule; so do +/-inf.
FINITE_BOUND = 1e300
#: The frequency of a series is inferred from its first steps only.
FREQ_STEPS = 50
#: At most this many series (evenly spread over the sorted ids) vote on the frequency.
FREQ_MAX_SERIES = 200

_TABLE = "*"  # the "column" of rules about the whole table
_EXAMPLE_CHARS = 200
_ORDER_KEY = "fusioncast_order"

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


def validate_dataset(
    source: str | Path,
    contract: DataContract,
    *,
    min_length: int = 1,
    config: ValidationConfig | None = None,
    report_dir: Path | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Read ``source`` with :func:`~fusioncast.contract.read_dataset` and validate it with
    :func:`validate_frame`.

    A dataset that cannot be read as one table fails like a rule (with a report); files of a
    dataset directory that are not Parquet are left out with a warning (rule ``parquet_files``).
    """
    config = config or ValidationConfig()
    try:
        files = dataset_files(source)
        frame = read_dataset(files, contract)
    except DataValidationError as error:
        report = ValidationReport(n_rows=0, n_series=0, freq=None, policy=config.policy)
        report.results.append(_rule(error.rule, error.column, error.count, error.example))
        if report_dir is not None:
            _write_report(report, Path(report_dir))
        raise
    ignored = [files.name(path) for path in files.ignored]
    read = [
        _rule(
            "parquet_files",
            _TABLE,
            len(ignored),
            f"{ignored[0]} (not *.parquet or *.parq: not read)" if ignored else None,
            action=IGNORED if ignored else PASSED,
        ),
        *(_rule(rule, _TABLE, 0) for rule in ("parquet_readable", "parquet_columns")),
        _rule("timestamp_timezone", contract.timestamp, 0),
        _rule("parquet_schema", _TABLE, 0),
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
    docs_dir = Path(report_dir) / DATA_DOCS_DIR if report_dir is not None else None
    run = _Validation(frame, contract, config, min_length, docs_dir if config.data_docs else None)
    run.results += read or []  # the rules met while reading the files (validate_dataset)
    out = run.run()
    report = run.report(out)
    if report_dir is not None:
        report_dir = Path(report_dir)
        if out is not None and report.quarantined is not None:
            path = report_dir / QUARANTINE_FILE
            _write_quarantine(report.quarantined, path)
            report.quarantine_path = str(path)
        report.data_docs_path = run.build_data_docs()
        _write_report(report, report_dir)
    if out is None:
        _raise_first(report, run.note)
    return out, report


def infer_frequency(
    frame: pd.DataFrame, contract: DataContract, utc_zone: str | None = None
) -> str:
    """The contract's frequency, or the one most series agree on (``pd.infer_freq``).

    Each voting series contributes its first ``FREQ_STEPS`` steps; at most ``FREQ_MAX_SERIES``
    series (with at least three rows) vote, evenly spread over the sorted series ids. With
    ``utc_zone``, the tz-naive timestamps are UTC instants of that zone and are read in it (days
    are calendar days there, hours are hours).
    """
    if contract.freq:
        return contract.freq
    timestamps = frame[contract.timestamp]
    if not ptypes.is_datetime64_any_dtype(timestamps):
        timestamps = pd.to_datetime(timestamps, errors="coerce")
    if contract.series_id is None:
        codes = np.zeros(len(frame), dtype=np.int64)
        names = pd.Index([SINGLE_SERIES_ID])
    else:
        codes, names = pd.factorize(frame[contract.series_id], sort=True)
    counts = np.bincount(codes[codes >= 0], minlength=len(names))
    candidates = np.flatnonzero(counts >= 3)
    if len(candidates) > FREQ_MAX_SERIES:
        candidates = candidates[np.linspace(0, len(candidates) - 1, FREQ_MAX_SERIES).astype(int)]
    keep = np.isin(codes, candidates)
    steps = (
        pd.DataFrame({"k": codes[keep], "t": timestamps.to_numpy()[keep]})
        .dropna()
        .drop_duplicates()
        .sort_values(["k", "t"], kind="stable")
    )
    steps = steps.groupby("k", sort=False).head(FREQ_STEPS + 1)
    votes: Counter[str] = Counter()
    for _, group in steps.groupby("k", sort=False):
        if len(group) >= 3:
            index = pd.DatetimeIndex(group["t"])
            if utc_zone is not None:
                index = index.tz_localize("UTC").tz_convert(utc_zone)
            with pd.option_context("future.infer_freq_returns_offset", True):
                offset = pd.infer_freq(index)
            if offset is not None:
                votes[offset.freqstr] += 1
    if not votes:
        raise DataValidationError(
            "regular_frequency",
            contract.timestamp,
            len(names),
            detail=(
                f"no frequency could be inferred from {len(candidates)} series with at least 3 "
                "steps; declare contract.freq or provide regular timestamps"
            ),
            example=str(names[0]) if len(names) else None,
        )
    return votes.most_common(1)[0][0]


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class _Check:
    """One GX expectation and how its failures are handled.

    kind: ``row`` (rows are quarantined or fail the run), ``table`` (always fails the run),
    ``target_nulls`` (tolerated share filled, beyond it like ``row``), ``truncate`` (text length:
    counted and truncated). ``mask`` gives the offending rows (computed only when GX says some
    rows broke the rule).
    """

    rule: str
    column: str
    expectation: Any
    kind: str = "row"
    mask: Callable[[pd.DataFrame], np.ndarray] | None = None
    value: str | None = None  # the column whose value the example shows


class _Validation:
    def __init__(
        self,
        frame: pd.DataFrame,
        contract: DataContract,
        config: ValidationConfig,
        min_length: int,
        docs_dir: Path | None,
    ) -> None:
        self.frame, self.contract, self.config = frame, contract, config
        self.min_length, self.docs_dir = min_length, docs_dir
        self.results: list[RuleResult] = []
        self.quarantine = config.policy == "quarantine"
        self.rule_of: np.ndarray | None = None  # per input row: the first rule it broke
        self.column_of: np.ndarray | None = None
        self.excluded: dict[str, int] = {}
        self.n_series = 0
        self.freq: str | None = None
        self.zone: str | None = None  # of tz-aware timestamps
        self.utc_zone: str | None = None  # the zone while the timestamps are held as UTC
        self.note = ""  # said in the error message when the run stops
        self._gx: _GX | None = None

    # -- bookkeeping --------------------------------------------------------------------------

    def failed(self) -> bool:
        return any(not r.success for r in self.results)

    def add(self, result: RuleResult) -> RuleResult:
        self.results.append(result)
        return result

    def rows(
        self,
        out: pd.DataFrame,
        rule: str,
        column: str,
        mask: np.ndarray,
        example: object = None,
        expectation: str | None = None,
    ) -> np.ndarray | None:
        """Record a row rule; under quarantine return the rows to set aside (None if none)."""
        mask = np.asarray(mask, dtype=bool)
        n = int(mask.sum())
        if not n:
            self.add(_rule(rule, column, 0, expectation=expectation))
            return None
        if not self.quarantine:
            self.add(_rule(rule, column, n, example, expectation=expectation))
            return None
        self.add(_rule(rule, column, n, example, action=QUARANTINED, expectation=expectation))
        self.set_aside(out, mask, rule, column)
        return mask

    def set_aside(self, out: pd.DataFrame, mask: np.ndarray, rule: str, column: str) -> None:
        if self.rule_of is None:
            self.rule_of = np.full(len(self.frame), None, dtype=object)
            self.column_of = np.full(len(self.frame), None, dtype=object)
        assert self.column_of is not None
        positions = out.index.to_numpy()[mask]
        fresh = positions[pd.isna(self.rule_of[positions])]
        self.rule_of[fresh] = rule
        self.column_of[fresh] = column

    @property
    def n_quarantined(self) -> int:
        return 0 if self.rule_of is None else int(pd.notna(self.rule_of).sum())

    def gx(self) -> _GX:
        if self._gx is None:
            self._gx = _GX(self.docs_dir)
        return self._gx

    def build_data_docs(self) -> str | None:
        return self._gx.build_data_docs() if self._gx is not None else None

    def report(self, out: pd.DataFrame | None) -> ValidationReport:
        report = ValidationReport(
            n_rows=len(self.frame),
            n_series=self.n_series,
            freq=self.freq if out is not None else None,
            timezone=self.zone,
            results=self.results,
            policy=self.config.policy,
            n_rows_valid=0 if out is None else len(out),
            n_quarantined=self.n_quarantined if out is not None else 0,
            excluded_series=self.excluded,
        )
        if out is not None and self.rule_of is not None:
            assert self.column_of is not None
            positions = np.flatnonzero(pd.notna(self.rule_of))
            rows = self.frame.iloc[positions].reset_index(drop=True)
            rows[QUARANTINE_RULE] = self.rule_of[positions].astype(str)
            rows[QUARANTINE_COLUMN] = self.column_of[positions].astype(str)
            report.quarantined = rows
        return report

    # -- stages -------------------------------------------------------------------------------

    def run(self) -> pd.DataFrame | None:
        out = self.structure()
        if out is None or self.failed():
            return None
        out = self.types(out)
        if out is None or self.failed():
            return None
        out = self.rows_suite(out)
        if out is None or self.failed():
            return None
        out = self.series_suite(out)
        if out is None or self.failed():
            return None
        return self.finish(out)

    def structure(self) -> pd.DataFrame | None:
        frame, contract = self.frame, self.contract
        if not self.add(_rule("non_empty", _TABLE, 0 if len(frame) else 1)).success:
            return None
        duplicated = list(dict.fromkeys(frame.columns[frame.columns.duplicated()]))
        names = ", ".join(map(str, duplicated)) or _TABLE
        if not self.add(_rule("unique_column_names", names, len(duplicated))).success:
            return None
        missing = [c for c in contract.all_columns if c not in frame.columns]
        if not self.add(
            _rule("columns_present", ", ".join(missing) or _TABLE, len(missing))
        ).success:
            return None
        # Copy-on-write: a lazy copy; assigning columns leaves the caller's frame alone. The
        # RangeIndex labels are the input row positions from here on (for quarantine).
        return frame.reset_index(drop=True)

    def types(self, out: pd.DataFrame) -> pd.DataFrame | None:
        """Every column is checked, so one run names every type problem."""
        contract = self.contract
        drop = np.zeros(len(out), dtype=bool)
        categorical = ([contract.series_id] if contract.series_id else []) + list(
            contract.categorical
        )
        for column in categorical:
            count, example = _mixed_kinds(out[column])
            self.add(_rule("categorical_type", column, count, example))
        if contract.series_id is not None:
            out[contract.series_id] = out[contract.series_id].astype("str")

        column = contract.timestamp
        try:
            parsed, bad, example = parse_timestamps(out[column])
        except (OverflowError, ValueError) as error:  # e.g. out of the ns range (1677..2262)
            self.add(_rule("timestamp_parses", column, 1, str(error)))
            parsed, bad = None, None
        if parsed is None and bad is not None:  # numbers: a type error, not a row error
            self.add(_rule("timestamp_parses", column, int(bad.sum()), example))
        elif parsed is not None:
            out[column], self.zone = split_zone(parsed)  # instants, until the frequency is known
            self.utc_zone = self.zone
            drop |= _or_none(self.rows(out, "timestamp_parses", column, bad, example), len(out))

        for column in (contract.target, *contract.numeric):
            values, count, example = _to_float(out[column])
            self.add(_rule("numeric_type", column, count, example))
            if values is not None:
                out[column] = values

        for column in contract.text:
            if _holds_bytes(out[column]):
                values, bad, example = _decode_utf8(out[column])
                self.add(_rule("text_type", column, 0))
                drop |= _or_none(self.rows(out, "text_utf8", column, bad, example), len(out))
            else:
                values, count, example = _to_text(out[column])
                self.add(_rule("text_type", column, count, example))
            if values is not None:
                out[column] = values
        if self.failed():
            return None
        return out[~drop] if drop.any() else out

    def rows_suite(self, out: pd.DataFrame) -> pd.DataFrame | None:
        """The row rules, as a GX suite built from the contract and the configuration."""
        contract = self.contract
        checks = _row_checks(contract, self.config, instants=self.zone is not None)
        gx_results = self.gx().validate("rows", out, [c.expectation for c in checks])
        drop = np.zeros(len(out), dtype=bool)
        for check, result in zip(checks, gx_results, strict=True):
            details = result.result or {}
            count = int(details.get("unexpected_count") or 0)
            rule, column = check.rule, check.column
            expectation = check.expectation.expectation_type
            if result.success and not count:
                self.add(_rule(rule, column, 0, expectation=expectation))
            elif check.kind == "table":
                observed = details.get("observed_value")
                count = count or (observed if isinstance(observed, int) else 1)
                self.add(_rule(rule, column, count, observed, expectation=expectation))
            else:
                mask = np.asarray(check.mask(out), dtype=bool)
                example = _row_example(out, mask, contract, check.value, self.utc_zone)
                if check.kind == "truncate":
                    out[column] = out[column].str.slice(0, self.config.max_text_chars)
                    action = TRUNCATED
                elif check.kind == "target_nulls" and result.success:
                    action = FILLED  # within the tolerated share; filled in finish()
                else:
                    drop |= _or_none(
                        self.rows(out, rule, column, mask, example, expectation), len(out)
                    )
                    continue
                self.add(
                    _rule(
                        rule,
                        column,
                        int(mask.sum()),
                        example,
                        action=action,
                        expectation=expectation,
                    )
                )
        if self.failed():
            return None
        return out[~drop] if drop.any() else out

    def series_suite(self, out: pd.DataFrame) -> pd.DataFrame | None:
        """Frequency, gaps and length per series, as a GX suite over one row per series."""
        import great_expectations.expectations as gxe
        from great_expectations.expectations.expectation import FailureSeverity

        contract, config = self.contract, self.config
        if not len(out):
            return self.nothing_left()
        out, codes, names = _sort(out, contract)
        self.n_series = len(names)
        try:
            self.freq = infer_frequency(out, contract, self.utc_zone)
        except DataValidationError as error:
            self.add(_rule(error.rule, error.column, error.count, error.example))
            self.note = "declare contract.freq or provide regular timestamps"
            return None
        if self.zone is not None and not held_in_utc(self.freq):
            out[contract.timestamp] = wall_clock(out[contract.timestamp], self.zone)
            self.utc_zone = None
        summary, off_grid = _series_summary(out, codes, names, self.freq, contract)

        stamp = contract.timestamp
        checks = [
            gxe.ExpectColumnValuesToBeBetween(column="off_frequency_steps", max_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="gap_share", max_value=config.max_gap_share),
            gxe.ExpectColumnValuesToBeBetween(
                column="usable_steps",
                min_value=self.min_length,
                severity=FailureSeverity.WARNING,
            ),
        ]
        on_grid, gaps, length = self.gx().validate("series", summary, checks)
        series_codes = np.arange(len(names))
        bad_series = np.zeros(len(names), dtype=bool)

        # every step on the frequency: series with off-grid steps are irregular
        irregular = summary["off_frequency_steps"].to_numpy() > 0
        if on_grid.success and not irregular.any():
            self.add(_rule("on_frequency", stamp, 0, expectation=checks[0].expectation_type))
        else:
            first = np.flatnonzero(off_grid)[0]
            example = (
                f"{_render_stamp(out[stamp].iloc[first], self.utc_zone)} in series "
                f"{names[codes[first]]} is not on the '{self.freq}' grid"
            )
            self.series_rule(
                out, codes, irregular, "on_frequency", int(off_grid.sum()), example, checks[0]
            )
            bad_series |= irregular

        # gaps within the tolerated share
        missing = summary["missing_steps"].to_numpy()
        too_gappy = summary["gap_share"].to_numpy() > config.max_gap_share
        expectation = checks[1].expectation_type
        if gaps.success and not missing.any():
            self.add(_rule("frequency_gaps", stamp, 0, expectation=expectation))
        elif gaps.success or not too_gappy.any():
            example = _gap_example(summary, missing > 0, self.utc_zone)
            self.add(
                _rule(
                    "frequency_gaps",
                    stamp,
                    int(missing.sum()),
                    example,
                    action=TOLERATED,
                    expectation=expectation,
                )
            )
        else:
            example = _gap_example(summary, too_gappy, self.utc_zone)
            self.series_rule(
                out,
                codes,
                too_gappy,
                "frequency_gaps",
                int(missing[too_gappy].sum()),
                example,
                checks[1],
            )
            bad_series |= too_gappy
        if self.failed():
            return None

        # length: shorter series are excluded with a warning (an error if none remain)
        usable = summary["usable_steps"].to_numpy()
        short = (usable < self.min_length) & ~bad_series
        column = contract.series_id or stamp
        expectation = checks[2].expectation_type

        def length_rule(count: int, **details) -> RuleResult:
            return _rule("series_min_length", column, count, expectation=expectation, **details)

        if length.success and not short.any():
            self.add(length_rule(0))
        elif not (~bad_series & ~short).any():
            self.add(length_rule(int(short.sum()), example=_short_example(summary, short)))
            self.note = f"no series has the {self.min_length} steps needed" + (
                " after quarantine" if bad_series.any() else ""
            )
            return None
        elif short.any():
            self.excluded = {str(names[i]): int(usable[i]) for i in series_codes[short]}
            self.add(
                length_rule(
                    int(short.sum()), example=_short_example(summary, short), action=EXCLUDED
                )
            )
            if self.quarantine:
                self.set_aside(out, short[codes], "series_min_length", column)
        else:
            self.add(length_rule(0))
        keep = ~(bad_series | short)[codes]
        return out if keep.all() else out[keep]

    def series_rule(
        self,
        out: pd.DataFrame,
        codes: np.ndarray,
        series_mask: np.ndarray,
        rule: str,
        count: int,
        example: str,
        expectation: Any,
    ) -> None:
        """A series rule broken: fail the run, or quarantine every row of those series."""
        column = self.contract.timestamp
        kind = expectation.expectation_type
        if not self.quarantine:
            self.add(_rule(rule, column, count, example, expectation=kind))
            return
        self.add(_rule(rule, column, count, example, action=QUARANTINED, expectation=kind))
        self.set_aside(out, series_mask[codes], rule, column)

    def finish(self, out: pd.DataFrame) -> pd.DataFrame | None:
        if not len(out):
            return self.nothing_left()
        quarantined = self.n_quarantined
        if quarantined and quarantined > self.config.max_quarantine_share * len(self.frame):
            self.note = (
                f"quarantine policy: {quarantined} of {len(self.frame)} rows "
                f"({quarantined / len(self.frame):.1%}) broke rules, more than "
                f"max_quarantine_share={self.config.max_quarantine_share:g}; nothing was "
                "quarantined"
            )
            for result in self.results:
                if result.action == QUARANTINED:
                    result.action, result.success = FAILED, False
            return None
        target = self.contract.target
        if out[target].isna().any():  # tolerated missing targets: previous value, else next
            if self.contract.series_id is None:
                filled = out[target].ffill().bfill()
            else:
                grouped = out.groupby(self.contract.series_id, sort=False)[target]
                filled = grouped.ffill()
                filled = filled.groupby(out[self.contract.series_id], sort=False).bfill()
            out[target] = filled
        return out.reset_index(drop=True)

    def nothing_left(self) -> None:
        self.note = "quarantine would leave no rows; nothing was quarantined"
        for result in self.results:
            if result.action == QUARANTINED:
                result.action, result.success = FAILED, False
        return None


def _row_checks(
    contract: DataContract, config: ValidationConfig, *, instants: bool = False
) -> list[_Check]:
    """The row suite built from the contract and the configuration, in report order.

    ``instants``: the timestamps are tz-naive UTC instants (tz-aware input), not wall-clock time.
    """
    import great_expectations.expectations as gxe
    from great_expectations.expectations.expectation import FailureSeverity

    stamp, target = contract.timestamp, contract.target
    key = [c for c in (contract.series_id, stamp) if c]
    numbers = (target, *contract.numeric)
    max_chars = config.max_text_chars

    def nulls(column: str) -> Callable[[pd.DataFrame], np.ndarray]:
        return lambda f: f[column].isna().to_numpy()

    def infinite(column: str) -> Callable[[pd.DataFrame], np.ndarray]:
        return lambda f: np.abs(f[column].to_numpy()) > FINITE_BOUND

    def too_long(column: str) -> Callable[[pd.DataFrame], np.ndarray]:
        return lambda f: (f[column].str.len() > max_chars).to_numpy(dtype=bool, na_value=False)

    checks = [
        _Check("columns_present", c, gxe.ExpectColumnToExist(column=c), "table")
        for c in contract.all_columns
    ]
    checks += [
        _Check(
            "column_type", c, gxe.ExpectColumnValuesToBeInTypeList(column=c, type_list=[t]), "table"
        )
        for c, t in [*((c, "float64") for c in numbers), (stamp, "datetime64[ns]")]
    ]
    checks += [
        _Check("not_null", c, gxe.ExpectColumnValuesToNotBeNull(column=c), mask=nulls(c))
        for c in key
    ]
    tolerated = 1.0 - config.max_missing_target_share
    checks.append(
        _Check(
            "not_null",
            target,
            gxe.ExpectColumnValuesToNotBeNull(column=target, mostly=tolerated),
            "target_nulls",
            nulls(target),
        )
    )
    checks += [  # fails on +/-inf; nulls are skipped
        _Check(
            "finite",
            c,
            gxe.ExpectColumnValuesToBeBetween(
                column=c, min_value=-FINITE_BOUND, max_value=FINITE_BOUND
            ),
            mask=infinite(c),
            value=c,
        )
        for c in numbers
    ]
    unique = (
        gxe.ExpectCompoundColumnsToBeUnique(column_list=key)
        if len(key) > 1
        else gxe.ExpectColumnValuesToBeUnique(column=stamp)
    )
    checks.append(
        _Check(
            "unique_series_timestamp",
            ", ".join(key),
            unique,
            mask=lambda f: f.duplicated(key, keep=False).to_numpy(),
        )
    )
    if not config.allow_future_timestamps:
        now = (
            config.current_instant().tz_convert("UTC").tz_localize(None)
            if instants
            else config.current_time()
        )
        checks.append(
            _Check(
                "not_in_future",
                stamp,
                gxe.ExpectColumnValuesToBeBetween(column=stamp, max_value=now.to_pydatetime()),
                mask=lambda f: (f[stamp] > now).to_numpy(),
                value=stamp,
            )
        )
    checks += [
        _Check(
            "categorical_cardinality",
            c,
            gxe.ExpectColumnUniqueValueCountToBeBetween(
                column=c, max_value=config.max_categorical_cardinality
            ),
            "table",
        )
        for c in contract.categorical
    ]
    checks += [  # a warning in the Data Docs: longer text is truncated, not refused
        _Check(
            "text_max_length",
            c,
            gxe.ExpectColumnValueLengthsToBeBetween(
                column=c, max_value=max_chars, severity=FailureSeverity.WARNING
            ),
            "truncate",
            too_long(c),
        )
        for c in contract.text
    ]
    return checks


class _GX:
    """One ephemeral GX context per validation run, with a local Data Docs site."""

    SITE = "local_site"

    def __init__(self, docs_dir: Path | None) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        self.docs_dir = docs_dir
        # The context must exist before any suite: ExpectationSuite.add_expectation looks up the
        # active context (DataContextRequiredError otherwise).
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        if docs_dir is not None:  # the ephemeral context's own site is in a temporary directory
            self.context.update_data_docs_site(
                self.SITE,
                {
                    "class_name": "SiteBuilder",
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(Path(docs_dir).resolve()),
                    },
                },
            )
        self.source = self.context.data_sources.add_pandas("fusioncast")
        self.ran = False

    def validate(self, name: str, frame: pd.DataFrame, expectations: list[Any]) -> list[Any]:
        """Run ``expectations`` on ``frame`` (stored for Data Docs); results in the given order."""
        gx = self.gx
        suite = gx.ExpectationSuite(name=f"fusioncast_{name}")
        for order, expectation in enumerate(expectations):
            expectation.meta = {_ORDER_KEY: order}  # GX returns results grouped by column
            suite.add_expectation(expectation)
        suite = self.context.suites.add(suite)
        batch = self.source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=f"fusioncast_{name}", data=batch, suite=suite)
        )
        validation = definition.run(batch_parameters={"dataframe": frame}, result_format="BASIC")
        self.ran = True
        results = sorted(validation.results, key=lambda r: r.expectation_config.meta[_ORDER_KEY])
        for result in results:
            if result.exception_info and result.exception_info.get("raised_exception"):
                config = result.expectation_config
                raise RuntimeError(
                    f"great_expectations failed to evaluate {config.type} {config.kwargs}: "
                    f"{result.exception_info.get('exception_message')}"
                )
        return results

    def build_data_docs(self) -> str | None:
        if self.docs_dir is None or not self.ran:
            return None
        self.context.build_data_docs(site_names=[self.SITE])
        return str(self.docs_dir / "index.html")


# ---------------------------------------------------------------------------------------------
# Helpers


def _rule(
    rule: str,
    column: str,
    failing: int,
    example: object = None,
    *,
    action: str | None = None,
    expectation: str | None = None,
) -> RuleResult:
    failing = int(failing)
    action = action or (FAILED if failing else PASSED)
    return RuleResult(
        rule=rule,
        column=column,
        failing_count=failing,
        example=_render(example) if failing else None,
        success=action != FAILED,
        action=action,
        expectation=expectation,
    )


def _render(value: object) -> str | None:
    """One offending value as a short string for people (and JSON)."""
    if value is None:
        return None
    if isinstance(value, dict):
        text = ", ".join(f"{k}={_render(v)}" for k, v in value.items())
    elif isinstance(value, bytes):
        text = repr(value)
    else:
        text = str(value)
    return text if len(text) <= _EXAMPLE_CHARS else text[: _EXAMPLE_CHARS - 3] + "..."


def _render_stamp(value: object, utc_zone: str | None = None) -> str:
    """A timestamp for people: a date at midnight; held as UTC, shown in ``utc_zone``."""
    if isinstance(value, pd.Timestamp) and utc_zone is not None:
        value = value.tz_localize("UTC").tz_convert(utc_zone)
    if isinstance(value, pd.Timestamp) and value == value.normalize():
        return str(value.date())
    return str(value)


def _row_example(
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
    stamp = _render_stamp(row[contract.timestamp], utc_zone)
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


def _gap_example(
    summary: pd.DataFrame, series_mask: np.ndarray, utc_zone: str | None = None
) -> str:
    row = summary[series_mask].iloc[0]
    return (
        f"series {row['series']}: {int(row['missing_steps'])} of "
        f"{int(row['missing_steps'] + row['steps'])} steps missing "
        f"(first after {_render_stamp(row['first_gap_after'], utc_zone)})"
    )


def _short_example(summary: pd.DataFrame, series_mask: np.ndarray) -> str:
    row = summary[series_mask].iloc[0]
    return f"{row['series']} ({int(row['usable_steps'])} steps)"


def _raise_first(report: ValidationReport, note: str = "") -> None:
    failures = report.failures
    first = failures[0]
    others = failures[1:]
    detail = (
        f"{len(others)} other rule(s) failed too: "
        + "; ".join(f"{r.rule} on '{r.column}' ({r.failing_count})" for r in others)
        if others
        else "no other rule failed"
    )
    if note:
        detail = f"{note}; {detail}"
    if report.report_path:
        detail += f"; report: {report.report_path}"
    raise DataValidationError(
        first.rule, first.column, first.failing_count, detail=detail, example=first.example
    )


def _write_report(report: ValidationReport, report_dir: Path) -> None:
    path = report_dir / REPORT_FILE
    report.report_path = str(path)
    write_json(path, report.to_json())


def _write_quarantine(frame: pd.DataFrame, path: Path) -> None:
    """The set-aside rows as they came in (:func:`fusioncast.storage.write_parquet`)."""
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # raw values of mixed types: keep them as text
        frame = frame.copy()
        for column in frame.columns[[ptypes.is_object_dtype(t) for t in frame.dtypes]]:
            frame[column] = frame[column].map(lambda v: None if _is_missing(v) else str(v))
        table = pa.Table.from_pandas(frame, preserve_index=False)
    write_parquet(path, table)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT


def _or_none(mask: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool) if mask is None else mask


def _first_offender(values: pd.Series, bad: np.ndarray | pd.Series) -> object:
    return values[np.asarray(bad, dtype=bool)].iloc[0]


def _mixed_kinds(values: pd.Series) -> tuple[int, object]:
    """(count, example) of the values of the rarer kind in a column that mixes numbers and text."""
    if not ptypes.is_object_dtype(values):
        return 0, None
    kind = ptypes.infer_dtype(values, skipna=True)
    if kind not in ("mixed", "mixed-integer"):
        return 0, None
    is_text = values.map(lambda v: isinstance(v, str | bytes)).to_numpy(dtype=bool)  # failure path
    present = values.notna().to_numpy()
    text, other = present & is_text, present & ~is_text
    rarer = text if text.sum() <= other.sum() else other
    return int(rarer.sum()), _first_offender(values, rarer)


def _to_float(values: pd.Series) -> tuple[pd.Series | None, int, object]:
    """(values as float64, 0, None), or (None, count, example) when values are not numbers."""
    if ptypes.is_datetime64_any_dtype(values) or ptypes.is_timedelta64_dtype(values):
        present = values.notna()
        return None, int(present.sum()), values[present].iloc[0] if present.any() else None
    if ptypes.is_numeric_dtype(values):
        converted = values
    else:
        converted = pd.to_numeric(values.astype(object), errors="coerce")
        bad = converted.isna() & values.notna()
        if bad.any():
            return None, int(bad.sum()), _first_offender(values, bad)
    as_float = pd.Series(
        np.asarray(converted.to_numpy(dtype="float64", na_value=np.nan)),
        index=values.index,
        name=values.name,
    )
    return as_float, 0, None


def _holds_bytes(values: pd.Series) -> bool:
    return ptypes.is_object_dtype(values) and ptypes.infer_dtype(values, skipna=True) == "bytes"


def _decode_utf8(values: pd.Series) -> tuple[pd.Series, np.ndarray, object]:
    """Binary text as ``str``; invalid UTF-8 sequences are flagged (and replaced by U+FFFD)."""
    array = pa.array(values.to_numpy(dtype=object), type=pa.binary(), from_pandas=True)
    try:
        decoded = array.cast(pa.string()).to_numpy(zero_copy_only=False)
        bad = np.zeros(len(values), dtype=bool)
        example = None
    except pa.ArrowInvalid:  # failure path: find the offending values one by one
        bad = values.map(lambda v: isinstance(v, bytes) and not _is_utf8(v)).to_numpy(dtype=bool)
        decoded = values.map(
            lambda v: v.decode("utf-8", errors="replace") if isinstance(v, bytes) else None
        ).to_numpy(dtype=object)
        example = _first_offender(values, bad)
    return pd.Series(decoded, index=values.index, name=values.name).astype("str"), bad, example


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _to_text(values: pd.Series) -> tuple[pd.Series | None, int, object]:
    """(values as pandas ``str``, 0, None), or (None, count, example) for non-string values."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    if isinstance(values.dtype, pd.StringDtype):
        return values, 0, None
    kind = ptypes.infer_dtype(values, skipna=True)
    if kind not in ("string", "empty") and values.notna().any():
        is_text = values.map(lambda v: isinstance(v, str)).astype(bool)  # failure path only
        bad = values.notna() & ~is_text
        return None, int(bad.sum()), _first_offender(values, bad)
    return values.astype("str"), 0, None


def _sort(out: pd.DataFrame, contract: DataContract) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rows sorted by (series, timestamp), the series code of each row and the series ids."""
    timestamps = out[contract.timestamp].to_numpy()
    if contract.series_id is None:
        codes = np.zeros(len(out), dtype=np.int64)
        names = np.array([SINGLE_SERIES_ID], dtype=object)
        order = np.argsort(timestamps, kind="stable")
    else:
        codes, uniques = pd.factorize(out[contract.series_id], sort=True)
        names = np.asarray(uniques, dtype=object)
        order = np.lexsort((timestamps, codes))
    if np.array_equal(order, np.arange(len(out))):
        return out, codes, names
    return out.take(order), codes[order], names


def _series_summary(
    out: pd.DataFrame, codes: np.ndarray, names: np.ndarray, freq: str, contract: DataContract
) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per series (steps, missing steps, gap share, off-grid steps) and the off-grid rows.

    ``out`` is sorted by (series, timestamp) with unique timestamps per series. A step is on the
    grid of a fixed frequency (``D``, ``h``, ...) when it is a whole number of steps after the
    series' first timestamp; for calendar frequencies (``W-MON``, ``MS``, ``B``, ...) when it
    is on the offset.
    """
    stamps = out[contract.timestamp].to_numpy().astype("datetime64[ns]").view(np.int64)
    n = len(stamps)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    counts = np.diff(np.r_[starts, n])
    offset = pd.tseries.frequencies.to_offset(freq)
    if isinstance(offset, pd.offsets.Tick | pd.offsets.Day):
        step = pd.Timedelta(offset).value
        relative = stamps - np.repeat(stamps[starts], counts)
        off_grid = relative % step != 0
        index = relative // step
    else:
        low = offset.rollback(pd.Timestamp(stamps.min()))
        grid = pd.date_range(low, pd.Timestamp(stamps.max()), freq=offset).asi8
        position = np.clip(np.searchsorted(grid, stamps), 0, len(grid) - 1)
        off_grid = grid[position] != stamps
        index = position.astype(np.int64)
    ends = starts + counts - 1
    on_grid = np.add.reduceat((~off_grid).astype(np.int64), starts) if n else np.array([])
    span = index[ends] - index[starts] + 1
    missing = np.maximum(span - on_grid, 0)
    # the first step after which one is missing, per series (for the example)
    jump = np.r_[np.diff(index) > 1, False]
    jump[ends] = False
    first_jump = np.full(len(starts), -1, dtype=np.int64)
    hits = np.flatnonzero(jump)
    if len(hits):
        series_of_hit = np.repeat(np.arange(len(starts)), counts)[hits]
        unique_series, first_hit = np.unique(series_of_hit, return_index=True)
        first_jump[unique_series] = hits[first_hit]
    after = out[contract.timestamp].to_numpy()[np.where(first_jump >= 0, first_jump, starts)]
    observed = np.add.reduceat(out[contract.target].notna().to_numpy().astype(np.int64), starts)
    summary = pd.DataFrame(
        {
            "series": names[codes[starts]].astype(str),
            "steps": counts,
            "usable_steps": np.where(observed > 0, counts, 0),  # no target at all: unusable
            "missing_steps": missing,
            "gap_share": missing / np.maximum(span, 1),
            "off_frequency_steps": counts - on_grid,
            "first_gap_after": after,
        }
    )
    return summary, off_grid
