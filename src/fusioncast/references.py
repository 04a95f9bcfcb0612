"""Reference forecasts: forecasts from outside the model that a dataset may carry beside it.

A dataset at ``data_path`` may hold Parquet files of forecasts in :func:`reference_dir`, a folder
whose name starts with ``_`` so that dataset readers skip it: one row per series, forecast origin
and horizon step, with the forecasts' ``series_id``, ``forecast_origin``, ``horizon_step`` and
``forecast``, plus ``reference``, the reference's name (other columns are not read). Origins are
read like the input's timestamps: in the input's time zone when it has one (a tz-naive origin is
wall-clock time there), else as wall-clock time. The demo writes two
(:mod:`fusioncast.demo.limit`).

A run scores each reference on the test windows of its model that the reference forecasts at every
step of the model's horizon, on the model's scale, as rows of the metrics table whose ``model`` is
the reference's name and whose ``reference`` column is true
(:func:`fusioncast.evaluate.evaluate_model`). A reference is never a candidate: the promotion gate
and the registry read the model and the last value by name.

Two names mean more: with :data:`LIMIT` (the best forecast knowable at the origin) and
:data:`NO_TEXT_LIMIT` (the same knowing no text), a run reports the share of the knowable text gain
its model captures and its MSE over the limit's (:func:`limit_figures`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api import types as ptypes

from fusioncast import storage
from fusioncast.contract import ForecastColumn as F
from fusioncast.errors import ConfigError, DataValidationError
from fusioncast.timestamps import UTC, held_in_utc, wall_clock
from fusioncast.validation.reading import HIDDEN_PREFIXES, PARQUET_SUFFIXES

#: The column of a reference file that names its reference.
REFERENCE = "reference"
COLUMNS = (F.SERIES_ID, F.FORECAST_ORIGIN, F.HORIZON_STEP, F.FORECAST, REFERENCE)
#: Names of the two references the report compares the model with.
LIMIT = "knowable limit"
NO_TEXT_LIMIT = "knowable limit without text"
#: Rule of every problem with reference files (column: the column at fault, count: its rows).
RULE = "reference_forecasts"


def reference_dir(data_path: str | Path) -> Path:
    """Where the reference forecasts of the dataset at ``data_path`` are: ``_reference/`` in a
    dataset directory, ``_<stem>_reference/`` beside a single ``.parquet`` file. Both names start
    with ``_``, so a reader of the dataset (or of the folder holding the file) skips them."""
    path = Path(data_path)
    if path.suffix == ".parquet":
        return path.parent / f"_{path.stem}_reference"
    return path / "_reference"


def read_reference_forecasts(data_path: str | Path) -> pd.DataFrame | None:
    """Every reference file beside the dataset at ``data_path`` (its Parquet files, by name), in
    one frame as stored; ``None`` when there is none.

    Raises:
        DataValidationError: ``reference_forecasts`` when a file is not Parquet, lacks a column,
            holds a forecast or step that is not a number or an origin that is not a timestamp,
            or repeats a (reference, series, origin, step).
        WorkspaceError: a file cannot be read.
    """
    directory = reference_dir(data_path)
    with storage.failures_name(directory, "read"):
        paths = sorted(
            p
            for p in (directory.iterdir() if directory.is_dir() else ())
            if p.suffix.lower() in PARQUET_SUFFIXES and not p.name.startswith(HIDDEN_PREFIXES)
        )
        frames = [_read(p) for p in paths]
    if not frames:
        return None
    references = pd.concat(frames, ignore_index=True)
    keys = [REFERENCE, F.SERIES_ID, F.FORECAST_ORIGIN, F.HORIZON_STEP]
    repeated = references.duplicated(keys, keep=False)
    if repeated.any():
        raise DataValidationError(
            RULE,
            ", ".join(keys),
            int(repeated.sum()),
            f"a reference forecasts a series, origin and step once (in {directory})",
            references.loc[repeated, keys].iloc[0].to_dict(),
        )
    return references


def _read(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except (pa.ArrowException, ValueError) as error:  # not Parquet; a disk error stays OSError
        raise DataValidationError(RULE, "*", 1, f"{path} is not a Parquet file ({error})") from None
    missing = [c for c in COLUMNS if c not in frame]
    if missing:
        raise DataValidationError(
            RULE, ", ".join(missing), len(frame), f"{path} has no such column; it needs {COLUMNS}"
        )
    for column, is_type in (
        (F.FORECAST, ptypes.is_numeric_dtype),
        (F.HORIZON_STEP, ptypes.is_integer_dtype),
        (F.FORECAST_ORIGIN, ptypes.is_datetime64_any_dtype),
    ):
        if not is_type(frame[column]) or ptypes.is_bool_dtype(frame[column]):
            raise DataValidationError(
                RULE, column, len(frame), f"{path} holds {frame[column].dtype} values there"
            )
    return frame


def held_origins(origins: pd.Series, zone: str | None, freq: str | None) -> pd.Series:
    """Forecast origins of a reference as validation holds the input's timestamps
    (:mod:`fusioncast.timestamps`), given the input's zone and frequency."""
    own = getattr(origins.dtype, "tz", None)
    if zone is None:
        return origins.dt.tz_localize(None) if own is not None else origins
    if own is None:
        origins = origins.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    utc = origins.dt.tz_convert(UTC).dt.tz_localize(None)
    return utc if freq and held_in_utc(freq) else wall_clock(utc, zone)


