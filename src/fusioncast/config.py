"""Settings of a run as pydantic models (Prefect UI forms): leaves that import no model code."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ModelConfig(BaseModel):
    """Shape and size of the forecasting model."""

    model_config = ConfigDict(extra="forbid")

    lookback: int = Field(56, ge=2, le=4096, description="Past steps the model reads.")
    horizon: int = Field(14, ge=1, le=1024, description="Future steps forecast at once.")
    quantiles: tuple[float, ...] = Field(
        (0.1, 0.5, 0.9), description="Quantiles trained with pinball loss; must include 0.5."
    )
    loss: Literal["pinball", "mse", "mae"] = Field(
        "pinball", description="pinball trains the quantiles; mse/mae train a point forecast."
    )
    numeric_units: int = Field(64, ge=4, le=1024, description="LSTM units over numeric history.")
    text_units: int = Field(32, ge=4, le=1024, description="LSTM units of each text branch.")
    text_embedding_dim: int = Field(32, ge=2, le=512, description="Token embedding size.")
    hidden_units: int = Field(128, ge=4, le=4096, description="Units of the merged Dense layer.")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout before the output layer.")
    max_text_tokens: int = Field(
        64, ge=2, le=4096, description="Tokens per window per text feature (most recent kept)."
    )
    max_tokens_per_step: int = Field(
        32, ge=1, le=4096, description="Tokens kept of one step's text."
    )
    max_vocabulary: int = Field(20_000, ge=10, le=1_000_000, description="Vocabulary size cap.")
    min_token_count: int = Field(
        2, ge=1, description="A word must appear this often in training text."
    )
    linear_skip: Literal["none", "zeros", "ridge", "ridge_normalised", "statistical"] = Field(
        "none",
        description=(
            "Add linear forecasts from the target history (the network then learns a residual "
            "to them): none; zeros (starts at the last value); ridge (starts at ridges fitted on "
            "training windows, on the lookback and on the lookback minus its last value, their "
            "penalties and mix chosen on validation windows); ridge_normalised (starts at the "
            "ridge on the lookback minus its last value alone, its penalty chosen on validation "
            "windows); statistical (starts at a mix of the ridge skip and statsforecast's AutoETS, "
            "AutoTheta and AutoARIMA forecasts from the series' whole history up to the origin, "
            "beyond the lookback, each weighted by the inverse square of its validation MSE)."
        ),
    )
    linear_skip_trainable: bool = Field(
        True, description="Whether training may move the linear skip's weights."
    )
    text_encoder: Literal["lstm", "bag", "pretrained"] = Field(
        "lstm",
        description=(
            "lstm: an LSTM over the tokens before attention pooling; bag: attention pooling "
            "straight over the token embeddings (a weighted bag of words, for little data); "
            "pretrained: each step's text is one vector from the frozen sentence encoder in "
            "pretrained_encoder, projected to text_units, then attention pooling over the steps."
        ),
    )
    pretrained_encoder: str | None = Field(
        None,
        description=(
            "Local directory of the frozen sentence encoder (tokenizer.json and "
            "embeddings.safetensors, optionally encoder.json) read with "
            "text_encoder='pretrained'; required then, refused otherwise. Nothing is downloaded."
        ),
    )
    text_dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout on each text branch's pooled context."
    )
    text_fusion: Literal["concat", "additive"] = Field(
        "concat",
        description=(
            "concat: each text branch's context joins the merged features before the Dense head; "
            "additive: each text branch adds its own forecast correction, gated off for a window "
            "without text, so a window whose text is missing (a feed that stopped) gets exactly "
            "the numeric model's forecast."
        ),
    )

    @field_validator("quantiles")
    @classmethod
    def _quantiles_valid(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < q < 1 for q in value):
            raise ValueError("every quantile must lie strictly between 0 and 1")
        if 0.5 not in value:
            raise ValueError("quantiles must include 0.5 (the point forecast)")
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _pretrained_encoder_given(self) -> ModelConfig:
        if self.text_encoder == "pretrained" and not self.pretrained_encoder:
            raise ValueError("text_encoder 'pretrained' needs pretrained_encoder (a directory)")
        if self.text_encoder != "pretrained" and self.pretrained_encoder is not None:
            raise ValueError(
                f"pretrained_encoder is read only with text_encoder 'pretrained', not "
                f"{self.text_encoder!r}"
            )
        return self

    @property
    def output_quantiles(self) -> tuple[float, ...]:
        """Quantiles the model outputs: the configured ones, or just the median for mse/mae."""
        return self.quantiles if self.loss == "pinball" else (0.5,)


#: ``training.distribution``: one device, every local device, or the devices of several
#: processes (:mod:`fusioncast.distribution`)
Distribution = Literal["none", "data_parallel", "multi_worker"]


class TrainingConfig(BaseModel):
    """How the model is fitted."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(30, ge=1, le=10_000, description="Maximum epochs.")
    batch_size: int = Field(256, ge=1, le=65_536, description="Windows per batch.")
    learning_rate: float = Field(1e-3, gt=0, le=1.0, description="Adam learning rate.")
    patience: int = Field(
        5, ge=1, le=1000, description="Epochs without improvement before stopping."
    )
    seed: int = Field(0, ge=0, description="Seed of weights, sampling and shuffling.")
    train_fraction: float = Field(0.7, gt=0, lt=1, description="Share of time steps for training.")
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="Share for validation.")
    steps_per_epoch: int | None = Field(
        None, ge=1, description="Batches per epoch (None: every training window once)."
    )
    weight_decay: float = Field(
        0.0, ge=0.0, le=1.0, description="Decoupled weight decay (AdamW) when above 0."
    )
    text_window_dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description=(
            "Share of training windows whose text is removed (drawn per batch), so the model "
            "still forecasts well when text is missing."
        ),
    )
    keep_initial: bool = Field(
        False,
        description=(
            "Keep the initial weights (the last value, or the linear skip's ridge) when no epoch "
            "beats their validation loss."
        ),
    )
    max_validation_windows: int | None = Field(
        50_000,
        ge=1,
        description="Validate on a fixed random subset of this many windows (None: all).",
    )
    distribution: Distribution = Field(
        "none",
        description=(
            "Devices to train on: none (one), data_parallel (every local GPU, else CPU "
            "device) or multi_worker (the devices of several processes or hosts, JAX "
            "backend, configured from KERAS_DISTRIBUTION_* variables); each batch of "
            "batch_size windows is split across them. See fusioncast.distribution."
        ),
    )


