"""Seconds and peak memory of every stage of ``forecast`` and of retrain's preparation, by size.

Synthetic data in the data contract: N daily series x 400 steps with a float target, a numeric
covariate (price), a static categorical (store, 100 values), a per-step categorical (promotion
kind, 4 values) and a sparse text column (a note on about one row in twenty), written as one
Parquet file. For each N, in one process:

- **retrain's preparation**: validate (read + rules + GX), fingerprint, split, scale (fit the
  scaler), tokenize (category vocabularies and text tokenizers), arrays (scaled, encoded and
  tokenized contiguous arrays with split labels);
- **forecast** at the library level, with the default model (untrained: its cost is the trained
  model's) and the state fitted above: validate, the model's input arrays, predict with
  explanations, the forecast table, publishing; end to end, and again with ``--unseen`` series
  (default 10 % of N, at most 10,000) removed from the scaler, as a forecast of series the
  model has not seen;
- two floors: reading the Parquet file (pyarrow to pandas, as validation does), and the model's
  bare ``predict`` on prebuilt windows (the same inputs, gathered beforehand).

Each measurement runs in a fresh process (preparation; the two floors; each forecast), all of
them ``--repeats`` times in turn; the median of each stage's seconds is reported. Peak memory is
the process's resident high-water mark during the stage (reset before each stage through
``/proc/self/clear_refs``), the largest over the repeats. Prints a table per N, the growth of
each stage from one N to the next, and the targets of issue 17.

    python benchmarks/scale.py [--sizes 1000 10000 100000] [--steps 400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pandas as pd  # noqa: E402
from validation import CONTRACT as VALIDATION_CONTRACT  # noqa: E402  (benchmarks/validation.py)

from fusioncast.config import ModelConfig, ValidationConfig  # noqa: E402

#: ``benchmarks/validation.py``'s data, with its per-step categorical
CONTRACT = VALIDATION_CONTRACT.model_copy(update={"dynamic_categorical": ("promotion",)})


def write_data(path: Path, n_series: int, steps: int) -> Path:
    """``n_series`` daily series of ``steps`` rows as one Parquet file."""
    from validation import write_synthetic

    return write_synthetic(path, n_series * steps, steps=steps, promotion=True)


def reset_peak() -> None:
    """Reset the process's resident high-water mark (Linux: ``clear_refs`` 5)."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def peak_gb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


class Stages:
    """Seconds and peak resident memory (GB) of named stages, in order; stages may nest (an inner
    stage's reset of the high-water mark first hands the mark so far to the open outer ones)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak: dict[str, float] = {}
        self._open: list[str] = []

    def results(self) -> dict[str, tuple[float, float]]:
        return {name: (self.seconds[name], self.peak[name]) for name in self.seconds}

    def _hand_over(self) -> None:
        mark = peak_gb()
        for name in self._open:
            self.peak[name] = max(self.peak.get(name, 0.0), mark)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if not self._open:  # not inside an open stage's time
            gc.collect()
        self._hand_over()
        reset_peak()
        self._open.append(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self._hand_over()
            self._open.pop()


@contextlib.contextmanager
def _substages(stage: Stages, name: str) -> Iterator[None]:
    """Time the parts of :meth:`Forecaster.predict` (its unseen-series scaling, input arrays,
    the explanation model, prediction with explanations); the rest of it is trimming the frame
    and building the forecast table."""
    import fusioncast.forecast as module
    from fusioncast.state import ForecastingState

    originals = (
        ForecastingState.for_new_series,
        ForecastingState.arrays,
        module.explain_windows,
        module.Forecaster.explainer,
    )

    def timed(label, function):
        def wrapper(*args, **kwargs):
            with stage(f"{name}: - {label}"):
                return function(*args, **kwargs)

        return wrapper

    ForecastingState.for_new_series = timed("unseen series", originals[0])
    ForecastingState.arrays = timed("input arrays", originals[1])
    module.explain_windows = timed("predict + explanations", originals[2])
    module.Forecaster.explainer = property(timed("explanation model", originals[3].fget))
    try:
        yield
    finally:
        ForecastingState.for_new_series, ForecastingState.arrays = originals[:2]
        module.explain_windows, module.Forecaster.explainer = originals[2:]


def prepare(path: Path, out: Path, unseen: int, save: bool) -> dict[str, tuple[float, float]]:
    """Retrain's preparation of the data at ``path``; saves the default model (untrained) with the
    state as ``out/seen``, and as ``out/unseen`` without the scaler's statistics of ``unseen``
    series."""
    import keras

    from fusioncast.forecast import Forecaster
    from fusioncast.frames import fingerprint
    from fusioncast.model import build_model
    from fusioncast.split import split_by_time
    from fusioncast.state import ForecastingState, fit_scaler, fit_vocabularies
    from fusioncast.validation import validate_dataset

    config = ModelConfig()
    stage = Stages()
    with stage("prepare: validate"):
        frame, _ = validate_dataset(
            path,
            CONTRACT,
            min_length=config.lookback + config.horizon,
            config=ValidationConfig(),
            report_dir=out / "report-prepare",
        )
    with stage("prepare: fingerprint"):
        fingerprint(frame)
    with stage("prepare: split"):
        boundaries = split_by_time(frame, CONTRACT)
    with stage("prepare: scale"):
        scaler = fit_scaler(frame, CONTRACT, boundaries)
    with stage("prepare: tokenize"):
        encoder, tokenizers = fit_vocabularies(frame, CONTRACT, boundaries, config)
    state = ForecastingState.create(CONTRACT, scaler, encoder, tokenizers, config)
    with stage("prepare: arrays"):
        state.arrays(frame, boundaries)
    if not save:
        return stage.results()
    keras.utils.set_random_seed(0)
    forecaster = Forecaster(build_model(state.spec), state)
    kept = slice(0, len(scaler.series) - unseen)  # the last ``unseen`` series are unseen
    partial = replace(
        state,
        scaler=replace(
            scaler,
            series=scaler.series[kept],
            location=scaler.location[kept],
            scale=scaler.scale[kept],
        ),
    )
    for name, saved in (("seen", forecaster), ("unseen", replace(forecaster, state=partial))):
        (out / name).mkdir()
        saved.save(out / name)
    return stage.results()


def floors(path: Path, model: Path) -> dict[str, tuple[float, float]]:
    """Reading the Parquet file, and the model's bare ``predict`` on prebuilt forecast windows."""
    from fusioncast.forecast import Forecaster
    from fusioncast.predict import predict_windows
    from fusioncast.validation import read_dataset
    from fusioncast.windows import forecast_origins

    stage = Stages()
    with stage("floor: read Parquet"):
        frame = read_dataset(path, CONTRACT)
    forecaster = Forecaster.load(model, "bench")
    config = forecaster.config
    arrays = forecaster.state.arrays(forecaster.state.forecast_rows(frame))
    del frame
    origins = forecast_origins(arrays, config.lookback)
    predict_windows(forecaster.model, arrays, origins[:64], config)  # compiled outside the time
    with stage("floor: bare predict"):
        predict_windows(forecaster.model, arrays, origins, config)
    return stage.results()


def forecast(path: Path, model: Path, name: str) -> dict[str, tuple[float, float]]:
    """``forecast`` at the library level: load the model, validate, predict, publish."""
    from fusioncast.forecast import Forecaster
    from fusioncast.publish import publish_forecasts
    from fusioncast.validation import validate_dataset

    stage = Stages()
    with stage(f"{name}: end to end"):
        with stage(f"{name}: load model"):
            forecaster = Forecaster.load(model, "bench")
        config = forecaster.config
        with stage(f"{name}: validate"):
            frame, report = validate_dataset(
                path,
                CONTRACT,
                min_length=config.lookback,
                config=ValidationConfig(),
                report_dir=model / "report",
            )
        with stage(f"{name}: Forecaster.predict"), _substages(stage, name):
            out = forecaster.predict(
                frame,
                freq=report.freq,
                run_id=model.name,
                created_at=pd.Timestamp("2026-12-06", tz="UTC"),
            )
        with stage(f"{name}: publish"):
            publish_forecasts(out, model / "forecasts", run_id=model.name)
    assert len(out) == frame[CONTRACT.series_id].nunique() * config.horizon, len(out)
    return stage.results()


def child(args: list[str]) -> None:
    """One measurement in this (fresh) process; prints its results as JSON on the last line."""
    import great_expectations  # noqa: F401  (imported outside every stage)

    kind, path, where = args[0], Path(args[1]), Path(args[2])
    if kind == "prepare":
        results = prepare(path, where, int(args[3]), save=args[4] == "True")
    elif kind == "floors":
        results = floors(path, where)
    else:
        results = forecast(path, where, "forecast" if where.name == "seen" else "forecast, unseen")
    print(json.dumps(results))