def align_references(
    references: pd.DataFrame, series: np.ndarray, origin_times: np.ndarray, horizon: int
) -> dict[str, np.ndarray]:
    """Each reference's forecasts for the windows ending at ``origin_times`` of ``series``:
    ``[B, horizon]`` float64, NaN where it has no (finite) forecast."""
    windows = pd.DataFrame(
        {
            F.SERIES_ID: np.asarray(series).astype(str),
            F.FORECAST_ORIGIN: pd.DatetimeIndex(origin_times).as_unit("ns"),
            "window": np.arange(len(series)),
        }
    )
    rows = references[references[F.HORIZON_STEP].between(1, horizon)]
    rows = rows.assign(
        **{
            F.SERIES_ID: rows[F.SERIES_ID].astype(str),
            F.FORECAST_ORIGIN: rows[F.FORECAST_ORIGIN].astype("datetime64[ns]"),
        }
    ).merge(windows, on=[F.SERIES_ID, F.FORECAST_ORIGIN])
    aligned = {}
    for name in pd.unique(references[REFERENCE].astype(str)):
        mine = rows[rows[REFERENCE].astype(str) == name]
        out = np.full((len(series), horizon), np.nan)
        out[mine["window"].to_numpy(), mine[F.HORIZON_STEP].to_numpy(dtype=np.int64) - 1] = mine[
            F.FORECAST
        ].to_numpy(dtype=np.float64)
        aligned[str(name)] = out
    return aligned


def text_gain_share(
    model_mse: float, no_text_model_mse: float, limit_mse: float, no_text_limit_mse: float
) -> float:
    """The share of the knowable text gain a model captures:
    ``(no_text_model_mse - model_mse) / (no_text_limit_mse - limit_mse)``.

    1 means the model draws from the text all that the announcements known at the origin can
    give; 0 nothing; below 0 the text hurts. NaN when the text can give nothing (the limit is not
    below the no-text limit, e.g. no event announced in the span scored).
    """
    knowable = no_text_limit_mse - limit_mse
    if not knowable > 0:
        return float("nan")
    return float((no_text_model_mse - model_mse) / knowable)


def limit_scores(mse: Mapping[str, float], model: str, no_text_model: str) -> dict[str, float]:
    """The figures a run reports against the limit, from MSEs by name (``mse`` holds ``model``,
    ``no_text_model``, :data:`LIMIT` and :data:`NO_TEXT_LIMIT`, all over the same windows):
    ``text_gain_share`` (:func:`text_gain_share`) and ``mse_over_limit``, the model's MSE divided
    by the limit's (1 is the best any forecast can do, on average).

    Raises:
        ConfigError: ``limit_scores_names`` when a name has no MSE.
    """
    missing = [n for n in (model, no_text_model, LIMIT, NO_TEXT_LIMIT) if n not in mse]
    if missing:
        raise ConfigError(
            f"rule 'limit_scores_names' failed: no MSE for {', '.join(map(repr, missing))}; "
            f"the table has {', '.join(map(repr, mse.keys())) or 'none'}"
        )
    limit = float(mse[LIMIT])
    return {
        "text_gain_share": text_gain_share(
            mse[model], mse[no_text_model], limit, mse[NO_TEXT_LIMIT]
        ),
        "mse_over_limit": float(mse[model]) / limit if limit > 0 else float("nan"),
    }


def limit_figures(
    squared_errors: Mapping[str, np.ndarray], model: str, no_text_model: str
) -> dict[str, Any] | None:
    """:func:`limit_scores` over the windows that every one of ``model``, ``no_text_model`` and
    the two limits forecasts at every step, from their squared errors ``[B, H]`` (NaN where a
    reference has no forecast); ``None`` without both limits, the two models, or a shared window.

    Returns the scores with ``mse`` (by name), ``model``, ``no_text_model``, ``n_windows`` (the
    windows scored) and ``test_windows`` (all the model's).
    """
    names = (model, no_text_model, LIMIT, NO_TEXT_LIMIT)
    if not all(n in squared_errors for n in names):
        return None
    shared = np.logical_and.reduce([np.isfinite(squared_errors[n]).all(axis=1) for n in names])
    if not shared.any():
        return None
    mse = {n: float(np.mean(squared_errors[n][shared])) for n in names}
    return {
        **limit_scores(mse, model, no_text_model),
        "mse": mse,
        "model": model,
        "no_text_model": no_text_model,
        "n_windows": int(shared.sum()),
        "test_windows": len(shared),
    }
