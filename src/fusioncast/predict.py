"""Running a model over windows: batched prediction and attention weights for explanations."""

from __future__ import annotations

import json
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from fusioncast.config import ModelConfig
from fusioncast.windows import SeriesArrays, gather_inputs, sampler


def predict_windows(
    model: keras.Model,
    arrays: SeriesArrays,
    origins: np.ndarray,
    config: ModelConfig,
    *,
    batch_size: int = 1024,
    shuffle_text: bool = False,
    without_text: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """Scaled forecasts ``[B, H, Q]`` of the windows ending at ``origins`` (in that order).

    ``shuffle_text`` / ``without_text`` run the text ablations: each window gets another window's
    text, or none.
    """
    data = sampler(
        arrays,
        origins,
        config,
        batch_size,
        with_targets=False,
        shuffle_text=shuffle_text,
        without_text=without_text,
        seed=seed,
    )
    return np.asarray(model.predict(data, verbose=0))


#: Windows gathered and explained at once: bounds the memory of a forecast of many series.
EXPLAIN_CHUNK = 16_384


@dataclass
class TopText:
    """Per window, the steps whose text weighed most, largest first: ``rows [B, K]`` (the row of
    the step, -1 where the window has fewer), ``features [B, K]`` (the text feature's index) and
    ``weights [B, K]`` (the attention mass the step's tokens received in that feature's branch)."""

    rows: np.ndarray
    features: np.ndarray
    weights: np.ndarray

    def __getitem__(self, keep: np.ndarray) -> TopText:
        return TopText(self.rows[keep], self.features[keep], self.weights[keep])


def explain_windows(
    explainer: keras.Model,
    arrays: SeriesArrays,
    origins: np.ndarray,
    config: ModelConfig,
    *,
    top_k: int = 3,
) -> tuple[np.ndarray, TopText]:
    """Forecasts ``[B, H, Q]`` of the windows ending at ``origins`` and the steps whose text
    weighed most in each (``explainer``: :func:`fusioncast.model.explanation_model`).

    Works through the windows in chunks of :data:`EXPLAIN_CHUNK`, each gathered, predicted and
    ranked with array operations.
    """
    forecasts, tops = [], []
    for start in range(0, len(origins), EXPLAIN_CHUNK):
        chunk = origins[start : start + EXPLAIN_CHUNK]
        inputs = gather_inputs(arrays, chunk, config.lookback, config.max_text_tokens)
        outputs = explainer.predict(inputs, verbose=0, batch_size=1024)
        forecasts.append(np.asarray(outputs[0]))
        ages = [inputs[f"text_{i}_age"] for i in range(len(arrays.text))]
        tops.append(_top_steps(chunk, ages, [np.asarray(w) for w in outputs[1:]], config, top_k))
    return np.concatenate(forecasts), TopText(
        *(
            np.concatenate([getattr(t, name) for t in tops])
            for name in ("rows", "features", "weights")
        )
    )


def _top_steps(
    origins: np.ndarray,
    ages: list[np.ndarray],
    weights: list[np.ndarray],
    config: ModelConfig,
    top_k: int,
) -> TopText:
    """The ``top_k`` (feature, step) pairs of each window by the attention mass of their tokens."""
    lookback, batch = config.lookback, len(origins)
    masses = []
    for age, weight in zip(ages, weights, strict=True):
        # one bin per (window, age); age == lookback (marker, padding) falls in a dropped bin
        bins = np.arange(batch)[:, None] * (lookback + 1) + np.minimum(age, lookback)
        size = batch * (lookback + 1)
        mass = np.bincount(bins.ravel(), weight.ravel(), size).reshape(batch, lookback + 1)
        count = np.bincount(bins.ravel(), minlength=size).reshape(batch, lookback + 1)
        masses.append(np.where(count > 0, mass, -np.inf)[:, :lookback])
    mass = np.concatenate(masses, axis=1)  # [B, features x lookback]: feature, then age
    k = min(top_k, mass.shape[1])
    best = np.argsort(-mass, axis=1, kind="stable")[:, :k]
    found = np.take_along_axis(mass, best, axis=1)
    present = np.isfinite(found)
    features, age = np.divmod(best, lookback)
    return TopText(
        rows=np.where(present, origins[:, None] - age, -1),
        features=features,
        weights=np.where(present, found, 0.0),
    )


def explanations_json(
    top: TopText,
    columns: tuple[str, ...],
    timestamps: pd.DatetimeIndex,
    texts: dict[str, pd.Series],
) -> list[str]:
    """One JSON list per window of ``{"feature", "timestamp", "weight", "text"}`` entries.

    ``timestamps`` (of the steps, as published) and ``texts`` (per text feature) are indexed by
    row; each step named is formatted once.
    """
    present = top.rows >= 0
    named = np.unique(top.rows[present])
    stamps = dict(zip(named.tolist(), timestamps[named].map(pd.Timestamp.isoformat), strict=True))
    shown = {}
    for i, column in enumerate(columns):  # the text of each step named for this feature
        rows = np.unique(top.rows[present & (top.features == i)])
        shown[column] = dict(zip(rows.tolist(), map(str, texts[column].take(rows)), strict=True))
    return [
        json.dumps(
            [
                {
                    "feature": columns[f],
                    "timestamp": stamps[r],
                    "weight": round(w, 4),
                    "text": shown[columns[f]][r],
                }
                for r, f, w in zip(rows, features, weights, strict=True)
                if r >= 0
            ]
        )
        for rows, features, weights in zip(
            top.rows.tolist(), top.features.tolist(), top.weights.tolist(), strict=True
        )
    ]
