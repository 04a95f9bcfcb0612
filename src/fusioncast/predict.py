"""Running a model over windows: batched prediction and attention weights for explanations."""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd

from fusioncast.config import ModelConfig
from fusioncast.model import explanation_model
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


def explain_windows(
    model: keras.Model,
    arrays: SeriesArrays,
    origins: np.ndarray,
    config: ModelConfig,
    text_columns: tuple[str, ...],
    raw_text: dict[str, np.ndarray],
    *,
    top_k: int = 3,
) -> tuple[np.ndarray, list[str]]:
    """Forecasts ``[B, H, Q]`` and, per window, a JSON list of the steps whose text weighed most.

    Each entry: ``{"feature", "timestamp", "weight", "text"}``; the weight is the attention mass
    the step's tokens received in that feature's branch, largest first, ``top_k`` at most.
    """
    if not text_columns:
        return predict_windows(model, arrays, origins, config), ["[]"] * len(origins)
    explainer = explanation_model(model, len(text_columns))
    inputs = gather_inputs(arrays, origins, config.lookback, config.max_text_tokens)
    outputs = explainer.predict(inputs, verbose=0, batch_size=1024)
    forecast, weights = np.asarray(outputs[0]), [np.asarray(w) for w in outputs[1:]]
    explanations = []
    for b, origin in enumerate(origins):
        mass: dict[tuple[str, int], float] = {}
        for i, column in enumerate(text_columns):
            ages = inputs[f"text_{i}_age"][b]
            for position in np.flatnonzero(ages < config.lookback):
                key = (column, int(origin - ages[position]))
                mass[key] = mass.get(key, 0.0) + float(weights[i][b, position])
        ranked = sorted(mass.items(), key=lambda item: -item[1])[:top_k]
        entries = [
            {
                "feature": column,
                "timestamp": pd.Timestamp(arrays.timestamps[row]).isoformat(),
                "weight": round(weight, 4),
                "text": str(raw_text[column][row]),
            }
            for (column, row), weight in ranked
        ]
        explanations.append(json.dumps(entries))
    return forecast, explanations
