"""Coercion of input types: each check reads one column and returns its values converted.

A check returns a :class:`~fusioncast.validation.rule.Finding`: a ``count`` when the column as a
whole is not of its type (the run stops), a ``mask`` of rows whose value is bad, or nothing to
report (None) when the rule does not apply to the column. Values are looked at one by one only
on the failure path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api import types as ptypes

from fusioncast.timestamps import parse_timestamps
from fusioncast.validation.rule import Context, Finding


def mixed_kinds(values: pd.Series, ctx: Context) -> Finding:
    """The values of the rarer kind in a column that mixes numbers and text."""
    if not ptypes.is_object_dtype(values):
        return Finding()
    kind = ptypes.infer_dtype(values, skipna=True)
    if kind not in ("mixed", "mixed-integer"):
        return Finding()
    is_text = values.map(lambda v: isinstance(v, str | bytes)).to_numpy(dtype=bool)  # failure path
    present = values.notna().to_numpy()
    text, other = present & is_text, present & ~is_text
    rarer = text if text.sum() <= other.sum() else other
    return Finding(int(rarer.sum()), _first_offender(values, rarer))


def timestamps(values: pd.Series, ctx: Context) -> Finding:
    """Parsed timestamps (tz-aware when the values carry a zone) and the values that do not parse.

    Numbers are a type error of the column (an epoch or a year is ambiguous).
    """
    try:
        parsed, bad, example = parse_timestamps(values)
    except (OverflowError, ValueError) as error:  # e.g. out of the ns range (1677..2262)
        return Finding(1, str(error))
    if parsed is None:
        return Finding(int(bad.sum()), example)
    return Finding(mask=bad, example=example, values=parsed)


def numbers(values: pd.Series, ctx: Context) -> Finding:
    """Values as float64, or the count of values that are not numbers."""
    if ptypes.is_datetime64_any_dtype(values) or ptypes.is_timedelta64_dtype(values):
        present = values.notna()
        return Finding(int(present.sum()), values[present].iloc[0] if present.any() else None)
    if values.dtype == np.float64:  # as handed on: no copy
        return Finding(values=values)
    if ptypes.is_numeric_dtype(values):
        converted = values
    else:
        converted = pd.to_numeric(values.astype(object), errors="coerce")
        bad = converted.isna() & values.notna()
        if bad.any():
            return Finding(int(bad.sum()), _first_offender(values, bad))
    as_float = pd.Series(
        np.asarray(converted.to_numpy(dtype="float64", na_value=np.nan)),
        index=values.index,
        name=values.name,
    )
    return Finding(values=as_float)


def text(values: pd.Series, ctx: Context) -> Finding:
    """Values as pandas ``str`` (a categorical of strings: as a categorical of ``str``), or the
    count of values that are not strings.

    Binary values pass unchanged: decoding them is rule ``text_utf8``'s (:func:`utf8`).
    """
    if holds_bytes(values):
        return Finding()
    if isinstance(values.dtype, pd.CategoricalDtype):
        if ptypes.infer_dtype(values.cat.categories, skipna=True) in ("string", "empty"):
            return Finding(values=categories(values, text=True))  # each distinct text once
        values = values.astype(object)
    if isinstance(values.dtype, pd.StringDtype):
        return Finding(values=values)
    kind = ptypes.infer_dtype(values, skipna=True)
    if kind not in ("string", "empty") and values.notna().any():
        is_text = values.map(lambda v: isinstance(v, str)).astype(bool)  # failure path only
        bad = values.notna() & ~is_text
        return Finding(int(bad.sum()), _first_offender(values, bad))
    return Finding(values=values.astype("str"))


def categories(values: pd.Series, *, text: bool) -> pd.Series:
    """``values`` as a pandas categorical whose categories are sorted (so that sorting by the
    column sorts by value); ``text``: the categories as ``str`` (a series id is text, whatever
    its type in the file). Each distinct value is held once: the codes are 1 to 4 bytes a row.
    """
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return (values.astype("str") if text else values).astype("category")
    names = values.cat.categories
    if text and not isinstance(names.dtype, pd.StringDtype):
        values = values.cat.rename_categories(names.astype("str"))
        names = values.cat.categories
    if names.is_monotonic_increasing:
        return values
    return values.cat.reorder_categories(names.sort_values())


def utf8(values: pd.Series, ctx: Context) -> Finding | None:
    """Binary text decoded as ``str``; invalid UTF-8 is flagged (and replaced by U+FFFD).

    Not applicable (None) to a column that holds no bytes.
    """
    if not holds_bytes(values):
        return None
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
    as_text = pd.Series(decoded, index=values.index, name=values.name).astype("str")
    return Finding(mask=bad, example=example, values=as_text)


def holds_bytes(values: pd.Series) -> bool:
    return ptypes.is_object_dtype(values) and ptypes.infer_dtype(values, skipna=True) == "bytes"


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _first_offender(values: pd.Series, bad: np.ndarray | pd.Series) -> object:
    return values[np.asarray(bad, dtype=bool)].iloc[0]
