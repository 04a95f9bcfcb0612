"""Training throughput: the project's window sampler against the same model fed pre-built arrays.

Shapes (issue: lookback 96, 8 numeric features, 64 text tokens, vocabulary 20,000, batch 256).
Both feeds train the same compiled model on the same windows, alternating epoch by epoch in one
process, so machine noise hits both alike; the first epoch of each (tracing) is not counted.

    python benchmarks/throughput.py [--rounds 15] [--batches 10] [--batch-size 256] [--workers 1]
        [--distribution data_parallel [--replicas 2]]

Prints windows/s per round, the medians, and the ratio sampler / in-memory (median of per-round
ratios). Set KERAS_BACKEND=jax to measure on JAX (e.g. on a GPU host).

``--distribution data_parallel``: the sampler feeding the model on one device against the same
model under ``training.distribution="data_parallel"`` (every local GPU; on a machine without
one, TensorFlow's CPU split into ``--replicas`` devices; JAX on CPU: set
``XLA_FLAGS=--xla_force_host_platform_device_count=N``), the same global batch, alternating.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _synthetic import synthetic_arrays  # noqa: E402

from fusioncast import distribution  # noqa: E402
from fusioncast.config import ModelConfig  # noqa: E402
from fusioncast.model import ModelSpec, build_model, compile_model  # noqa: E402
from fusioncast.split import TRAIN  # noqa: E402
from fusioncast.windows import (  # noqa: E402
    WindowSampler,
    gather_inputs,
    gather_targets,
    window_origins,
)

LOOKBACK, HORIZON, FEATURES, TOKENS, VOCABULARY = 96, 24, 8, 64, 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batches", type=int, default=10, help="batches per epoch")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--series", type=int, default=40)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument(
        "--workers", type=int, default=1, help="threads gathering the sampler's batches"
    )
    parser.add_argument("--distribution", choices=["none", "data_parallel"], default="none")
    parser.add_argument("--replicas", type=int, default=2, help="CPU devices without a GPU")
    args = parser.parse_args()
    if args.distribution == "data_parallel" and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            distribution.split_cpu(args.replicas)

    arrays = synthetic_arrays(args.series, args.steps, FEATURES, vocabulary=VOCABULARY)
    config = ModelConfig(lookback=LOOKBACK, horizon=HORIZON, max_text_tokens=TOKENS, loss="mse")
    spec = ModelSpec(config, n_numeric=FEATURES, text_vocabulary_sizes=[VOCABULARY])
    rng = np.random.default_rng(0)
    origins = window_origins(arrays, LOOKBACK, HORIZON, TRAIN)
    origins = rng.choice(origins, args.batches * args.batch_size, replace=False)

    prebuilt_x = gather_inputs(arrays, origins, LOOKBACK, TOKENS)
    prebuilt_y = gather_targets(arrays, origins, HORIZON)
    sampler = WindowSampler(
        arrays,
        origins,
        lookback=LOOKBACK,
        horizon=HORIZON,
        max_text_tokens=TOKENS,
        batch_size=args.batch_size,
        shuffle=True,
        workers=args.workers,
    )
    keras.utils.set_random_seed(0)
    model = compile_model(build_model(spec), config, 1e-3)
    if args.distribution == "data_parallel":
        replicated(model, spec, config, sampler, args)
        return

    def epoch_with(feed: str) -> float:
        start = time.perf_counter()
        if feed == "sampler":
            model.fit(sampler, epochs=1, verbose=0)
        else:
            model.fit(
                prebuilt_x,
                prebuilt_y,
                batch_size=args.batch_size,
                epochs=1,
                shuffle=True,
                verbose=0,
            )
        return len(origins) / (time.perf_counter() - start)

    epoch_with("sampler"), epoch_with("arrays")  # tracing and warm-up, not counted
    rates: dict[str, list[float]] = {"sampler": [], "arrays": []}
    for round_ in range(args.rounds):
        order = ("sampler", "arrays") if round_ % 2 == 0 else ("arrays", "sampler")
        for feed in order:
            rates[feed].append(epoch_with(feed))
        print(
            f"round {round_ + 1}: sampler {rates['sampler'][-1]:8.0f} windows/s, "
            f"in-memory arrays {rates['arrays'][-1]:8.0f} windows/s",
            flush=True,
        )
    ratios = [s / a for s, a in zip(rates["sampler"], rates["arrays"], strict=True)]
    print(
        f"backend {keras.backend.backend()}, batch {args.batch_size}, workers {args.workers}, "
        f"{len(origins)} windows per epoch, {args.rounds} rounds"
    )
    print(f"median sampler:          {statistics.median(rates['sampler']):8.0f} windows/s")
    print(f"median in-memory arrays: {statistics.median(rates['arrays']):8.0f} windows/s")
    print(f"sampler / in-memory (median of per-round ratios): {statistics.median(ratios):.3f}")


def replicated(
    model: keras.Model,
    spec: ModelSpec,
    config: ModelConfig,
    sampler: WindowSampler,
    args: argparse.Namespace,
) -> None:
    """Windows/s of the sampler feeding ``model`` on one device and the same model replicated on
    every local device, alternating epoch by epoch."""
    with distribution.scope("data_parallel") as replicas:
        keras.utils.set_random_seed(0)
        parallel = compile_model(build_model(spec), config, 1e-3, replicas=replicas)
    models = {"1 device": model, f"{replicas} replicas": parallel}

    def epoch_with(name: str) -> float:
        start = time.perf_counter()
        models[name].fit(sampler, epochs=1, verbose=0)
        return len(sampler.origins) / (time.perf_counter() - start)

    for name in models:  # tracing and warm-up, not counted
        epoch_with(name)
    rates: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            rates[name].append(epoch_with(name))
        print(
            f"round {round_ + 1}: "
            + ", ".join(f"{n} {rates[n][-1]:8.0f} windows/s" for n in names),
            flush=True,
        )
    one, many = names
    ratios = [m / o for o, m in zip(rates[one], rates[many], strict=True)]
    print(
        f"backend {keras.backend.backend()}, global batch {args.batch_size}, "
        f"{len(sampler.origins)} windows per epoch, {args.rounds} rounds"
    )
    for name in names:
        print(f"median {name + ':':13s} {statistics.median(rates[name]):8.0f} windows/s")
    print(f"{many} / 1 device (median of per-round ratios): {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
