"""Validation of an input frame against the data contract.

Cheap structural checks and type normalisation run in pandas; the row-level rules run as a
Great Expectations (GX Core 1.x) suite built from the contract, on an ephemeral context. Every
rule ends up as one :class:`RuleResult` row of a :class:`ValidationReport`; the first failing rule
is raised as a :class:`~fusioncast.errors.DataValidationError`, whose message also says how many
other rules failed.

Great Expectations is imported inside :func:`validate_frame` (its import takes seconds).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from fusioncast.contract import SINGLE_SERIES_ID, DataContract, write_json
from fusioncast.errors import ConfigError, DataValidationError

REPORT_VERSION = 1
REPORT_FILE = "validation.json"

#: Values outside this range fail ``expect_column_values_to_be_between``; so do +/-inf.
FINITE_BOUND = 1e300
#: The frequency of a series is inferred from its first steps only.
FREQ_STEPS = 50
#: At most this many series (evenly spread over the sorted ids) vote on the frequency.
FREQ_MAX_SERIES = 200

_TABLE = "*"  # the "column" of rules about the whole table
_EXAMPLE_CHARS = 200
_ORDER_KEY = "fusioncast_order"


@dataclass
class RuleResult:
    """One row of the report: a rule, the column(s) it is about and how many rows broke it."""

    rule: str
    column: str
    failing_count: int
    example: str | None
    success: bool


@dataclass
class ValidationReport:
    n_rows: int
    n_series: int
    freq: str | None  # None only in the report of a failed validation
    results: list[RuleResult] = field(default_factory=list)
    report_path: str | None = None

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.results if not r.success]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION,
            "success": self.success,
            "n_rows": self.n_rows,
            "n_series": self.n_series,
            "freq": self.freq,
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
                "status": "passed" if r.success else "failed",
            }
            for r in self.results
        ]


def validate_frame(
    frame: pd.DataFrame,
    contract: DataContract,
    *,
    min_length: int = 1,
    report_dir: Path | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Check ``frame`` against ``contract``; return it normalised and sorted, with the report.

    The returned frame keeps every input column; the series id is of pandas ``str`` dtype, the
    timestamp tz-naive ``datetime64[ns]`` (tz-aware input keeps its wall-clock time; mixed UTC
    offsets are converted to UTC), target and numeric covariates ``float64``, text columns
    ``str``. Rows are sorted by (series id, timestamp) with a fresh RangeIndex; the input frame
    is left untouched. ``report_dir/validation.json`` is written whether or not validation passes.

    Raises:
        DataValidationError: for the first rule that failed; its message says how many others
            failed too.
        ConfigError: for ``min_length < 1``.
    """
    if min_length < 1:
        raise ConfigError(f"min_length must be at least 1, got {min_length}")
    results: list[RuleResult] = []
    out, n_series, freq = _check(frame, contract, min_length, results)
    report = ValidationReport(n_rows=len(frame), n_series=n_series, freq=freq, results=results)
    if report_dir is not None:
        path = Path(report_dir) / REPORT_FILE
        write_json(path, report.to_json())
        report.report_path = str(path)
    if out is None or not report.success:
        _raise_first(report)
    return out, report


def _check(
    frame: pd.DataFrame, contract: DataContract, min_length: int, results: list[RuleResult]
) -> tuple[pd.DataFrame | None, int, str | None]:
    """Run the rules stage by stage, appending to ``results``; stop after a stage that failed.

    Returns the normalised, sorted frame (None when a rule failed), the series count (0 when it
    was not reached) and the frequency (None when it was not reached).
    """

    def failed() -> bool:
        return not all(r.success for r in results)

    # 1. structure: pandas only, GX cannot run on such a frame
    results.append(_rule("non_empty", _TABLE, 0 if len(frame) else 1))
    if failed():
        return None, 0, None
    duplicated = list(dict.fromkeys(frame.columns[frame.columns.duplicated()]))
    results.append(
        _rule("unique_column_names", ", ".join(map(str, duplicated)) or _TABLE, len(duplicated))
    )
    if failed():
        return None, 0, None
    missing = [c for c in contract.all_columns if c not in frame.columns]
    results.append(_rule("columns_present", ", ".join(missing) or _TABLE, len(missing)))
    if failed():
        return None, 0, None

    # 2. types: every column is checked, so one run names every type problem
    # Copy-on-write: a lazy copy; assigning columns leaves the caller's frame alone. A RangeIndex
    # keeps the boolean masks below aligned even when the input index has duplicate labels.
    out = frame.reset_index(drop=True)
    if contract.series_id is not None:
        out[contract.series_id] = out[contract.series_id].astype("str")
    checks = [(contract.timestamp, _parse_timestamps)]
    checks += [(column, _to_float) for column in (contract.target, *contract.numeric)]
    checks += [(column, _to_text) for column in contract.text]
    for column, convert in checks:
        values, result = convert(out[column], column)
        results.append(result)
        if values is not None:
            out[column] = values
    if failed():
        return None, 0, None

    # 3. row-level rules, as a GX suite built from the contract
    results.extend(_run_suite(out, contract))

    # 4. series length
    if contract.series_id is None:
        lengths = pd.Series([len(out)], index=[SINGLE_SERIES_ID])
    else:
        lengths = out[contract.series_id].value_counts(sort=False)
    short = lengths[lengths < min_length].sort_index()
    example = short.index[0] if len(short) else None
    column = contract.series_id or contract.timestamp
    results.append(_rule("series_min_length", column, len(short), example))
    if failed():
        return None, len(lengths), None

    # 5. frequency
    out = _sorted(out, contract)
    try:
        freq = infer_frequency(out, contract)
    except DataValidationError as error:
        results.append(_rule(error.rule, error.column, error.count, error.example))
        return None, len(lengths), None
    results.append(_rule("regular_frequency", contract.timestamp, 0))
    return out, len(lengths), freq


