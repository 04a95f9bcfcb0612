"""Peak memory of training over a large table: 1,000 series x 10,000 steps x 8 float32 features.

The table is 320 MB; its windows materialised at lookback 96 would take about 30 GB. The project
gathers windows by index, so the peak stays near the table plus the framework. One epoch over all
~7 million training windows takes hours on two CPU cores; memory does not grow with the number of
batches (each batch is gathered, used and dropped), so the epoch is cut at ``--batches`` batches
drawn from every training window, and the script reports the peak resident set size of the process.

    python benchmarks/memory.py [--series 1000] [--steps 10000] [--batches 100]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()

    import keras
    from _synthetic import synthetic_arrays

    from fusioncast.config import ModelConfig, TrainingConfig
    from fusioncast.model import ModelSpec
    from fusioncast.training import train_model

    print(f"after imports: current {current_mb():.0f} MB, peak {peak_mb():.0f} MB", flush=True)
    arrays = synthetic_arrays(args.series, args.steps, args.features)
    table_mb = arrays.numeric.nbytes / 2**20
    materialised_gb = arrays.n_rows * 96 * args.features * 4 / 2**30
    print(
        f"table {arrays.n_rows:,} rows x {args.features} float32 = {table_mb:.0f} MB "
        f"(materialised lookback-96 windows: {materialised_gb:.1f} GB); "
        f"current {current_mb():.0f} MB, peak {peak_mb():.0f} MB",
        flush=True,
    )
    config = ModelConfig(lookback=96, horizon=24, loss="mse")
    spec = ModelSpec(config, n_numeric=args.features)
    training = TrainingConfig(
        epochs=1, batch_size=args.batch_size, steps_per_epoch=args.batches, patience=1
    )
    start = time.perf_counter()
    train_model(arrays, spec, training)
    seconds = time.perf_counter() - start
    print(
        f"one epoch of {args.batches} batches x {args.batch_size} windows "
        f"(drawn from all training windows) on {keras.backend.backend()}: {seconds:.0f} s"
    )
    print(f"peak resident memory of the process: {peak_mb():.0f} MB")


if __name__ == "__main__":
    main()
