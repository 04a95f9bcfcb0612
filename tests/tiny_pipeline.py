"""The smallest demo pipeline state (one store, two categories, 160 days, lookback 14, horizon 3),
for tests whose training runs in a child process (a backend, a killed run).

Child processes import it with this folder on ``PYTHONPATH`` (see :func:`child_env`).
"""

from __future__ import annotations

import os
from pathlib import Path

#: The smallest model settings a flow run takes (as JSON parameters): seconds to train.
TINY_MODEL_SETTINGS = {
    "lookback": 14,
    "horizon": 7,
    "numeric_units": 8,
    "text_units": 8,
    "text_embedding_dim": 8,
    "hidden_units": 16,
    "max_text_tokens": 16,
    "min_token_count": 1,
}


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process that imports this module."""
    here = str(Path(__file__).resolve().parent)
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def tiny_state_and_arrays(**settings):
    """The fitted state and the split arrays of the tiny demo data (``settings``: model settings
    other than the tiny ones)."""
    from fusioncast.config import ModelConfig
    from fusioncast.demo import DEMO_CONTRACT as C
    from fusioncast.demo import generate_demo_frame
    from fusioncast.split import split_by_time
    from fusioncast.state import prepare

    frame = generate_demo_frame(n_stores=1, n_categories=2, n_days=160, seed=2)
    config = ModelConfig(
        lookback=14,
        horizon=3,
        numeric_units=4,
        text_units=4,
        text_embedding_dim=4,
        hidden_units=8,
        max_text_tokens=8,
        **settings,
    )
    return prepare(frame, C, split_by_time(frame, C), config)