def infer_frequency(frame: pd.DataFrame, contract: DataContract) -> str:
    """The contract's frequency, or the one most series agree on (``pd.infer_freq``).

    Each voting series contributes its first ``FREQ_STEPS`` steps; at most ``FREQ_MAX_SERIES``
    series (with at least three rows) vote, evenly spread over the sorted series ids.
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
            with pd.option_context("future.infer_freq_returns_offset", True):
                offset = pd.infer_freq(pd.DatetimeIndex(group["t"]))
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


def _rule(rule: str, column: str, failing: int, example: object = None) -> RuleResult:
    failing = int(failing)
    return RuleResult(
        rule=rule,
        column=column,
        failing_count=failing,
        example=_render(example) if failing else None,
        success=failing == 0,
    )


def _render(value: object) -> str | None:
    """One offending value as a short string for people (and JSON)."""
    if value is None:
        return None
    if isinstance(value, dict):
        text = ", ".join(f"{k}={_render(v)}" for k, v in value.items())
    else:
        text = str(value)
    return text if len(text) <= _EXAMPLE_CHARS else text[: _EXAMPLE_CHARS - 3] + "..."


def _raise_first(report: ValidationReport) -> None:
    failures = report.failures
    first = failures[0]
    others = failures[1:]
    detail = (
        f"{len(others)} other rule(s) failed too: "
        + "; ".join(f"{r.rule} on '{r.column}' ({r.failing_count})" for r in others)
        if others
        else "no other rule failed"
    )
    if report.report_path:
        detail += f"; report: {report.report_path}"
    raise DataValidationError(
        first.rule, first.column, first.failing_count, detail=detail, example=first.example
    )


def _first_offender(values: pd.Series, bad: np.ndarray | pd.Series) -> object:
    return values[np.asarray(bad, dtype=bool)].iloc[0]


def _parse_timestamps(values: pd.Series, column: str) -> tuple[pd.Series | None, RuleResult]:
    """Timestamps as tz-naive ``datetime64[ns]``; values that are present but do not parse fail."""
    if ptypes.is_numeric_dtype(values) and not ptypes.is_bool_dtype(values):
        present = int(values.notna().sum())
        if present:  # epoch numbers or years are ambiguous: refuse rather than guess a unit
            return None, _rule("timestamp_parses", column, present, values.dropna().iloc[0])
    try:
        parsed = _to_datetime(values)
        bad = parsed.isna() & values.notna()
        if bad.any():  # a second, slower pass for formats other than the first value's
            parsed[bad] = _to_datetime(values[bad], format="mixed")
            bad = parsed.isna() & values.notna()
    except (OverflowError, ValueError) as error:  # e.g. out of the nanosecond range (1677..2262)
        return None, _rule("timestamp_parses", column, 1, str(error))
    if bad.any():
        return None, _rule("timestamp_parses", column, int(bad.sum()), _first_offender(values, bad))
    return parsed, _rule("timestamp_parses", column, 0)


def _to_datetime(values: pd.Series, **kwargs: Any) -> pd.Series:
    """Parse to tz-naive ``datetime64[ns]``.

    Values in one time zone keep their wall-clock time (daily data stays at midnight); strings with
    mixed UTC offsets are converted to UTC first.
    """
    if ptypes.is_datetime64_any_dtype(values):
        parsed = values
    else:
        try:
            parsed = pd.to_datetime(values, errors="coerce", **kwargs)
        except (ValueError, TypeError):  # mixed UTC offsets: convert to UTC
            parsed = pd.to_datetime(values, errors="coerce", utc=True, **kwargs)
        if not ptypes.is_datetime64_any_dtype(parsed):  # object of mixed-offset Timestamps
            parsed = pd.to_datetime(parsed, errors="coerce", utc=True)
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(None)
    return parsed.astype("datetime64[ns]")


def _to_float(values: pd.Series, column: str) -> tuple[pd.Series | None, RuleResult]:
    """A numeric column as float64; strings that do not parse as numbers fail."""
    if ptypes.is_numeric_dtype(values):
        converted = values
    elif ptypes.is_datetime64_any_dtype(values) or ptypes.is_timedelta64_dtype(values):
        present = int(values.notna().sum())
        return None, _rule("numeric_type", column, present, values.dropna().iloc[0])
    else:
        converted = pd.to_numeric(values.astype(object), errors="coerce")
        bad = converted.isna() & values.notna()
        if bad.any():
            return None, _rule("numeric_type", column, int(bad.sum()), _first_offender(values, bad))
    as_float = pd.Series(
        np.asarray(converted.to_numpy(dtype="float64", na_value=np.nan)),
        index=values.index,
        name=values.name,
    )
    return as_float, _rule("numeric_type", column, 0)


def _to_text(values: pd.Series, column: str) -> tuple[pd.Series | None, RuleResult]:
    """A text column as pandas ``str`` dtype; present values that are not strings fail."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    if isinstance(values.dtype, pd.StringDtype):
        return values, _rule("text_type", column, 0)
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind not in ("string", "empty") and values.notna().any():
        is_text = values.map(lambda v: isinstance(v, str)).astype(bool)  # failure path only
        bad = values.notna() & ~is_text
        return None, _rule("text_type", column, int(bad.sum()), _first_offender(values, bad))
    return values.astype("str"), _rule("text_type", column, 0)


