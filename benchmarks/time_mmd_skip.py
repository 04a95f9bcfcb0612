"""Rules for choosing fusioncast's linear skip, scored alone (no network) on Time-MMD domains.

The skip (:func:`fusioncast.training.fit_linear_skip`) is the part of the model that the network
corrects; this script shows how far a choice among the classical forecasters, made on the
validation windows, carries to later steps. Each rule picks or weights the baselines with the
validation windows only (the ridges fitted on training windows), then is scored on the scored
split as a ratio of its MSE to the best baseline *on that split* (a hindsight choice: a rule
that picks one baseline can never go below 1).

By default the scoring is nested, as ``time_mmd.py --nested``: the test steps are dropped and
the validation steps are scored, with the rules choosing on steps cut from the end of the
training split. ``--test`` scores the test split (reporting only: never choose on it).

``--statistical`` adds statsforecast's peers (AutoETS, AutoTheta, AutoARIMA, fitted on the whole
history up to each origin and refitted as ``time_mmd.py`` does) to the baselines, to the best
one the ratios are taken to, and to the rules: the peers alone, and combined with the skip.

    python benchmarks/time_mmd_skip.py [--data ../shared/data/time-mmd] [--domains A B ...]
        [--test] [--statistical]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from time_mmd import (  # noqa: E402
    BASELINES,
    DEFAULT_DATA,
    SETTINGS,
    Case,
    SharedPeers,
    prepare,
)

from fusioncast.baselines import baseline_forecasts, lookback_target  # noqa: E402
from fusioncast.layers import LinearSkip  # noqa: E402
from fusioncast.split import TEST, VALIDATION  # noqa: E402
from fusioncast.statistical import AUTO_ARIMA, AUTO_ETS, AUTO_THETA  # noqa: E402
from fusioncast.timemmd import convert_domain, list_domains  # noqa: E402
from fusioncast.training import fit_linear_skip  # noqa: E402
from fusioncast.windows import gather_targets  # noqa: E402

LAST, NORMALISED, LEVEL = "last_value", "ridge_normalised", "ridge"
Forecasts = dict[str, np.ndarray]
#: A rule sees the validation windows' baseline forecasts and actual values and returns how to
#: forecast from the baselines' forecasts on other windows.
Rule = Callable[[Forecasts, np.ndarray], Callable[[Forecasts], np.ndarray]]


def _mse(predicted: np.ndarray, actual: np.ndarray, axis=None) -> np.ndarray:
    return np.mean((predicted.astype(np.float64) - actual) ** 2, axis=axis)


def best_single(fv: Forecasts, yv: np.ndarray):
    name = min(fv, key=lambda k: _mse(fv[k], yv))
    return lambda f: f[name]


def share_per_step(fv: Forecasts, yv: np.ndarray):
    """Per horizon step, the mix of the two ridges (level share 0, 1/2 or 1) best on validation."""
    shares = np.array([0.0, 0.5, 1.0])[:, None, None]
    mixes = (1 - shares) * fv[NORMALISED] + shares * fv[LEVEL]  # [3, B, H]
    share = shares[np.argmin(_mse(mixes, yv, axis=1), axis=0), 0, 0]  # [H]
    return lambda f: (1 - share) * f[NORMALISED] + share * f[LEVEL]


def grid_weights(fv: Forecasts, yv: np.ndarray):
    """Weights of last value, normalised and level ridge on a 1/4 grid, best on validation."""
    grid = [
        (a, b, 1 - a - b) for a in np.arange(0, 1.01, 0.25) for b in np.arange(0, 1.01 - a, 0.25)
    ]

    def combine(f: Forecasts, w) -> np.ndarray:
        return w[0] * f[LAST] + w[1] * f[NORMALISED] + w[2] * f[LEVEL]

    weights = min(grid, key=lambda w: _mse(combine(fv, w), yv))
    return lambda f: combine(f, weights)


def equal_mean(fv: Forecasts, yv: np.ndarray):
    return lambda f: (f[LAST] + f[NORMALISED] + f[LEVEL]) / 3


#: name -> (whether the rule picks one baseline, so that its ratio is never below 1; the rule)
RULES: dict[str, tuple[bool, Rule]] = {
    "normalised ridge": (True, lambda fv, yv: lambda f: f[NORMALISED]),
    "best baseline on validation": (True, best_single),
    "ridge mix per step": (False, share_per_step),
    "1/4-grid weights": (False, grid_weights),
    "mean of three": (False, equal_mean),
}
SKIP = "fusioncast skip"  # the benchmark's own setting, through fit_linear_skip
PEERS = (AUTO_ETS, AUTO_THETA, AUTO_ARIMA)


def _mean_of(*names: str) -> Rule:
    return lambda fv, yv: lambda f: sum(f[n] for n in names) / len(names)


def inverse_mse(fv: Forecasts, yv: np.ndarray):
    """The skip and the peers weighted by the inverse of their validation MSE."""
    names = (SKIP, *PEERS)
    weights = np.array([1 / _mse(fv[n], yv) for n in names])
    weights /= weights.sum()
    return lambda f: sum(w * f[n] for w, n in zip(weights, names, strict=True))


def inverse_square_mse(fv: Forecasts, yv: np.ndarray):
    """The skip and the peers weighted by the inverse square of their validation MSE: sharper
    than :func:`inverse_mse` (the model's ``PeerMix`` shares), nearer a forecaster far ahead."""
    names = (SKIP, *PEERS)
    weights = np.array([1 / _mse(fv[n], yv) ** 2 for n in names])
    weights /= weights.sum()
    return lambda f: sum(w * f[n] for w, n in zip(weights, names, strict=True))


#: ``--statistical``: rules over the skip and the peers (the skip is one of the forecasts, and
#: "best baseline on validation" then picks among the peers and the skip too).
STATISTICAL_RULES: dict[str, tuple[bool, Rule]] = {
    "mean of ETS and Theta": (False, _mean_of(AUTO_ETS, AUTO_THETA)),
    "mean of the peers": (False, _mean_of(*PEERS)),
    "skip, ETS and Theta": (False, _mean_of(SKIP, AUTO_ETS, AUTO_THETA)),
    "skip and the peers": (False, _mean_of(SKIP, *PEERS)),
    "inverse-MSE weights": (False, inverse_mse),
    "inverse-square-MSE weights": (False, inverse_square_mse),
}


def skip_forecasts(case: Case, origins: np.ndarray) -> np.ndarray:
    """The model's own linear skip layer alone, with the weights training starts it from."""
    history = lookback_target(case.arrays, origins, case.model.lookback).astype(np.float32)
    last = history[:, -1:]
    layer = LinearSkip(case.horizon)
    layer.build([(None, case.model.lookback, 1), (None, 1), (None, 1)])
    layer.set_weights(fit_linear_skip(case.arrays, case.model))
    # With a spread of 1 the layer's window units are the scaled units.
    change = keras.ops.convert_to_numpy(layer([history[:, :, None], last, np.ones_like(last)]))
    return last + change[:, :, 0]


def score_case(
    case: Case, scored: int, *, statistical: bool = False, peers: SharedPeers | None = None
) -> dict[str, float]:
    """Every rule's MSE on the ``scored`` split over the best baseline's there."""
    a, lookback, horizon = case.arrays, case.model.lookback, case.horizon
    validation = case.origins[VALIDATION]
    origins = case.origins[scored]
    yv = gather_targets(a, validation, horizon).astype(np.float64)
    actual = gather_targets(a, origins, horizon).astype(np.float64)
    fv = baseline_forecasts(a, validation, lookback, horizon)
    fs = baseline_forecasts(a, origins, lookback, horizon)
    if statistical:
        peers = peers or SharedPeers((horizon,))
        fv.update(peers.forecasts(case, VALIDATION))
        fs.update(peers.forecasts(case, scored))
    best = min(float(_mse(f, actual)) for f in fs.values())
    skip = skip_forecasts(case, origins)
    ratios = {SKIP: float(_mse(skip, actual)) / best}
    rules = RULES
    if statistical:
        fv[SKIP], fs[SKIP] = skip_forecasts(case, validation), skip
        rules = {**RULES, **STATISTICAL_RULES}
    for name, (_, rule) in rules.items():
        ratios[name] = float(_mse(rule(fv, yv)(fs), actual)) / best
    return ratios


def run(
    data: Path, domains: list[str] | None, *, test: bool = False, statistical: bool = False
) -> pd.DataFrame:
    rows = {}
    with tempfile.TemporaryDirectory(prefix="fusioncast-skip-") as tmp:
        for name in domains or list_domains(data):
            domain = convert_domain(data, name)
            peers = SharedPeers(domain.protocol.horizons)
            for horizon in domain.protocol.horizons:
                settings = SETTINGS[domain.frequency]
                case = prepare(domain, horizon, settings, Path(tmp), nested=not test)
                scores = score_case(case, TEST, statistical=statistical, peers=peers)
                rows[(name, horizon)] = scores
                print(name, horizon, {k: round(v, 3) for k, v in rows[(name, horizon)].items()})
    table = pd.DataFrame(rows).T
    table.index.names = ["domain", "h"]
    return table


def report(table: pd.DataFrame) -> str:
    """One row per domain and horizon, then per rule its mean ratio, rows at or below 1, worst."""
    rules = list(table.columns)
    lines = ["| domain | h | " + " | ".join(rules) + " |", "|---|---|" + "---|" * len(rules)]
    for (domain, horizon), row in table.iterrows():
        lines.append(f"| {domain} | {horizon} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    lines += ["", "| rule | mean ratio | rows at or below 1 | worst |", "|---|---|---|---|"]
    for rule in rules:
        r = table[rule]
        at_or_below = int((r.round(3) <= 1).sum())  # as printed: float32 skip weights
        lines.append(f"| {rule} | {r.mean():.3f} | {at_or_below} of {len(r)} | {r.max():.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--domains", nargs="*", default=None)
    parser.add_argument("--test", action="store_true", help="score the test split (report only)")
    parser.add_argument("--statistical", action="store_true", help="the peers too (slow)")
    args = parser.parse_args(argv)
    if not list_domains(args.data):
        raise SystemExit(f"no Time-MMD domain under {args.data} (numerical/<D>/<D>.csv)")
    table = run(args.data, args.domains, test=args.test, statistical=args.statistical)
    scored = "test split" if args.test else "validation steps, nested"
    count = len(BASELINES) if args.statistical else len(BASELINES) - len(PEERS)
    print(f"Skip rules alone, ratio of MSE to the best of {count} baselines ({scored}):")
    print(report(table))


if __name__ == "__main__":
    main()
