"""Training on several devices with the frameworks' own data parallelism.

``training.distribution``:

- ``none``: one device (the default);
- ``data_parallel``: every local device holds a copy of the model and trains on its share of
  each batch; the gradients are summed across them before every update. TensorFlow:
  ``tf.distribute.MirroredStrategy`` over the local GPUs (else the local CPU devices); JAX:
  ``keras.distribution.DataParallel`` over ``keras.distribution.list_devices()``.

The global batch is ``training.batch_size`` (the windows of one step), split across the devices
by the framework: the model, loss, sampler and callbacks are the same code as on one device, and
so is what a run writes (one process: one model).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

from fusioncast.config import Distribution
from fusioncast.errors import ConfigError

#: the Keras backends with a data-parallel strategy here
BACKENDS = ("tensorflow", "jax")


@contextlib.contextmanager
def scope(distribution: Distribution) -> Iterator[int]:
    """Build, compile and fit the model in this scope; yields the number of replicas.

    Raises:
        ConfigError: ``data_parallel`` on a backend without it (naming those with it).
    """
    if distribution == "none":
        yield 1
        return
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
        with strategy.scope():
            yield strategy.num_replicas_in_sync
    elif backend == "jax":
        parallel = keras.distribution.DataParallel(devices=keras.distribution.list_devices())
        with parallel.scope():
            yield int(parallel.device_mesh.devices.size)
    else:
        raise ConfigError(
            f"training.distribution {distribution!r} needs the {' or '.join(BACKENDS)} Keras "
            f"backend (KERAS_BACKEND); this process runs {backend}"
        )


def split_cpu(count: int) -> None:
    """Present the CPU as ``count`` TensorFlow devices (call before TensorFlow starts), so that
    ``data_parallel`` runs ``count`` replicas on a machine without GPUs: for tests and
    benchmarks of the distributed code path. JAX: set
    ``XLA_FLAGS=--xla_force_host_platform_device_count=<count>`` before it is imported."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )
