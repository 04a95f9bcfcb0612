"""Training on several devices (``training.distribution``): the same fit, split across replicas.

TensorFlow presents this machine's CPU as two devices (:func:`fusioncast.distribution.split_cpu`,
before TensorFlow starts: hence a child process).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from tiny_pipeline import child_env

from fusioncast.config import TrainingConfig
from fusioncast.errors import ConfigError

pytestmark = pytest.mark.slow

TWO_REPLICAS = textwrap.dedent(
    """
    import json, tempfile
    import numpy as np
    from fusioncast.distribution import split_cpu
    split_cpu(2)
    from fusioncast.config import TrainingConfig
    from fusioncast.forecast import Forecaster
    from fusioncast.training import train_forecaster
    from fusioncast.windows import forecast_origins
    from tiny_pipeline import tiny_state_and_arrays

    # no dropout: each replica draws its own masks
    state, arrays = tiny_state_and_arrays(dropout=0.0, text_dropout=0.0)
    out = {}
    for mode in ("none", "data_parallel"):
        training = TrainingConfig(
            epochs=3, batch_size=32, steps_per_epoch=4, seed=3, distribution=mode
        )
        forecaster, result = train_forecaster(state, arrays, training)
        origins = forecast_origins(arrays, 14)
        before = forecaster.predict_windows(arrays, origins)
        directory = tempfile.mkdtemp()
        forecaster.save(directory)
        after = Forecaster.load(directory).predict_windows(arrays, origins)
        out[mode] = {
            "replicas": forecaster.model.distribute_strategy.num_replicas_in_sync,
            "val_loss": result.history["val_loss"],
            "loss": result.history["loss"],
            "saved_and_loaded": float(np.abs(after - before).max()),
            "finite": bool(np.isfinite(before).all()),
        }
    print("RESULT " + json.dumps(out))
    """
)


def test_data_parallel_on_two_devices_trains_the_single_device_model():
    done = subprocess.run(
        [sys.executable, "-c", TWO_REPLICAS],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    runs = json.loads(line.removeprefix("RESULT "))
    one, two = runs["none"], runs["data_parallel"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    assert len(two["val_loss"]) == len(one["val_loss"]) == 3
    for run in (one, two):
        assert run["finite"] and run["saved_and_loaded"] < 1e-5
    # The same windows in the same order (the sampler's draws depend on seed and epoch only);
    # each replica's loss is the mean over its half of the batch divided by 2, and the summed
    # gradients are the batch's. What may differ is float32 rounding in the order of the sums
    # (about 1e-7 relative per step; measured: equal to 1e-7 after 12 steps): 1e-5 leaves room
    # for it to accumulate, and is far below what one batch more or less would change (1e-2).
    assert two["val_loss"] == pytest.approx(one["val_loss"], rel=1e-5)
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)


def test_an_unknown_distribution_is_refused_naming_those_there_are():
    with pytest.raises(ValueError, match="'none', 'data_parallel' or 'multi_worker'"):
        TrainingConfig(distribution="mirrored")


def test_data_parallel_on_a_backend_without_it_is_refused_naming_those_with_it(monkeypatch):
    import keras

    from fusioncast import distribution
    from fusioncast.errors import ConfigError

    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    with (
        pytest.raises(ConfigError, match="tensorflow or jax Keras backend.*runs torch"),
        distribution.scope("data_parallel"),
    ):
        pass
    with distribution.scope("none") as replicas:  # one device needs no strategy
        assert replicas == 1


def test_multi_worker_on_tensorflow_is_refused_naming_jax():
    """Keras 3's TensorFlow trainer cannot build this model under MultiWorkerMirroredStrategy
    (its inputs are a dict: keras-team/keras#20329); JAX's multi-process training can."""
    from fusioncast import distribution
    from fusioncast.errors import ConfigError

    with (
        pytest.raises(ConfigError, match=r"needs the jax Keras backend \(KERAS_BACKEND=jax\)"),
        distribution.scope("multi_worker"),
    ):
        pass


def test_each_process_of_a_job_serves_its_part_of_every_batch():
    """The parts of a batch served by the processes of a job are, in order, the batch one
    process serves: the same windows and the same text dropout."""
    import numpy as np
    from tiny_pipeline import tiny_state_and_arrays

    from fusioncast.split import TRAIN
    from fusioncast.windows import window_origins

    state, arrays = tiny_state_and_arrays()
    origins = window_origins(arrays, 14, 3, TRAIN)
    settings = dict(
        lookback=14,
        horizon=3,
        max_text_tokens=8,
        batch_size=8,
        shuffle=True,
        seed=5,
        text_dropout=0.5,
        steps_per_epoch=3,
    )
    from fusioncast.windows import WindowSampler

    whole = WindowSampler(arrays, origins, **settings)
    parts = [WindowSampler(arrays, origins, share=(i, 2), **settings) for i in range(2)]
    for sampler in (whole, *parts):
        sampler.epoch = 1
    for batch in range(3):
        inputs, targets = whole[batch]
        halves = [part[batch] for part in parts]
        assert [len(h[1]) for h in halves] == [4, 4]
        np.testing.assert_array_equal(np.concatenate([h[1] for h in halves]), targets)
        for name, values in inputs.items():
            np.testing.assert_array_equal(np.concatenate([h[0][name] for h in halves]), values)
    with pytest.raises(ConfigError, match="batch_size 8 does not divide among 3 processes"):
        WindowSampler(arrays, origins, share=(0, 3), **settings)