def run_size(
    n_series: int, steps: int, unseen: int, repeats: int, tmp: Path
) -> dict[str, tuple[float, float]]:
    """Every measurement of one size, each in its own process (so that no stage's peak memory
    includes what an earlier one left to the allocators), ``repeats`` times in turn; the median
    of each stage's seconds and its largest peak."""
    path = write_data(tmp / f"series-{n_series}.parquet", n_series, steps)
    out = tmp / f"state-{n_series}"
    out.mkdir()
    runs: dict[str, list[tuple[float, float]]] = {}
    for repeat in range(repeats):
        for args in (
            ["prepare", path, out, unseen, repeat == 0],
            ["floors", path, out / "seen"],
            ["forecast", path, out / "seen"],
            ["forecast", path, out / "unseen"],
        ):
            command = [sys.executable, __file__, "--child", *map(str, args)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-4000:]}")
            for name, value in json.loads(done.stdout.splitlines()[-1]).items():
                runs.setdefault(name, []).append(tuple(value))
    path.unlink()
    return {
        name: (statistics.median(s for s, _ in values), max(p for _, p in values))
        for name, values in runs.items()
    }


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--unseen", type=float, default=0.1, help="share of N unseen")
    parser.add_argument("--max-unseen", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each process per size")
    args = parser.parse_args()

    order = [
        "floor: read Parquet",
        "floor: bare predict",
        *(f"prepare: {s}" for s in ("validate", "fingerprint", "split", "scale", "tokenize")),
        "prepare: arrays",
    ]
    results, unseen_counts = {}, {}
    with tempfile.TemporaryDirectory(prefix="fusioncast-scale-") as tmp:
        for n in args.sizes:
            unseen = unseen_counts[n] = max(1, min(args.max_unseen, int(n * args.unseen)))
            start = time.perf_counter()
            found = run_size(n, args.steps, unseen, args.repeats, Path(tmp))
            results[n] = {k: found[k] for k in order} | {
                k: found[k] for k in found if k not in order
            }
            seconds = time.perf_counter() - start
            print(f"N = {n:,} ({unseen:,} unseen): {seconds:.0f} s", flush=True)
            for name, (seconds, peak) in results[n].items():
                print(f"  {name:<45} {seconds:9.2f} s  peak {peak:6.2f} GB", flush=True)
    report(results, unseen_counts, args.steps)


def report(
    results: dict[int, dict[str, tuple[float, float]]], unseen: dict[int, int], steps: int
) -> None:
    sizes = sorted(results)
    names = list(results[sizes[0]])
    header = " | ".join(f"N={n:,} s (peak GB)" for n in sizes)
    growth = " | ".join(f"x{b // a} growth" for a, b in zip(sizes, sizes[1:], strict=False))
    print(f"\n| stage | {header} | {growth} |")
    print("|---" * (1 + len(sizes) + len(sizes) - 1) + "|")
    for name in names:
        cells = [f"{results[n][name][0]:.2f} ({results[n][name][1]:.2f})" for n in sizes]
        ratios = [
            f"{results[b][name][0] / max(results[a][name][0], 1e-9):.1f}"
            for a, b in zip(sizes, sizes[1:], strict=False)
        ]
        print(f"| {name} | " + " | ".join(cells + ratios) + " |")
    print(f"\n{steps} steps per series; {os.cpu_count()} CPU(s); python {sys.version.split()[0]}")
    print("\nTargets (issue 17):")
    for a, b in zip(sizes, sizes[1:], strict=False):
        worst = max(names, key=lambda s: results[b][s][0] / max(results[a][s][0], 1e-9))
        ratio = results[b][worst][0] / max(results[a][worst][0], 1e-9)
        print(f"  N={a:,} -> {b:,}: largest growth {ratio:.1f}x ({worst}); target <= 12x for 10x")
    for n in sizes:
        r = results[n]
        floor = r["floor: read Parquet"][0] + r["floor: bare predict"][0]
        end = r["forecast: end to end"][0]
        late = r["forecast, unseen: end to end"][0]
        prep = sum(r[s][0] for s in r if s.startswith("prepare: "))
        print(
            f"  N={n:,}: forecast end to end {end:.1f} s = {end / floor:.2f}x (read + bare "
            f"predict {floor:.1f} s; target <= 3x), peak {r['forecast: end to end'][1]:.2f} GB "
            f"(target < 6); {unseen[n]:,} unseen series add {late / end - 1:+.1%} (target "
            "<= +10% for 10,000); "
            f"preparation {prep:.1f} s = {prep / r['prepare: validate'][0]:.2f}x validation "
            "(target <= 4x)"
        )


if __name__ == "__main__":
    main()
