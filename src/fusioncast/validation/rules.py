"""Every validation rule, declared once, in the order the rules run.

Each :class:`~fusioncast.validation.rule.Rule` holds what the run needs (its check, its GX
expectation, what happens on failure) and what people read: the README's table of the rules is
:func:`readme_table` (``python -m fusioncast.validation`` prints it). A new rule is one more
declaration here, at the place in the order where it runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fusioncast.contract import DataContract
from fusioncast.validation import coerce, series
from fusioncast.validation.gx import expectations as gxe
from fusioncast.validation.gx import warning
from fusioncast.validation.rule import (
    TABLE,
    Context,
    Finding,
    OnFailure,
    Rule,
    SeriesFinding,
    Stage,
)

#: Values outside this range fail the ``finite`` rule; so do +/-inf.
FINITE_BOUND = 1e300


def _non_empty(frame: pd.DataFrame, contract: DataContract) -> Finding:
    return Finding(0 if len(frame) else 1)


def _unique_names(frame: pd.DataFrame, contract: DataContract) -> Finding:
    duplicated = list(dict.fromkeys(frame.columns[frame.columns.duplicated()]))
    return Finding(len(duplicated), column=", ".join(map(str, duplicated)) or TABLE)


def _present(frame: pd.DataFrame, contract: DataContract) -> Finding:
    missing = [c for c in contract.all_columns if c not in frame.columns]
    return Finding(len(missing), column=", ".join(missing) or TABLE)


def _nulls(frame: pd.DataFrame, column: str, ctx: Context) -> np.ndarray:
    return frame[column].isna().to_numpy()


def _not_null(ctx: Context, column: str) -> Any:
    if column != ctx.contract.target:
        return gxe().ExpectColumnValuesToNotBeNull(column=column)
    tolerated = 1.0 - ctx.config.max_missing_target_share
    return gxe().ExpectColumnValuesToNotBeNull(column=column, mostly=tolerated)


def _none_per_series(ctx: Context, column: str) -> Any:
    """No series counts an offending step (``column``: the per-series count)."""
    return gxe().ExpectColumnValuesToBeBetween(column=column, max_value=0)


def _future(ctx: Context, column: str) -> Any:
    if ctx.config.allow_future_timestamps:
        return None  # not checked in this run
    now = ctx.now().to_pydatetime()
    return gxe().ExpectColumnValuesToBeBetween(column=column, max_value=now)


def _too_long(frame: pd.DataFrame, column: str, ctx: Context) -> np.ndarray:
    too_long = frame[column].str.len() > ctx.config.max_text_chars
    return too_long.to_numpy(dtype=bool, na_value=False)


def _static_values(view: series.SeriesView, column: str, ctx: Context) -> SeriesFinding:
    """Series whose static categorical takes more than one value (a missing value is one);
    each row that differs from the series' first one counts."""
    values = view.frame[column]
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    pairs = np.unique(view.codes.astype(np.int64) * (len(uniques) + 1) + codes)
    distinct = np.bincount(pairs // (len(uniques) + 1), minlength=len(view.names))
    differs = codes != codes[view.starts][view.codes]
    weight = np.bincount(view.codes[differs], minlength=len(view.names))

    def example(series_mask: np.ndarray) -> str:
        first = int(np.flatnonzero(series_mask)[0])
        taken = pd.unique(values[view.codes == first])
        shown = ", ".join(map(str, taken[:3])) + (", ..." if len(taken) > 3 else "")
        return f"series {view.names[first]}: {column} takes {len(taken)} values ({shown})"

    return SeriesFinding(f"distinct_{column}", distinct, distinct > 1, weight, example)


RULES: tuple[Rule, ...] = (
    Rule(
        "parquet_files",
        "read",
        ("table",),
        "the path exists and is a Parquet file, or a directory with at least one "
        "`*.parquet`/`*.parq` file",
        OnFailure.IGNORE,
    ),
    Rule(
        "parquet_readable",
        "read",
        ("table",),
        "every file is Parquet that pyarrow reads (count: the unreadable files; example: the "
        "first, with pyarrow's reason)",
    ),
    Rule(
        "parquet_columns",
        "read",
        ("named",),
        "every file of a dataset has the contract columns the others have (count: the files "
        "lacking one; example: a file and what it lacks)",
    ),
    Rule(
        "timestamp_timezone",
        "read",
        ("timestamp",),
        "the files of a dataset have timestamps in one time zone, or all without one (count: the "
        "files in another zone than most; example: a file and its zone)",
    ),
    Rule(
        "parquet_schema",
        "read",
        ("named",),
        "the files of a dataset agree on the types of the contract columns (numbers of different "
        "widths are widened)",
    ),
    Rule("non_empty", "table", ("table",), "at least one row", check=_non_empty),
    Rule(
        "unique_column_names",
        "table",
        ("named",),
        "no column named twice (in a Parquet schema too)",
        check=_unique_names,
    ),
    Rule(
        "columns_present",
        "table",
        ("contract",),
        "every contract column present (recorded in the GX rows suite too)",
        check=_present,
        expectation=lambda ctx, c: gxe().ExpectColumnToExist(column=c),
    ),
    Rule(
        "categorical_type",
        "type",
        ("series_id", "categorical"),
        "a categorical column does not mix numbers and strings",
        check=coerce.mixed_kinds,
    ),
    Rule(
        "timestamp_parses",
        "type",
        ("timestamp",),
        "timestamps parse (numbers are refused: the unit is ambiguous)",
        OnFailure.PER_ROW,
        check=coerce.timestamps,
        note="a column of numbers: run stops",
    ),
    Rule(
        "numeric_type",
        "type",
        ("target", "numeric"),
        "target and covariates are numbers (a column mixing numbers and strings is refused, "
        "with an example value)",
        check=coerce.numbers,
    ),
    Rule("text_type", "type", ("text",), "text is text", check=coerce.text),
    Rule(
        "text_utf8",
        "type",
        ("text",),
        "binary text is valid UTF-8 (and is decoded)",
        OnFailure.PER_ROW,
        check=coerce.utf8,
    ),
    Rule(
        "column_type",
        "row",
        ("target", "numeric", "timestamp"),
        "the types handed on: numbers as `float64`, timestamps as `datetime64[ns]`",
        expectation=lambda ctx, c: gxe().ExpectColumnValuesToBeInTypeList(
            column=c, type_list=["datetime64[ns]" if c == ctx.contract.timestamp else "float64"]
        ),
    ),
    Rule(
        "not_null",
        "row",
        ("series_id", "timestamp", "target"),
        "no missing values; up to `max_missing_target_share` of missing targets is tolerated "
        "and filled (previous value of the series, the next one at its start)",
        OnFailure.FILL,
        check=_nulls,
        expectation=_not_null,
    ),
    Rule(
        "finite",
        "row",
        ("target", "numeric"),
        "no ±inf (missing covariates are allowed: they scale to the mean)",
        OnFailure.PER_ROW,
        check=lambda f, c, ctx: np.abs(f[c].to_numpy()) > FINITE_BOUND,
        expectation=lambda ctx, c: gxe().ExpectColumnValuesToBeBetween(  # nulls are skipped
            column=c, min_value=-FINITE_BOUND, max_value=FINITE_BOUND
        ),
        shows_value=True,
    ),
    Rule(
        "not_in_future",
        "row",
        ("timestamp",),
        "no step later than now in `timezone` (tz-aware steps: than the current instant; "
        "not checked with `allow_future_timestamps`)",
        OnFailure.PER_ROW,
        check=lambda f, c, ctx: (f[c] > ctx.now()).to_numpy(),
        expectation=_future,
        shows_value=True,
    ),
    Rule(
        "categorical_cardinality",
        "row",
        ("categorical",),
        "at most `max_categorical_cardinality` distinct values",
        expectation=lambda ctx, c: gxe().ExpectColumnUniqueValueCountToBeBetween(
            column=c, max_value=ctx.config.max_categorical_cardinality
        ),
    ),
    Rule(
        "text_max_length",
        "row",
        ("text",),
        "at most `max_text_chars` characters",
        OnFailure.TRUNCATE,
        check=_too_long,
        expectation=lambda ctx, c: gxe().ExpectColumnValueLengthsToBeBetween(
            column=c, max_value=ctx.config.max_text_chars, severity=warning()
        ),
        repair=lambda values, ctx: values.str.slice(0, ctx.config.max_text_chars),
    ),
    Rule(
        "unique_series_timestamp",
        "key",
        ("key",),
        "one row per series and step (every copy is offending; tz-aware steps are instants)",
        OnFailure.PER_ROW,
        check=series.repeated_steps,
        expectation=_none_per_series,
    ),
    Rule(
        "regular_frequency",
        "series",
        ("timestamp",),
        "without a declared `freq`, the series (their first steps) have a frequency, the one "
        "most of them agree on is taken",
        stop_note="declare contract.freq or provide regular timestamps",
    ),
    Rule(
        "on_frequency",
        "series",
        ("timestamp",),
        "every step on the grid of the declared (or inferred) frequency",
        OnFailure.PER_SERIES,
        check=series.on_frequency,
        expectation=_none_per_series,
    ),
    Rule(
        "frequency_gaps",
        "series",
        ("timestamp",),
        "missing steps between a series' first and last step, at most `max_gap_share` of them "
        "(counted; tolerated gaps are not filled)",
        OnFailure.TOLERATE,
        check=series.gaps,
        expectation=lambda ctx, c: gxe().ExpectColumnValuesToBeBetween(
            column=c, max_value=ctx.config.max_gap_share
        ),
    ),
    Rule(
        "static_per_series",
        "series",
        ("static_categorical",),
        "a static categorical takes one value per series (the model reads it from the series' "
        "first step)",
        OnFailure.PER_SERIES,
        check=_static_values,
        expectation=lambda ctx, c: gxe().ExpectColumnValuesToBeBetween(column=c, max_value=1),
    ),
    Rule(
        "series_min_length",
        "series",
        ("series",),
        "at least lookback + horizon steps (retrain) or lookback (forecast)",
        OnFailure.EXCLUDE,
        check=series.length,
        expectation=lambda ctx, c: gxe().ExpectColumnValuesToBeBetween(
            column=c, min_value=ctx.min_length, severity=warning()
        ),
        stop_note="no series has the {ctx.min_length} steps needed",
    ),
    Rule(
        "within_scale",
        "forecast",
        ("target", "numeric"),
        "no value more than 1e6 of its series' training standard deviations from its training "
        "mean (forecast: against the model's scaler, before predicting; retrain: the steps after "
        "the training span)",
        OnFailure.PER_SERIES,
        note="retrain: run stops",
    ),
    Rule(
        "forecast_finite",
        "forecast",
        ("forecast",),
        "every published value is finite (checked where the forecast table is built)",
        OnFailure.PER_SERIES,
    ),
)

BY_NAME = {rule.name: rule for rule in RULES}


def stage(name: Stage) -> list[Rule]:
    """The rules of one stage, in order."""
    return [rule for rule in RULES if rule.stage == name]


def readme_table() -> str:
    """The README's table of the rules (``### Validation``), one row per rule, in order."""
    rows = [rule.readme_row() for rule in RULES]
    return "\n".join(["| rule | column | checks | on failure |", "|---|---|---|---|", *rows])
