"""The fitted forecaster: a trained model with the state fitted beside it, as one object.

What a retrain produces, the registry stores and a forecast loads. It forecasts the next horizon
of every series from its latest data (:meth:`Forecaster.predict`), scores windows of prepared
arrays (:meth:`Forecaster.predict_windows`), and saves and loads itself as a directory of
``model.keras`` and the state's JSON files. It is built by training
(:func:`fusioncast.training.train_forecaster`) or by :meth:`Forecaster.load`; this module imports
no training code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import keras
import numpy as np
import pandas as pd
import pyarrow as pa

from fusioncast.config import ModelConfig
from fusioncast.contract import DataContract
from fusioncast.contract import ForecastColumn as F
from fusioncast.errors import DataValidationError
from fusioncast.model import ModelSpec, explanation_model, load_model
from fusioncast.predict import explain_windows, explanations_json, predict_windows
from fusioncast.scaling import SeriesScaler
from fusioncast.state import ForecastingState, series_index
from fusioncast.timestamps import attach_zone, future_steps
from fusioncast.windows import SeriesArrays, forecast_origins

MODEL_FILE = "model.keras"


@dataclass
class Forecaster:
    """A Keras model and the fitted state it reads its inputs through.

    ``version`` is the registry version it was stored as (``None`` before it is registered); the
    forecasts it publishes carry it.
    """

    model: keras.Model
    state: ForecastingState
    version: str | None = None
    _explainer: keras.Model | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def explainer(self) -> keras.Model:
        """The model with its text branches' attention weights as outputs, built once."""
        if self._explainer is None:
            self._explainer = explanation_model(self.model, len(self.contract.text))
        return self._explainer

    @property
    def spec(self) -> ModelSpec:
        return self.state.spec

    @property
    def config(self) -> ModelConfig:
        return self.state.spec.config

    @property
    def contract(self) -> DataContract:
        return self.state.contract

    @property
    def scaler(self) -> SeriesScaler:
        return self.state.scaler

    def save(self, directory: Path) -> None:
        """Write ``model.keras`` and the state's JSON files into ``directory`` (which exists)."""
        self.model.save(Path(directory) / MODEL_FILE)
        self.state.save(Path(directory))

    @classmethod
    def load(
        cls, directory: Path, version: str | None = None, embedding_cache_root: Path | None = None
    ) -> Forecaster:
        """The forecaster saved in ``directory``; the model loads without running stored code.

        ``embedding_cache_root``: the workspace whose cache of pretrained text embeddings to use.
        """
        directory = Path(directory)
        state = ForecastingState.load(directory, embedding_cache_root)
        return cls(load_model(directory / MODEL_FILE), state, version)

    def predict_windows(
        self,
        arrays: SeriesArrays,
        origins: np.ndarray,
        *,
        shuffle_text: bool = False,
        without_text: bool = False,
        seed: int = 0,
    ) -> np.ndarray:
        """Scaled forecasts ``[B, H, Q]`` of the windows of ``arrays`` ending at ``origins``.

        ``shuffle_text`` / ``without_text`` run the text ablations: each window gets another
        window's text, or none.
        """
        return predict_windows(
            self.model,
            arrays,
            origins,
            self.config,
            shuffle_text=shuffle_text,
            without_text=without_text,
            seed=seed,
        )

    def predict(
        self,
        frame: pd.DataFrame,
        *,
        freq: str,
        run_id: str,
        created_at: pd.Timestamp,
        timezone: str | None = None,
        policy: Literal["fail", "quarantine"] = "fail",
        on_set_aside: Callable[[DataValidationError], None] | None = None,
    ) -> pd.DataFrame:
        """One row per (series, horizon step): point forecast, quantiles and the text that
        weighed most, from the latest ``lookback`` steps of each series of ``frame``.

        Series with fewer than ``lookback`` rows are left out (validation reports them). Two
        rules guard what is published: ``within_scale`` before prediction
        (:meth:`~fusioncast.state.ForecastingState.out_of_scale`) and ``forecast_finite`` after
        it (every published value is finite). A series that breaks one stops the run under the
        ``fail`` policy (:class:`~fusioncast.errors.DataValidationError`); under ``quarantine``
        it is left out, ``on_set_aside`` gets the error that names it, and the rest is published
        (the run stops when no series is left). ``frame`` holds timestamps as validation hands
        them on; with ``timezone`` (that of tz-aware input, ``ValidationReport.timezone``) the
        published timestamps are tz-aware in it.
        """
        if self.version is None:
            raise ValueError("a forecaster publishes forecasts only once it has a version")
        config = self.config
        state = self.state.for_new_series(frame)
        frame = state.forecast_rows(frame)
        arrays = state.arrays(frame)
        origins = forecast_origins(arrays, config.lookback)
        if len(origins) == 0:
            raise DataValidationError(
                "series_min_length",
                state.contract.series_id or state.contract.timestamp,
                len(arrays.series_ids),
                f"no series has the {config.lookback} steps of history the model reads",
            )
        out_of_scale, error = state.out_of_scale(arrays)
        origins = origins[
            ~_set_aside(out_of_scale[arrays.row_series[origins]], error, policy, on_set_aside)
        ]
        text = state.contract.text
        if text:
            scaled, top = explain_windows(self.explainer, arrays, origins, config)
        else:
            scaled = predict_windows(self.model, arrays, origins, config)
        series = series_index(arrays, origins)
        values = state.scaler.inverse_target(scaled.astype(np.float64), series)
        quantiles = config.output_quantiles
        not_finite, error = _not_finite(values, series, quantiles)
        keep = ~_set_aside(not_finite, error, policy, on_set_aside)
        origins, series, values = origins[keep], series[keep], values[keep]
        horizon = config.horizon
        origin_times = arrays.timestamps[origins]
        # steps are taken on the timestamps as held (UTC or wall-clock), then the zone is attached
        target_times = future_steps(origin_times, freq, horizon)
        out = pd.DataFrame(
            {
                F.SERIES_ID: _repeated(series.astype(str), horizon),
                F.FORECAST_ORIGIN: attach_zone(origin_times, timezone, freq).repeat(horizon),
                F.TARGET_TIMESTAMP: attach_zone(target_times.ravel(), timezone, freq),
                F.HORIZON_STEP: np.tile(np.arange(1, horizon + 1), len(origins)).astype(np.int32),
                F.FORECAST: values[..., quantiles.index(0.5)].ravel(),
            }
        )
        if len(quantiles) > 1:
            for j, q in enumerate(quantiles):
                out[F.quantile(q)] = values[..., j].ravel()
        if text:
            explanations = explanations_json(
                top[keep],
                text,
                attach_zone(arrays.timestamps, timezone, freq),
                {c: frame[c] for c in text},
            )
        else:
            explanations = ["[]"] * len(origins)
        out[F.EXPLANATION] = _repeated(explanations, horizon)
        out[F.MODEL_VERSION] = self.version
        out[F.RUN_ID] = run_id
        out[F.CREATED_AT] = created_at
        return out

    def predict_at(
        self, frame: pd.DataFrame, series: np.ndarray, origin_times: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Median forecasts (original scale) of the windows of ``frame`` ending at
        ``(series[i], origin_times[i])``, for those with this forecaster's full lookback there.

        Returns the indices ``i`` of those windows and their forecasts ``[W, H]``.
        """
        state = self.state.for_new_series(frame)
        arrays = state.arrays(frame)
        config = self.config
        rows = pd.Series(
            np.arange(arrays.n_rows),
            index=pd.MultiIndex.from_arrays(
                [arrays.series_ids[arrays.row_series].astype(str), arrays.timestamps]
            ),
        )
        keys = pd.MultiIndex.from_arrays([np.asarray(series).astype(str), origin_times])
        origins = rows.reindex(keys).to_numpy()
        found = ~pd.isna(origins)
        origins = np.where(found, origins, 0).astype(np.int64)
        starts = arrays.offsets[arrays.row_series[origins]]
        windows = np.flatnonzero(found & (origins - config.lookback + 1 >= starts))
        if len(windows) == 0:
            return windows, np.zeros((0, config.horizon))
        forecast = predict_windows(self.model, arrays, origins[windows], config)
        median = forecast[..., config.output_quantiles.index(0.5)].astype(np.float64)
        return windows, state.scaler.inverse_target(median, series_index(arrays, origins[windows]))


def predict_shard(
    forecaster: Forecaster, frame: pd.DataFrame, *, policy: str, **predict: object
) -> pd.DataFrame | DataValidationError:
    """:meth:`Forecaster.predict` of one shard of the series (``predict``: its other arguments).

    Under the ``quarantine`` policy a shard none of whose series can be forecast gives its error
    back instead of raising it: a run in shards stops only when no shard has a series left
    (:func:`gather_shards`), as a run in one piece does.
    """
    try:
        return forecaster.predict(frame, policy=policy, **predict)  # type: ignore[arg-type]
    except DataValidationError as error:
        if policy != "quarantine":
            raise
        on_set_aside = predict.get("on_set_aside")
        if callable(on_set_aside):
            on_set_aside(error)
        return error


def gather_shards(parts: Sequence[pd.DataFrame | DataValidationError]) -> pd.DataFrame:
    """The shards' forecasts as one table, in the shards' order (that of the series); raises the
    first shard's error when no shard has a series left."""
    frames = [part for part in parts if isinstance(part, pd.DataFrame)]
    if not frames:
        raise next(part for part in parts if isinstance(part, DataValidationError))
    return pd.concat(frames, ignore_index=True)


def _repeated(values: Sequence[str], times: int) -> pd.api.extensions.ExtensionArray:
    """Each of ``values`` ``times`` times in a row, as a pandas ``str`` array (one Arrow take,
    not a Python object per row)."""
    index = np.repeat(np.arange(len(values)), times)
    return pd.array(pa.array(values, pa.large_string()).take(index), dtype="str")


def _not_finite(
    values: np.ndarray, series: np.ndarray, quantiles: tuple[float, ...]
) -> tuple[np.ndarray, DataValidationError | None]:
    """Rule ``forecast_finite``: the windows (one per series) whose forecast ``values [B, H, Q]``
    hold NaN or +-inf, and the error naming the first value column that does and the series."""
    bad = ~np.isfinite(values).all(axis=(1, 2))
    if not bad.any():
        return bad, None
    columns = {F.FORECAST: quantiles.index(0.5)}
    if len(quantiles) > 1:
        columns.update({F.quantile(q): j for j, q in enumerate(quantiles)})
    column = next(c for c, j in columns.items() if not np.isfinite(values[bad, :, j]).all())
    names = series[bad].astype(str)
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return bad, DataValidationError(
        "forecast_finite",
        column,
        len(names),
        detail=f"the forecasts of {len(names)} series hold NaN or infinite values: {shown}",
        example=names[0],
    )


def _set_aside(
    bad: np.ndarray,
    error: DataValidationError | None,
    policy: str,
    on_set_aside: Callable[[DataValidationError], None] | None,
) -> np.ndarray:
    """``bad`` (per forecast window) once ``error`` is dealt with under ``policy``.

    Raises it under ``fail``, or when every window breaks the rule.
    """
    if error is None or not bad.any():
        return bad
    if policy != "quarantine" or bad.all():
        raise error
    if on_set_aside is not None:
        on_set_aside(error)
    return bad
