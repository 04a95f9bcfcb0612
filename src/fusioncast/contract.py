"""The data contract: column roles of the input, and the schema of published forecasts.

Every module refers to columns through a :class:`DataContract` (input) or the constants of
:class:`ForecastColumn` (output); no other module spells a column name.

Input is a Parquet dataset in long format, one row per (series, time step). A file, a directory of
files (hive partitions allowed) or a pyarrow/fsspec URI can be read with :func:`read_dataset`.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fusioncast.errors import ConfigError, ModelStateError, WorkspaceError

CONTRACT_VERSION = 1

#: The series id used when the contract declares no series column (a single series).
SINGLE_SERIES_ID = "series"


class DataContract(BaseModel):
    """Column roles of an input dataset. Names are configuration, never hard-coded elsewhere."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    series_id: str | None = Field(
        default="series_id", description="Series identifier column; None for a single series."
    )
    timestamp: str = Field(default="timestamp", description="Timestamp column of each step.")
    target: str = Field(default="target", description="The value forecast.")
    numeric: tuple[str, ...] = Field(
        default=(), description="Numeric covariates, observed in the past only."
    )
    static_categorical: tuple[str, ...] = Field(
        default=(), description="Categorical features constant within a series."
    )
    dynamic_categorical: tuple[str, ...] = Field(
        default=(), description="Categorical features varying per step."
    )
    text: tuple[str, ...] = Field(
        default=(), description="Text features: the (nullable) text attached to a step."
    )
    freq: str | None = Field(
        default=None, description="Pandas frequency alias (e.g. 'D', 'W-MON'); inferred when None."
    )

    @model_validator(mode="after")
    def _roles_are_distinct(self) -> DataContract:
        names = self.all_columns
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ConfigError(
                f"rule 'distinct_roles' failed: column(s) {duplicated} are given more than one role"
            )
        return self

    @property
    def categorical(self) -> tuple[str, ...]:
        return self.static_categorical + self.dynamic_categorical

    @property
    def all_columns(self) -> list[str]:
        """Every column the contract names, in a stable order."""
        key = [self.series_id] if self.series_id else []
        return [
            *key,
            self.timestamp,
            self.target,
            *self.numeric,
            *self.static_categorical,
            *self.dynamic_categorical,
            *self.text,
        ]

    def to_json(self) -> dict[str, Any]:
        return {"version": CONTRACT_VERSION, **self.model_dump(mode="json")}

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> DataContract:
        payload = dict(payload)
        payload.pop("version", None)
        return cls.model_validate(payload)


class ForecastColumn:
    """Columns of the published forecasts (one row per series, forecast origin and horizon step)."""

    SERIES_ID = "series_id"
    FORECAST_ORIGIN = "forecast_origin"  # timestamp of the last observed step
    TARGET_TIMESTAMP = "target_timestamp"  # timestamp the value is forecast for
    HORIZON_STEP = "horizon_step"  # 1 .. horizon
    FORECAST = "forecast"  # point forecast (the median when quantiles are trained)
    MODEL_VERSION = "model_version"
    RUN_ID = "run_id"
    CREATED_AT = "created_at"
    EXPLANATION = "top_text"  # the notes/tokens that weighed most, JSON

    @staticmethod
    def quantile(q: float) -> str:
        """Column name of quantile ``q`` (0.1 -> ``p10``; 0.025 -> ``p2.5``)."""
        percent = round(q * 100, 6)
        return f"p{percent:g}"


def read_dataset(source: str | Path, contract: DataContract) -> pd.DataFrame:
    """Read a Parquet file or directory (hive partitions allowed) into a DataFrame.

    Only the contract's columns are read when they are all present; otherwise every column is
    read so that validation can say which are missing. Timestamps come back as pandas datetimes.
    """
    path = str(source)
    if "://" not in path and not Path(path).exists():
        raise ConfigError(f"input dataset not found: {path}")
    dataset = ds.dataset(path, format="parquet", partitioning="hive")
    columns = (
        contract.all_columns if set(contract.all_columns) <= set(dataset.schema.names) else None
    )
    table: pa.Table = dataset.to_table(columns=columns)
    return table.to_pandas()


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically (temporary file in the same directory, then rename).

    A disk that is full or read-only raises :class:`WorkspaceError` naming the path refused; the
    file is then as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w") as handle:
            handle.write(json.dumps(payload, indent=2, sort_keys=True, default=str))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        raise WorkspaceError.from_os_error(error, "write", path) from error
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def read_json(path: Path, expected_version: int | None = None) -> dict[str, Any]:
    """A JSON object written by :func:`write_json`.

    A file that is not a JSON object (truncated, overwritten) raises :class:`ModelStateError`
    naming the file (rule ``state_json``); a missing file raises ``FileNotFoundError``.
    """
    try:
        payload = json.loads(Path(path).read_bytes())
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise ModelStateError(
            f"rule 'state_json' failed on {path}: not valid JSON ({error})"
        ) from None
    if not isinstance(payload, dict):
        raise ModelStateError(
            f"rule 'state_json' failed on {path}: expected a JSON object, found "
            f"{type(payload).__name__}"
        )
    if expected_version is not None and payload.get("version") != expected_version:
        raise ModelStateError(
            f"rule 'state_version' failed on {path}: expected version {expected_version}, "
            f"found {payload.get('version')!r}"
        )
    return payload
