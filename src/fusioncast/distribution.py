"""Training on several devices with the frameworks' own data parallelism.

``training.distribution``:

- ``none``: one device (the default);
- ``data_parallel``: every local device holds a copy of the model and trains on its share of
  each batch; the gradients are summed across them before every update. TensorFlow:
  ``tf.distribute.MirroredStrategy`` over the local GPUs (else the local CPU devices); JAX:
  ``keras.distribution.DataParallel`` over ``keras.distribution.list_devices()``.
- ``multi_worker``: the same over the devices of several processes (one per host, or several on
  one), each running the same training: JAX backend, ``jax.distributed`` joined from Keras's
  variables ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` (the coordinator first, ``host:port``),
  ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and ``KERAS_DISTRIBUTION_PROCESS_ID`` (unset: JAX's own
  detection of SLURM, Open MPI or Kubernetes). Each process gathers only its own share of
  every batch (:func:`share`); process 0 alone writes (:func:`writes`), the epoch backups
  included, and a job started again after a kill resumes from process 0's backup on every
  process (:func:`same_files`). A process that dies fails the others at their next exchange,
  and JAX ends them after :data:`PEER_TIMEOUT_S` without its heartbeat.

The global batch is ``training.batch_size`` (the windows of one step), split across the devices
by the framework: the model, loss, sampler and callbacks are the same code as on one device, and
so is what a run writes (one model).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import keras

from fusioncast.config import Distribution
from fusioncast.errors import ConfigError

#: the Keras backends with a data-parallel strategy here
BACKENDS = ("tensorflow", "jax")
#: seconds without a heartbeat after which ``multi_worker`` takes a process for dead
PEER_TIMEOUT_S = 30


@contextlib.contextmanager
def scope(distribution: Distribution) -> Iterator[int]:
    """Build, compile and fit the model in this scope; yields the number of replicas.

    Raises:
        ConfigError: a distribution on a backend without it (naming those with it), or a
            ``multi_worker`` run whose processes cannot join.
    """
    if distribution == "none":
        yield 1
        return
    backend = keras.backend.backend()
    if distribution == "multi_worker" and backend != "jax":
        # Keras 3's TensorFlow trainer cannot build a model whose inputs are a dict under
        # MultiWorkerMirroredStrategy (keras-team/keras#20329): its reduce of the first batch
        # fails. JAX's multi-process data parallelism trains the model as it is.
        raise ConfigError(
            f"training.distribution 'multi_worker' needs the jax Keras backend "
            f"(KERAS_BACKEND=jax); this process runs {backend}"
        )
    if backend == "tensorflow":
        import tensorflow as tf

        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
        with strategy.scope():
            yield strategy.num_replicas_in_sync
    elif backend == "jax":
        if distribution == "multi_worker":
            join()
        parallel = keras.distribution.DataParallel(
            devices=keras.distribution.list_devices(),
            # each process gathers its own share of every batch (``share``)
            auto_shard_dataset=distribution != "multi_worker",
        )
        with parallel.scope():
            yield int(parallel.device_mesh.devices.size)
    else:
        raise ConfigError(
            f"training.distribution {distribution!r} needs the {' or '.join(BACKENDS)} Keras "
            f"backend (KERAS_BACKEND); this process runs {backend}"
        )


def join() -> None:
    """Join this process to the ``multi_worker`` job (once; see the module's text)."""
    import jax

    if jax.distributed.is_initialized():
        return
    addresses = os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES") or None
    count = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES")
    index = os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID")
    # CPU devices exchange over TCP (gloo); GPUs use NCCL whatever this says
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=addresses.split(",")[0] if addresses else None,
            num_processes=int(count) if count else None,
            process_id=int(index) if index else None,
            heartbeat_timeout_seconds=PEER_TIMEOUT_S,
            initialization_timeout=PEER_TIMEOUT_S * 4,
        )
    except (RuntimeError, ValueError) as error:
        raise ConfigError(
            f"training.distribution 'multi_worker': cannot join the job (coordinator "
            f"{addresses or 'auto-detected'}, process {index} of {count}): {error}"
        ) from None


def share(distribution: Distribution) -> tuple[int, int]:
    """This process's part of every batch: ``(index, count)``, ``(0, 1)`` unless the run is
    ``multi_worker`` (joined by :func:`scope`)."""
    if distribution != "multi_worker":
        return 0, 1
    import jax

    return jax.process_index(), jax.process_count()


def writes(distribution: Distribution) -> bool:
    """Whether this process writes what the run makes (the model, its registry version, the
    forecasts): every process but the workers of a ``multi_worker`` job other than process 0."""
    return share(distribution)[0] == 0


def same_files(directory: Path) -> None:
    """``multi_worker``: give ``directory`` on every other process the files it holds on process
    0 (its epoch backup), by broadcast; every process calls this at the same point of the fit.

    Restoring a backup, and saving one, are steps the processes take together: placing a value on
    the job's devices (Keras does it for the weights it loads, and for a variable it makes while
    saving) is checked across them. So every process restores process 0's backup, and saves each
    epoch's (the others into scratch folders)."""
    import numpy as np
    from jax.experimental import multihost_utils

    directory = Path(directory)
    first = share("multi_worker")[0] == 0
    header, content = b"", b""  # the others send nothing
    if first:
        files = {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}
        header = json.dumps({name: len(data) for name, data in files.items()}).encode()
        content = b"".join(files.values())
    size = multihost_utils.broadcast_one_to_all(np.asarray(len(header), np.int32))
    sizes = json.loads(_broadcast_bytes(header, int(size)))
    content = _broadcast_bytes(content, sum(sizes.values()))
    if first:
        return
    start = 0
    for name, length in sizes.items():
        (directory / name).write_bytes(content[start : start + length])
        start += length


def _broadcast_bytes(data: bytes, size: int) -> bytes:
    """Process 0's ``data`` (``size`` bytes, which every process knows; the others pass b"")
    on every process."""
    import numpy as np
    from jax.experimental import multihost_utils

    if size == 0:
        return b""
    mine = np.frombuffer(data, np.uint8) if data else np.zeros(size, np.uint8)
    return np.asarray(multihost_utils.broadcast_one_to_all(mine), np.uint8).tobytes()


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
