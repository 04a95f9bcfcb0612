"""The data contract: column roles of the input, and the schema of published forecasts.

Every module refers to columns through a :class:`DataContract` (input) or the constants of
:class:`ForecastColumn` (output); no other module spells a column name.

Input is a Parquet dataset in long format, one row per (series, time step); it is read by
:func:`fusioncast.validation.read_dataset`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fusioncast.errors import ConfigError

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


class MetricColumn:
    """Columns of the evaluation tables (one row per model, series and horizon step; the backtest's
    add the fold and its origin), in ``metrics.parquet`` and ``backtest_metrics.parquet``."""

    MODEL = "model"  # fusioncast, its text ablations, a baseline, or a reference forecast
    REFERENCE = "reference"  # true on the rows of a reference forecast: never a candidate
    SERIES_ID = "series_id"
    HORIZON_STEP = "horizon_step"
    N_WINDOWS = "n_windows"  # test windows the row's means are over
    FOLD = "fold"
    ORIGIN = "origin"
    MSE = "mse"  # z-scored target
    MAE = "mae"
    MASE = "mase"
    SMAPE = "smape"
    PINBALL = "pinball"
    #: Columns that say what a row is about, not how good a forecast was.
    KEYS = (MODEL, REFERENCE, SERIES_ID, HORIZON_STEP, N_WINDOWS, FOLD, ORIGIN)

    @staticmethod
    def coverage(percent: int) -> str:
        """Column of the share of actual values inside the central ``percent`` % interval."""
        return f"coverage_{percent}"


class SelectionColumn:
    """Columns of ``selection.parquet`` (``fusioncast select``): one row per candidate and fold."""

    CANDIDATE = "candidate"  # a preset's name, or "default"
    FOLD = MetricColumn.FOLD
    ORIGIN = MetricColumn.ORIGIN
    MSE = MetricColumn.MSE  # the candidate's MSE on the fold's horizon, z-scored target
    N_WINDOWS = MetricColumn.N_WINDOWS  # windows (one per series) the fold's MSE is over
    BEST_BASELINE_MSE = "best_baseline_mse"  # the selection's best baseline, on the same fold
