"""The sharded ``forecast`` flow by task runner: in one piece, on worker processes, and on a Dask
cluster with 1 and with 2 workers, in one run.

Data: ``benchmarks/scale.py``'s synthetic series in the contract (``--series`` daily series x
``--steps`` steps, a static and a per-step categorical, sparse text), one Parquet file. Model: the
default model (untrained: its cost is a trained one's) with the state fitted on that data,
registered as the champion of a temporary workspace. Each configuration runs the real ``forecast``
flow (Prefect's temporary server) ``--repeats`` times; the seconds of each of its tasks come from
the Prefect API (the task runs' own run times): loading the model, validation, the shards (the
slowest one, and their sum), gathering, publishing, and the run end to end; "outside tasks" is
the rest (starting the worker processes or the Dask cluster, sending the shards, Prefect's own
bookkeeping). A first unmeasured run starts the temporary server. Prints the medians, and each
configuration's end-to-end time over the one-piece forecast.

    python benchmarks/scale_out.py [--series 10000] [--steps 200] [--shards 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: name -> ForecastParameters changes
CONFIGURATIONS = {
    "one piece (shards=1)": {},
    "process pool, 2 workers": {"task_runner": {"kind": "process", "workers": 2}},
    "dask-local, 1 worker": {"task_runner": {"kind": "dask-local", "workers": 1}},
    "dask-local, 2 workers": {"task_runner": {"kind": "dask-local", "workers": 2}},
}


STAGES = [
    "end to end (flow)",
    "load-model",
    "validate",
    "forecast",
    "shards: slowest",
    "shards: sum",
    "gather-shards",
    "publish",
    "summarise-run",
    "outside tasks",
]


def registered_workspace(data: Path, root: Path) -> None:
    """The default model and the state fitted on ``data``, the champion of ``root/models``."""
    import keras
    from scale import CONTRACT

    from fusioncast.config import ModelConfig, ValidationConfig
    from fusioncast.forecast import Forecaster
    from fusioncast.model import build_model
    from fusioncast.registry import ModelRegistry
    from fusioncast.split import split_by_time
    from fusioncast.state import ForecastingState, fit_scaler, fit_vocabularies
    from fusioncast.validation import validate_dataset

    config = ModelConfig()
    frame, _ = validate_dataset(
        data, CONTRACT, min_length=config.lookback + config.horizon, config=ValidationConfig()
    )
    boundaries = split_by_time(frame, CONTRACT)
    scaler = fit_scaler(frame, CONTRACT, boundaries)
    encoder, tokenizers = fit_vocabularies(frame, CONTRACT, boundaries, config)
    state = ForecastingState.create(CONTRACT, scaler, encoder, tokenizers, config)
    keras.utils.set_random_seed(0)
    registry = ModelRegistry(root / "models")
    version = registry.register(
        Forecaster(build_model(state.spec, seed=0), state),
        parameters={"benchmark": "scale_out"},
        data_fingerprint="benchmark",
    )
    registry.promote(version, reason="benchmark")


def task_seconds(run_id: str) -> dict[str, float]:
    """The run's task run times by stage (shards: the slowest and the sum)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
    seconds: dict[str, float] = {}
    shards = []
    for run in runs:
        name = run.name.rsplit("-", 1)[0]
        spent = run.total_run_time.total_seconds()
        if name.startswith("forecast-shard"):
            shards.append(spent)
        else:
            seconds[name] = seconds.get(name, 0.0) + spent
    if shards:
        seconds["shards: slowest"] = max(shards)
        seconds["shards: sum"] = sum(shards)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    from scale import write_data

    from fusioncast.flows.forecast import forecast_flow
    from fusioncast.parameters import ForecastParameters

    with tempfile.TemporaryDirectory(prefix="fusioncast-scale-out-") as tmp:
        tmp = Path(tmp)
        data = write_data(tmp / "data.parquet", args.series, args.steps)
        registered_workspace(data, tmp / "out")
        base = ForecastParameters(data_path=str(data), workspace={"root": str(tmp / "out")})
        forecast_flow(base)  # the temporary server's start and first imports: not measured
        results: dict[str, dict[str, list[float]]] = {}
        for _ in range(args.repeats):
            for name, changes in CONFIGURATIONS.items():
                shards = 1 if not changes else args.shards
                parameters = ForecastParameters.model_validate(
                    {**base.model_dump(), "shards": shards, **changes}
                )
                start = time.perf_counter()
                outcome = forecast_flow(parameters)
                wall = time.perf_counter() - start
                tasks = task_seconds(outcome["run_id"])
                in_run = sum(v for k, v in tasks.items() if k != "shards: sum")
                stages = {"end to end (flow)": wall, **tasks, "outside tasks": wall - in_run}
                for stage, seconds in stages.items():
                    results.setdefault(name, {}).setdefault(stage, []).append(seconds)
                print(f"{name}: {wall:.1f} s", file=sys.stderr, flush=True)
    report(results, args)


def report(results: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> None:
    found = {s for r in results.values() for s in r}
    stages = [s for s in STAGES if s in found] + sorted(found - set(STAGES))
    names = list(results)
    print(
        f"\nforecast flow, {args.series:,} series x {args.steps} steps, shards={args.shards} "
        f"(median of {args.repeats}; seconds)"
    )
    print(f"{'stage':<24}" + "".join(f"{n:>26}" for n in names))
    for stage in stages:
        cells = []
        for name in names:
            values = results[name].get(stage)
            cells.append(f"{statistics.median(values):>26.1f}" if values else f"{'-':>26}")
        print(f"{stage:<24}" + "".join(cells))
    one = statistics.median(results[names[0]]["end to end (flow)"])
    print("\nend to end over the one-piece forecast:")
    for name in names:
        ratio = statistics.median(results[name]["end to end (flow)"]) / one
        print(f"  {name:<26} {ratio:.2f}x")


if __name__ == "__main__":
    main()