class BacktestConfig(BaseModel):
    """Which past forecast origins the backtest replays."""

    model_config = ConfigDict(extra="forbid")

    n_folds: int = Field(3, ge=1, le=104, description="Forecast origins (folds) to replay.")
    step: int | None = Field(
        None, ge=1, le=10_000, description="Steps between fold origins (default: the horizon)."
    )
    validation_share: float = Field(
        0.125,
        gt=0,
        lt=1,
        description="Share of a fold's history held out for early stopping (at least a horizon).",
    )


class TaskRunnerConfig(BaseModel):
    """Where a flow's fan-out (the backtest's folds, the selection's trials) runs."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["process", "dask", "dask-local"] = Field(
        "process",
        description=(
            "process: worker processes on the flow's machine; dask: the Dask cluster at "
            "`address`; dask-local: a Dask cluster of `workers` processes started for the run."
        ),
    )
    address: str | None = Field(
        None,
        description="The Dask scheduler (kind dask), e.g. tcp://10.0.0.5:8786.",
        examples=["tcp://127.0.0.1:8786"],
    )
    workers: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Worker processes (process, dask-local; default: the CPU count).",
    )

    @model_validator(mode="after")
    def _address_with_dask(self) -> TaskRunnerConfig:
        if (self.kind == "dask") != (self.address is not None):
            raise ValueError(
                "task_runner.address is required with kind 'dask' and only taken with it"
            )
        if self.kind == "dask" and self.workers is not None:
            raise ValueError("task_runner.workers is the cluster's to set with kind 'dask'")
        return self


class BaselineConfig(BaseModel):
    """The statistical peers (statsforecast) scored beside the model on the same windows."""

    model_config = ConfigDict(extra="forbid")

    statistical: tuple[Literal["auto_ets", "auto_theta", "auto_arima"], ...] = Field(
        ("auto_ets", "auto_theta"),
        description=(
            "statsforecast models fitted on each series' whole history up to the origin, with "
            "the season of the data's frequency (auto_arima takes seconds per series)."
        ),
    )
    refit_every: int | None = Field(
        None,
        ge=1,
        description=(
            "Select and fit a series' model again after this many forecast origins, running "
            "it forward over the new observations in between (empty: fitted once at the "
            "split's first origin, as the network is trained once)."
        ),
    )


class PromotionConfig(BaseModel):
    """When a newly trained model becomes the champion."""

    model_config = ConfigDict(extra="forbid")

    require_beating_champion: bool = Field(
        True, description="Promote only if the test MSE beats the champion's on the same windows."
    )
    require_beating_last_value: bool = Field(
        True, description="Promote only if the test MSE beats repeating the last value."
    )
    min_improvement: float = Field(
        0.0, ge=0.0, lt=1.0, description="Required relative MSE improvement over the champion."
    )
    best_baseline_margin: float | None = Field(
        0.05,
        ge=0.0,
        le=10.0,
        description=(
            "Promote only if the test MSE is at most this much (relative) above the baseline "
            "best on the validation split, on the same test windows (empty: not checked)."
        ),
    )


class ValidationConfig(BaseModel):
    """How strict validation is, per run. Every bound is inclusive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Literal["fail", "quarantine"] = Field(
        "fail",
        description=(
            "'fail': bad rows stop the run before any model or output is touched. 'quarantine': "
            "rows (or series) that break a row or series rule are written to quarantine.parquet "
            "in the run's report directory with the rule they broke; the run goes on with the "
            "rest. Table-level problems (missing columns, wrong types, ...) always stop the run."
        ),
    )
    max_missing_target_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description=(
            "Share of rows whose target may be missing. Tolerated missing targets are filled with "
            "the series' previous value (the next one at its start); beyond it the rule fails."
        ),
    )
    max_gap_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description=(
            "Share of the steps between a series' first and last timestamp that may be missing. "
            "0 means no gaps; tolerated gaps are counted in the report and not filled."
        ),
    )
    max_text_chars: int = Field(
        2000,
        ge=1,
        le=10_000_000,
        description="Longest text kept per step and text feature; longer text is truncated.",
    )
    max_categorical_cardinality: int = Field(
        10_000,
        ge=1,
        le=100_000_000,
        description="Most distinct values per categorical feature (each needs an embedding row).",
    )
    allow_future_timestamps: bool = Field(
        False, description="Accept timestamps later than now (in `timezone`)."
    )
    timezone: str = Field(
        "UTC",
        description=(
            "IANA time zone of tz-naive timestamps' wall-clock time: 'now' is taken in it when "
            "telling future timestamps (tz-aware timestamps are compared as instants)."
        ),
    )
    now: datetime | None = Field(
        None,
        description=(
            "The current time for the future-timestamp rule; empty means the clock. Naive "
            "values are wall-clock time in `timezone` (set it in tests for reproducible runs)."
        ),
    )
    max_quarantine_share: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description=(
            "Quarantine policy: the run still stops when more than this share of the rows would "
            "be quarantined (such data is more likely broken than dirty)."
        ),
    )
    data_docs: bool = Field(
        True, description="Write GX Data Docs (HTML) to <report dir>/data_docs."
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}") from error
        return value

    def current_time(self) -> pd.Timestamp:
        """``now`` (or the clock) as naive wall-clock time in ``timezone``."""
        if self.now is None:
            return pd.Timestamp.now(tz=self.timezone).tz_localize(None)
        now = pd.Timestamp(self.now)
        if now.tzinfo is not None:
            now = now.tz_convert(self.timezone).tz_localize(None)
        return now

    def current_instant(self) -> pd.Timestamp:
        """``now`` (or the clock) as a tz-aware instant."""
        if self.now is None:
            return pd.Timestamp.now(tz="UTC")
        now = pd.Timestamp(self.now)
        if now.tzinfo is None:  # a wall-clock time repeated by daylight saving: the first
            now = now.tz_localize(self.timezone, ambiguous=True, nonexistent="shift_forward")
        return now
