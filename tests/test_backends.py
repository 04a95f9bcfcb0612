"""The model code is backend-agnostic: it trains, saves and loads on JAX where JAX is installed.

TensorFlow (the default backend) is what the rest of the suite runs on.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

ON_JAX = textwrap.dedent(
    """
    import keras, numpy as np, tempfile, os
    assert keras.backend.backend() == "jax", keras.backend.backend()
    from fusioncast.config import ModelConfig, TrainingConfig
    from fusioncast.demo import DEMO_CONTRACT as C, generate_demo_frame
    from fusioncast.model import load_model
    from fusioncast.split import split_by_time
    from fusioncast.state import ForecastingState, fit_scaler, fit_vocabularies
    from fusioncast.training import train_model
    from fusioncast.windows import forecast_origins, gather_inputs

    frame = generate_demo_frame(n_stores=1, n_categories=2, n_days=160, seed=2)
    config = ModelConfig(lookback=14, horizon=3, numeric_units=4, text_units=4,
                         text_embedding_dim=4, hidden_units=8, max_text_tokens=8)
    boundaries = split_by_time(frame, C)
    encoder, tokenizers = fit_vocabularies(frame, C, boundaries, config)
    scaler = fit_scaler(frame, C, boundaries)
    state = ForecastingState.create(C, scaler, encoder, tokenizers, config)
    arrays = state.arrays(frame, boundaries)
    result = train_model(arrays, state.spec,
                         TrainingConfig(epochs=2, batch_size=16, steps_per_epoch=3))
    inputs = gather_inputs(arrays, forecast_origins(arrays, 14), 14, 8)
    path = os.path.join(tempfile.mkdtemp(), "model.keras")
    result.model.save(path)
    before = result.model.predict(inputs, verbose=0)
    after = load_model(path).predict(inputs, verbose=0)
    np.testing.assert_allclose(after, before, atol=1e-6)
    padded = dict(inputs)
    padded["text_0_age"] = inputs["text_0_age"].copy()
    padded["text_0_age"][inputs["text_0_tokens"] == 0] = 1
    np.testing.assert_allclose(result.model.predict(padded, verbose=0), before, atol=1e-5)
    assert np.isfinite(before).all() and (np.diff(before, axis=-1) >= 0).all()
    print("JAX OK", before.shape)
    """
)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_model_trains_saves_and_loads_on_jax():
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", ON_JAX], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "JAX OK" in done.stdout