def _sorted(frame: pd.DataFrame, contract: DataContract) -> pd.DataFrame:
    timestamps = frame[contract.timestamp].to_numpy()
    if contract.series_id is None:
        order = np.argsort(timestamps, kind="stable")
    else:
        codes, _ = pd.factorize(frame[contract.series_id], sort=True)
        order = np.lexsort((timestamps, codes))
    if np.array_equal(order, np.arange(len(frame))):
        return frame.reset_index(drop=True)
    return frame.take(order).reset_index(drop=True)


def _run_suite(frame: pd.DataFrame, contract: DataContract) -> list[RuleResult]:
    """Build the expectation suite from the contract, run it on ``frame``, one result per rule."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # The context must exist before the suite: ExpectationSuite.add_expectation looks up the
    # active context (DataContextRequiredError otherwise). One fresh context per run.
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)

    expectations: list[Any] = [gxe.ExpectColumnToExist(column=c) for c in contract.all_columns]
    if contract.series_id is not None:
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=contract.series_id))
    expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=contract.timestamp))
    expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=contract.target))
    if contract.series_id is not None:
        key = [contract.series_id, contract.timestamp]
        expectations.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=key))
    else:
        expectations.append(gxe.ExpectColumnValuesToBeUnique(column=contract.timestamp))
    for column in (contract.target, *contract.numeric):  # fails on +/-inf; nulls are skipped
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=column, min_value=-FINITE_BOUND, max_value=FINITE_BOUND
            )
        )
    suite = gx.ExpectationSuite(name="fusioncast_contract")
    for order, expectation in enumerate(expectations):
        expectation.meta = {_ORDER_KEY: order}  # GX returns results grouped by column, not in order
        suite.add_expectation(expectation)

    batch = (
        context.data_sources.add_pandas("fusioncast")
        .add_dataframe_asset("input")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    validation = batch.validate(suite, result_format="BASIC")

    rows: list[tuple[int, RuleResult]] = []
    for result in validation.results:
        config = result.expectation_config
        if result.exception_info and result.exception_info.get("raised_exception"):
            raise RuntimeError(
                f"great_expectations failed to evaluate {config.type} {config.kwargs}: "
                f"{result.exception_info.get('exception_message')}"
            )
        kwargs = config.kwargs
        column = kwargs.get("column") or ", ".join(kwargs.get("column_list", []))
        details = result.result or {}
        failing = details.get("unexpected_count", 0 if result.success else 1)
        if not result.success and not failing:
            failing = 1
        partial = details.get("partial_unexpected_list") or []
        rows.append(
            (
                config.meta[_ORDER_KEY],
                RuleResult(
                    rule=config.type,
                    column=column,
                    failing_count=int(failing) if not result.success else 0,
                    example=None if result.success or not partial else _render(partial[0]),
                    success=bool(result.success),
                ),
            )
        )
    return [row for _, row in sorted(rows, key=lambda pair: pair[0])]
