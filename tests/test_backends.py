"""The model code is backend-agnostic: it trains, saves and loads on JAX where JAX is installed.

TensorFlow (the default backend) is what the rest of the suite runs on.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest
from tiny_pipeline import child_env

pytestmark = pytest.mark.slow

ON_JAX = textwrap.dedent(
    """
    import keras, numpy as np, tempfile
    assert keras.backend.backend() == "jax", keras.backend.backend()
    from fusioncast.config import TrainingConfig
    from fusioncast.forecast import Forecaster
    from fusioncast.training import train_forecaster
    from fusioncast.windows import forecast_origins, gather_inputs
    from tiny_pipeline import tiny_state_and_arrays

    state, arrays = tiny_state_and_arrays()
    forecaster, _ = train_forecaster(
        state, arrays, TrainingConfig(epochs=2, batch_size=16, steps_per_epoch=3)
    )
    origins = forecast_origins(arrays, 14)
    directory = tempfile.mkdtemp()
    forecaster.save(directory)
    before = forecaster.predict_windows(arrays, origins)
    after = Forecaster.load(directory).predict_windows(arrays, origins)
    np.testing.assert_allclose(after, before, atol=1e-6)
    inputs = gather_inputs(arrays, origins, 14, 8)
    padded = dict(inputs)
    padded["text_0_age"] = inputs["text_0_age"].copy()
    padded["text_0_age"][inputs["text_0_tokens"] == 0] = 1
    np.testing.assert_allclose(forecaster.model.predict(padded, verbose=0), before, atol=1e-5)
    assert np.isfinite(before).all() and (np.diff(before, axis=-1) >= 0).all()
    print("JAX OK", before.shape)
    """
)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_model_trains_saves_and_loads_on_jax():
    env = child_env(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, "-c", ON_JAX], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "JAX OK" in done.stdout
