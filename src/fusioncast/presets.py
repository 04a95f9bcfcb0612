"""Named model and training settings to start from: ``{"preset": "short-weekly"}``.

The model's defaults (:class:`~fusioncast.config.ModelConfig`) suit long daily series with notes,
like the demo's. The ``short-*`` presets suit a few hundred steps per series, as on the Time-MMD
domains, where they were chosen on validation data only (``docs/selection.md``): a residual to two
ridges on the lookback kept unless training beats it on validation, small layers with weight decay,
a bag-of-words text encoder whose additive correction is gated off for windows without text, and
three quarters of the training windows stripped of text, so a feed that stops costs little.
Each has a ``-statistical`` twin whose network corrects a mix of those ridges and the statistical
peers' forecasts made from the series' whole history, weighted by their validation errors.
"""

from __future__ import annotations

from typing import Any

from fusioncast.errors import ConfigError

_SHORT_MODEL: dict[str, Any] = {
    "loss": "mse",
    "linear_skip": "ridge",
    "numeric_units": 16,
    "hidden_units": 16,
    "dropout": 0.2,
    "text_encoder": "bag",
    "text_embedding_dim": 16,
    "text_units": 8,
    "text_dropout": 0.2,
    "text_fusion": "additive",
    "max_text_tokens": 128,
    "max_tokens_per_step": 32,
    "max_vocabulary": 2000,
    "min_token_count": 3,
}
_SHORT_TRAINING: dict[str, Any] = {
    "weight_decay": 1e-4,
    "keep_initial": True,
    "text_window_dropout": 0.75,
    "batch_size": 32,
    "learning_rate": 1e-3,
}

#: Each preset: the ``model`` and ``training`` fields it sets (others keep their defaults).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "short-monthly": {
        "model": _SHORT_MODEL,
        "training": {**_SHORT_TRAINING, "epochs": 60, "patience": 8},
    },
    "short-weekly": {
        "model": _SHORT_MODEL,
        "training": {**_SHORT_TRAINING, "epochs": 40, "patience": 6},
    },
}
# No daily domain was available to tune on: daily series use the weekly settings.
PRESETS["short-daily"] = PRESETS["short-weekly"]
# The same, the network a residual to a mix of the ridges and the statistical peers' forecasts
# from the whole history (linear_skip="statistical") instead of to the ridges alone.
for _name in ("short-monthly", "short-weekly", "short-daily"):
    PRESETS[f"{_name}-statistical"] = {
        "model": {**PRESETS[_name]["model"], "linear_skip": "statistical"},
        "training": PRESETS[_name]["training"],
    }

#: The settings without a preset (the model and training defaults), as ``fusioncast select``
#: names them beside the presets.
NO_PRESET = "default"
#: What ``fusioncast select`` compares unless told otherwise, in order (ties go to the earlier).
CANDIDATES: tuple[str, ...] = (NO_PRESET, *PRESETS)


def preset(name: str) -> dict[str, dict[str, Any]]:
    """A copy of the preset's ``{"model": {...}, "training": {...}}`` fields."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; the presets are {', '.join(sorted(PRESETS))}")
    return {section: dict(fields) for section, fields in PRESETS[name].items()}


def candidate(name: str) -> dict[str, dict[str, Any]]:
    """The fields a candidate of ``fusioncast select`` sets: a preset's, or none for ``default``."""
    if name == NO_PRESET:
        return {"model": {}, "training": {}}
    if name not in PRESETS:
        raise ConfigError(f"unknown candidate {name!r}; the candidates are {', '.join(CANDIDATES)}")
    return preset(name)


def apply_preset(payload: dict[str, Any]) -> dict[str, Any]:
    """Parameters with ``payload["preset"]``'s fields filled in under the ones given explicitly."""
    name = payload.get("preset")
    if name is None:
        return payload
    merged = dict(payload)
    for section, fields in preset(name).items():
        given = merged.get(section) or {}
        if isinstance(given, dict):
            merged[section] = {**fields, **given}
    return merged
