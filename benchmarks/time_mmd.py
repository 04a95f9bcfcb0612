"""Accuracy on Time-MMD domains: fusioncast, its text controls and the classical baselines.

Any folder in the Time-MMD layout works (``numerical/<D>/<D>.csv``, ``textual/<D>/<D>_report.csv``
and ``_search.csv``); every domain found is converted into the data contract
(:mod:`fusioncast.timemmd`, written to and read back from Parquet) and run through the project's
own code: split, scaler and tokenizer fitted on training steps, windows, training with early
stopping on validation, the baselines.

Protocol (MM-TSFlib): univariate target ``OT`` sorted by date, non-finite targets dropped;
chronological 70/10/20 split by step (``int`` rounding of train and test); z-scoring fitted on
training steps; MSE and MAE on the z-scored scale over every test window (stride 1; the lookback
may reach back into validation). Monthly lookback 8 with horizons 6 and 12, weekly 36 with 12 and
48, daily 96 with 48 and 96.

Rows per domain and horizon, mean +- std over seeds (each seed one training run, no ensembling):

- ``fusioncast``: the full model (numbers and text);
- ``no text``: the same pipeline on the contract with its text columns removed;
- ``shuffled text``: trained and evaluated with each window given another window's text;
- the baselines last value, window mean, ridge on the lookback, ridge on the lookback minus its
  last value (deterministic: no std);
- the statistical peers, statsforecast's AutoETS, AutoTheta and AutoARIMA
  (:mod:`fusioncast.statistical`), each fitted on a series' whole history up to the origin with
  the season of its frequency (monthly 12, weekly 52), selected and fitted again every 10 origins
  (AutoETS, AutoTheta) or once per split (AutoARIMA: minutes per fit at season 52) and
  run forward over the new observations between (``REFIT_EVERY``); computed once per domain
  and split for all its horizons (``SharedPeers``).

    python benchmarks/time_mmd.py [--data ../shared/data/time-mmd] [--domains A B ...]
        [--seeds 3] [--jobs 2] [--write-docs] [--json results.json]
    python benchmarks/time_mmd.py --validation-only --set model.dropout=0.3 ...   (tuning)
    python benchmarks/time_mmd.py --nested ...   (tuning, scored out of sample on validation)
    python benchmarks/time_mmd.py --from-json results.json [--write-docs]   (report saved runs)

``--validation-only`` reports validation MSE only; ``--nested`` scores the validation steps out of
sample (the test steps dropped, training's own validation cut from the end of the training steps),
what settings are chosen on, since validation MSE itself has steered early stopping and the
skip's penalties and mix; ``--set`` overrides
one setting of :data:`SETTINGS` for every frequency (``model.<field>``, ``training.<field>`` or
``text``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fusioncast.baselines import baseline_forecasts  # noqa: E402
from fusioncast.config import BacktestConfig, BaselineConfig, ModelConfig, TrainingConfig  # noqa: E402
from fusioncast.contract import DataContract  # noqa: E402
from fusioncast.presets import preset  # noqa: E402
from fusioncast.selection import (  # noqa: E402
    candidate_settings,
    choose,
    plan_trials,
    run_trial,
    selection_folds,
)
from fusioncast.split import TEST, VALIDATION, split_at  # noqa: E402
from fusioncast.state import ForecastingState  # noqa: E402
from fusioncast.state import prepare as prepare_state  # noqa: E402
from fusioncast.statistical import (  # noqa: E402
    AUTO_ARIMA,
    AUTO_ETS,
    AUTO_THETA,
    statistical_forecasts,
)
from fusioncast.timemmd import Domain, convert_domain, list_domains, mmtsf_boundaries  # noqa: E402
from fusioncast.training import train_forecaster  # noqa: E402
from fusioncast.validation import read_dataset  # noqa: E402
from fusioncast.windows import SeriesArrays, gather_targets, window_origins  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "time-mmd"
DOCS = REPO / "docs" / "benchmarks.md"
SECTION = "## Time-MMD"
LEDGER = "## Test-split ledger"
_LEDGER_HEADER = (
    "| date (UTC) | settings | command | rows | at or below best baseline (hindsight / chosen on "
    "validation) | worst ratio (hindsight / chosen) | mean MSE fusioncast / no text / shuffled |\n"
    "|---|---|---|---|---|---|---|"
)

FULL, NO_TEXT, SHUFFLED = "fusioncast", "no text", "shuffled text"
#: A relative MSE difference below this between the full model and a text control is no effect.
TEXT_TOLERANCE = 0.01
VARIANTS = (FULL, NO_TEXT, SHUFFLED)
BASELINES = {
    "last_value": "last value",
    "window_mean": "window mean",
    "ridge": "ridge",
    "ridge_normalised": "ridge (normalised)",
    AUTO_ETS: "AutoETS",
    AUTO_THETA: "AutoTheta",
    AUTO_ARIMA: "AutoARIMA",
}
#: Origins of a split after which each peer is selected and fitted again (None: once per split,
#: at its first origin; AutoARIMA takes many minutes per fit at season 52 on 2 cores).
REFIT_EVERY = {AUTO_ETS: 10, AUTO_THETA: 10, AUTO_ARIMA: None}
SEASONS = {"monthly": 12, "weekly": 52, "daily": 7}

#: ``--select``: per frequency, the presets the rolling-origin selection chooses among (its folds:
#: :data:`SELECT_FOLDS` origins half a horizon apart, before the test split).
SELECT = {
    frequency: {
        "text": ("report_fact",),
        "select": (f"short-{frequency}", f"short-{frequency}-statistical"),
    }
    for frequency in ("monthly", "weekly", "daily")
}
SELECT_FOLDS = 4

#: Settings per sampling frequency: the library's ``short-*`` presets (chosen on the validation
#: split only: docs/selection.md) and the converted text column the model reads (those a domain
#: lacks are skipped).
SETTINGS: dict[str, dict[str, Any]] = {
    frequency: {"text": ("report_fact",), **preset(f"short-{frequency}")}
    for frequency in ("monthly", "weekly", "daily")
}


@dataclass
class Case:
    """One domain at one horizon: its fitted states and arrays with and without text, and the
    windows."""

    domain: str
    frequency: str
    horizon: int
    text: tuple[str, ...]
    model: ModelConfig
    training: TrainingConfig
    state: ForecastingState
    arrays: SeriesArrays
    state_no_text: ForecastingState
    arrays_no_text: SeriesArrays
    origins: dict[int, np.ndarray] = field(default_factory=dict)


def prepare(
    domain: Domain,
    horizon: int,
    settings: dict[str, Any],
    workdir: Path,
    *,
    nested: bool = False,
) -> Case:
    """Contract + Parquet round trip, split, scaler and vocabularies, arrays for one horizon.

    ``nested``: the test steps are dropped and the validation steps become the test split, with
    as many steps before them, cut from the end of the training split, as the new validation
    split; every choice training makes (penalties, mix, early stopping, keeping the skip) is
    then made without the scored steps, so their score is out of sample.
    """
    protocol = domain.protocol
    text = tuple(c for c in settings["text"] if c in domain.contract.text)
    model = ModelConfig(lookback=protocol.lookback, horizon=horizon, **settings["model"])
    training = TrainingConfig(**settings["training"])
    contract, frame = load(domain, text, workdir)
    boundaries = mmtsf_boundaries(frame, contract)
    if nested:
        frame = frame[boundaries.labels(frame[contract.timestamp]) != TEST].reset_index(drop=True)
        times = np.sort(frame[contract.timestamp].unique())
        n_train = int((times <= boundaries.train_end.to_datetime64()).sum())
        n_validation = len(times) - n_train
        boundaries = split_at(
            frame,
            contract,
            train_end=pd.Timestamp(times[n_train - n_validation - 1]),
            validation_end=pd.Timestamp(times[n_train - 1]),
        )
    state, arrays = prepare_state(frame, contract, boundaries, model)
    no_text = contract.model_copy(update={"text": ()})
    state_no_text, arrays_no_text = prepare_state(frame, no_text, boundaries, model)
    case = Case(
        domain.name,
        domain.frequency,
        horizon,
        text,
        model,
        training,
        state,
        arrays,
        state_no_text,
        arrays_no_text,
    )
    for split in (VALIDATION, TEST):
        case.origins[split] = window_origins(arrays, protocol.lookback, horizon, split)
    return case


def load(domain: Domain, text: tuple[str, ...], workdir: Path) -> tuple[DataContract, pd.DataFrame]:
    """The univariate contract (the target and ``text``, no numeric covariates) and the domain's
    frame through a Parquet round trip, sorted by date."""
    contract = domain.with_text(text).contract.model_copy(update={"numeric": ()})
    path = workdir / f"{domain.name}.parquet"
    if not path.exists():
        domain.write_parquet(path)
    frame = read_dataset(path, contract)
    return contract, frame.sort_values(contract.timestamp, kind="stable").reset_index(drop=True)


def select_preset(
    domain: Domain,
    horizon: int,
    names: tuple[str, ...],
    text: tuple[str, ...],
    workdir: Path,
    *,
    nested: bool = False,
) -> tuple[str, str]:
    """The preset of ``names`` with the lowest mean MSE over :data:`SELECT_FOLDS` rolling origins
    before the test split (:mod:`fusioncast.selection`; the test steps are dropped first), and a
    line saying what each scored. ``nested``: before the validation split, which is then the one
    scored."""
    contract, frame = load(domain, text, workdir)
    boundaries = mmtsf_boundaries(frame, contract)
    end = boundaries.train_end if nested else boundaries.validation_end
    history = frame[frame[contract.timestamp] <= end].reset_index(drop=True)
    model = ModelConfig(lookback=domain.protocol.lookback, horizon=horizon)
    candidates = candidate_settings(names, model, TrainingConfig())
    folds = selection_folds(
        history, contract, model, BacktestConfig(n_folds=SELECT_FOLDS, step=max(1, horizon // 2))
    )
    trials = plan_trials(candidates, folds, model, BaselineConfig(statistical=()))
    scores = [run_trial(history, contract, trial, None) for trial in trials]
    selection = choose(candidates, trials, scores)
    means = ", ".join(f"{k} {v:.4f}" for k, v in selection.mean_mse.items())
    return selection.chosen, f"{domain.name} h{horizon}: selected {selection.chosen} ({means})"


def errors(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    diff = predicted.astype(np.float64) - actual.astype(np.float64)
    return {"mse": float(np.mean(diff**2)), "mae": float(np.mean(np.abs(diff)))}


def peer_forecasts(case: Case, origins: np.ndarray) -> dict[str, np.ndarray]:
    """The statistical peers' forecasts at ``origins``, each refitted as :data:`REFIT_EVERY`
    says."""
    forecasts = {}
    for name, every in REFIT_EVERY.items():
        forecasts.update(
            statistical_forecasts(
                case.arrays,
                case.state.scaler,
                origins,
                case.horizon,
                season=SEASONS[case.frequency],
                models=(name,),
                refit_every=every or len(origins) + 1,
            )
        )
    return forecasts


@dataclass
class SharedPeers:
    """The statistical peers' forecasts of one domain, computed once per split for every horizon.

    A peer's forecast does not depend on how far ahead it is asked for (its first 12 steps are its
    12-step forecast) and every horizon's origins of a split start at the split's first, so the
    forecasts at the longest horizon, over the origins of the shortest, serve every horizon: the
    minutes-long fits at season 52 are made once per domain, not once per horizon.
    """

    horizons: tuple[int, ...]
    done: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = field(default_factory=dict)

    def forecasts(self, case: Case, split: int) -> dict[str, np.ndarray]:
        if split not in self.done:
            origins = window_origins(case.arrays, case.model.lookback, min(self.horizons), split)
            longest = replace(case, horizon=max(self.horizons))
            self.done[split] = origins, peer_forecasts(longest, origins)
        origins, forecasts = self.done[split]
        rows = np.searchsorted(origins, case.origins[split])
        if not np.array_equal(origins[rows[rows < len(origins)]], case.origins[split]):
            raise ValueError(f"{case.domain} h{case.horizon}: origins of another split's arrays")
        return {name: values[rows, : case.horizon] for name, values in forecasts.items()}


def run_baselines(
    case: Case, splits: tuple[int, ...], peers: SharedPeers | None = None
) -> list[dict[str, Any]]:
    peers = peers or SharedPeers((case.horizon,))
    rows = []
    for split in splits:
        origins = case.origins[split]
        actual = gather_targets(case.arrays, origins, case.horizon)
        forecasts = baseline_forecasts(case.arrays, origins, case.model.lookback, case.horizon)
        forecasts.update(peers.forecasts(case, split))
        for name, label in BASELINES.items():
            rows.append({"model": label, "split": split, **errors(forecasts[name], actual)})
    return rows


def run_variant(case: Case, variant: str, seed: int, splits: tuple[int, ...]) -> dict[str, Any]:
    """Train one model (one seed) and score it on the given splits."""
    state = case.state_no_text if variant == NO_TEXT else case.state
    arrays = case.arrays_no_text if variant == NO_TEXT else case.arrays
    shuffle = variant == SHUFFLED
    training = case.training.model_copy(update={"seed": seed})
    start = time.perf_counter()
    forecaster, result = train_forecaster(state, arrays, training, shuffle_text=shuffle)
    fit_seconds = time.perf_counter() - start
    out: dict[str, Any] = {
        "model": variant,
        "seed": seed,
        "fit_s": fit_seconds,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs_run,
    }
    for split in splits:
        origins = case.origins[split]
        actual = gather_targets(arrays, origins, case.horizon)
        forecast = forecaster.predict_windows(arrays, origins, shuffle_text=shuffle, seed=seed)
        for key, value in errors(forecast[..., 0], actual).items():
            out[f"{key}_{split}"] = value
        if variant == FULL:
            # Robustness: the same trained model with every window's text removed (a text feed
            # that stopped) should be no worse than the model trained without text.
            blank = forecaster.predict_windows(arrays, origins, without_text=True, seed=seed)
            out[f"mse_{split}_text_removed"] = errors(blank[..., 0], actual)["mse"]
    return out


def run(
    data: Path,
    domains: list[str] | None,
    seeds: int,
    settings: dict[str, dict[str, Any]],
    *,
    validation_only: bool = False,
    nested: bool = False,
    horizons: list[int] | None = None,
    variants: tuple[str, ...] = VARIANTS,
    jobs: int = 1,
    log=print,
) -> pd.DataFrame:
    """Every (domain, horizon, model) row: metrics per seed, as a long table.

    ``jobs`` > 1 runs that many domains at once, each in its own process, the largest first.
    """
    names = domains or list_domains(data)
    if not names:
        raise SystemExit(f"no Time-MMD domain under {data} (numerical/<D>/<D>.csv)")
    splits = (VALIDATION,) if validation_only else (VALIDATION, TEST)
    converted = [convert_domain(data, name) for name in names]
    cases = [
        (domain.name, tuple(h for h in domain.protocol.horizons if not horizons or h in horizons))
        for domain in sorted(converted, key=lambda d: len(d.frame), reverse=True)
    ]
    records = []
    with tempfile.TemporaryDirectory(prefix="fusioncast-timemmd-") as tmp:
        options = Options(settings, seeds, splits, variants, nested, Path(tmp))
        arguments = [(data, name, chosen, options) for name, chosen in cases if chosen]
        if jobs <= 1:
            for args in arguments:
                records += run_domain(*args, log=log)
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(jobs, mp_context=context) as pool:
                for lines, case_records in pool.map(_run_domain_quietly, arguments):
                    for line in lines:
                        log(line)
                    records += case_records
    table = pd.DataFrame(records)
    # Baselines give one row per split: merge them into one row per baseline.
    return (
        table.groupby(["domain", "frequency", "horizon", "model", "seed"], sort=False)
        .first()
        .reset_index()
    )


@dataclass(frozen=True)
class Options:
    """What every case of a run shares: settings per frequency, seeds, scored splits, variants,
    whether the scoring is nested, and the scratch folder."""

    settings: dict[str, dict[str, Any]]
    seeds: int
    splits: tuple[int, ...]
    variants: tuple[str, ...]
    nested: bool
    workdir: Path


def run_domain(
    data: Path, name: str, horizons: tuple[int, ...], options: Options, *, log=print
) -> list[dict[str, Any]]:
    """Every horizon of one domain, the statistical peers fitted once for all of them."""
    domain = convert_domain(data, name)
    peers = SharedPeers(horizons)
    records = []
    for horizon in horizons:
        records += run_case(domain, horizon, options, peers, log=log)
    return records


def run_case(
    domain: Domain, horizon: int, options: Options, peers: SharedPeers, *, log=print
) -> list[dict[str, Any]]:
    """The baselines and every variant and seed of one domain at one horizon."""
    name, nested, splits = domain.name, options.nested, options.splits
    workdir = options.workdir / f"{name}-h{horizon}"
    workdir.mkdir(parents=True, exist_ok=True)
    chosen = options.settings[domain.frequency]
    base = {"domain": name, "frequency": domain.frequency, "horizon": horizon}
    if "select" in chosen:  # the preset chosen by rolling origins before the test split
        text = tuple(c for c in chosen["text"] if c in domain.contract.text)
        name_chosen, line = select_preset(
            domain, horizon, chosen["select"], text, workdir, nested=nested
        )
        log(line)
        chosen = {"text": chosen["text"], **preset(name_chosen)}
        base["preset"] = name_chosen
    case = prepare(domain, horizon, chosen, workdir, nested=nested)
    records = []
    for row in run_baselines(case, splits, peers):
        split = row.pop("split")
        records.append(
            {**base, "model": row["model"], "seed": -1, "fit_s": 0.0}
            | {f"{k}_{split}": v for k, v in row.items() if k != "model"}
        )
    for variant in options.variants:
        if variant != NO_TEXT and not case.text:
            log(f"{name} h{horizon}: no text columns, {variant} skipped")
            continue
        for seed in range(options.seeds):
            record = {**base, **run_variant(case, variant, seed, splits)}
            records.append(record)
            log(_progress(record, splits))
    return records


def _run_domain_quietly(args: tuple) -> tuple[list[str], list[dict[str, Any]]]:
    """:func:`run_domain` in a worker process: its progress lines are returned, not printed."""
    lines: list[str] = []
    return lines, run_domain(*args, log=lines.append)


def _progress(record: dict[str, Any], splits: tuple[int, ...]) -> str:
    scores = " ".join(
        f"{'val' if s == VALIDATION else 'test'} MSE {record[f'mse_{s}']:.4f}" for s in splits
    )
    return (
        f"  {record['domain']} h{record['horizon']} {record['model']:<13} seed {record['seed']}: "
        f"{scores}, best epoch {record['best_epoch']}/{record['epochs']}, "
        f"{record['fit_s']:.1f} s"
    )


def summarise(table: pd.DataFrame, split: int) -> pd.DataFrame:
    """Mean and std over seeds per (domain, horizon, model) of MSE and MAE on ``split``."""
    removed = f"mse_{split}_text_removed"
    if removed not in table:
        table = table.assign(**{removed: np.nan})
    grouped = table.groupby(["domain", "horizon", "model"], sort=False)
    out = grouped.agg(
        mse=(f"mse_{split}", "mean"),
        mse_std=(f"mse_{split}", "std"),
        mae=(f"mae_{split}", "mean"),
        mae_std=(f"mae_{split}", "std"),
        text_removed=(removed, "mean"),
        fit_s=("fit_s", "mean"),
        runs=("seed", "size"),
    )
    return out.reset_index()


def verdicts(summary: pd.DataFrame, validation: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (domain, horizon): best baseline, the full model's ratio to it, what text adds.

    ``validation``: the summary on the validation split, which adds the baseline best there
    (the one a user would pick without seeing the scored split) and the full model's ratio to
    that baseline's score on the scored split.
    """
    rows = []
    chosen: dict[tuple[str, int], str] = {}
    if validation is not None:
        known = validation[validation["model"].isin(BASELINES.values())]
        for key, group in known.groupby(["domain", "horizon"], sort=False):
            chosen[key] = group.loc[group["mse"].idxmin(), "model"]
    for (domain, horizon), group in summary.groupby(["domain", "horizon"], sort=False):
        mse = dict(zip(group["model"], group["mse"], strict=True))
        removed = dict(zip(group["model"], group["text_removed"], strict=True))
        baselines = {m: v for m, v in mse.items() if m in BASELINES.values()}
        best = min(baselines, key=baselines.get)
        full = mse.get(FULL, mse.get(NO_TEXT))
        row = {
            "domain": domain,
            "horizon": horizon,
            "best_baseline": best,
            "best_baseline_mse": baselines[best],
            "fusioncast_mse": full,
            "ratio": full / baselines[best],
            "no_text_mse": mse.get(NO_TEXT, np.nan),
            "shuffled_mse": mse.get(SHUFFLED, np.nan),
            "text_removed_mse": removed.get(FULL, np.nan),
            "chosen_baseline": chosen.get((domain, horizon), best),
        }
        row["chosen_ratio"] = full / baselines[row["chosen_baseline"]]
        if FULL not in mse:
            row["text"] = "no text in this domain"
        else:
            # Differences under TEXT_TOLERANCE (relative) are treated as no difference.
            gain = min(row["no_text_mse"], row["shuffled_mse"]) / full - 1
            loss = full / max(row["no_text_mse"], row["shuffled_mse"]) - 1
            if gain > TEXT_TOLERANCE:
                row["text"] = "helps (beats no text and shuffled text)"
            elif loss > TEXT_TOLERANCE:
                row["text"] = "hurts (both controls do better)"
            else:
                row["text"] = "no clear effect (within 1 % of a control)"
        rows.append(row)
    return pd.DataFrame(rows)


def _pm(mean: float, std: float, runs: int) -> str:
    return f"{mean:.4f}" if runs <= 1 or not np.isfinite(std) else f"{mean:.4f} ± {std:.4f}"


def markdown(summary: pd.DataFrame, verdict: pd.DataFrame) -> str:
    lines = [
        "| domain | h | model | test MSE | test MAE | fit s/run |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in summary.iterrows():
        fit = f"{r['fit_s']:.1f}" if r["model"] in VARIANTS else ""
        name = f"**{r['model']}**" if r["model"] == FULL else r["model"]
        lines.append(
            f"| {r['domain']} | {r['horizon']} | {name} | {_pm(r['mse'], r['mse_std'], r['runs'])}"
            f" | {_pm(r['mae'], r['mae_std'], r['runs'])} | {fit} |"
        )
    lines += [
        "",
        "| domain | h | best baseline (test MSE) | fusioncast / best | best on validation |"
        " fusioncast / it | no text | shuffled text | fusioncast, text removed |"
        " what the text adds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in verdict.iterrows():
        lines.append(
            f"| {r['domain']} | {r['horizon']} | {r['best_baseline']} "
            f"({r['best_baseline_mse']:.4f}) | {r['ratio']:.3f} | {r['chosen_baseline']} | "
            f"{r['chosen_ratio']:.3f} | {r['no_text_mse']:.4f} | "
            f"{r['shuffled_mse']:.4f} | {r['text_removed_mse']:.4f} | {r['text']} |"
        )
    return "\n".join(lines)


def overall(verdict: pd.DataFrame, split_name: str = "test") -> str:
    n = len(verdict)
    at_or_below = int((verdict["ratio"] <= 1.0).sum())
    worst = verdict["ratio"].max()
    text = verdict.dropna(subset=["no_text_mse", "shuffled_mse"])
    chosen = verdict["chosen_ratio"]
    lines = [
        f"fusioncast at or below the best baseline on {at_or_below} of {n} rows; "
        f"worst ratio {worst:.3f}. Against the baseline best on the validation split (the one "
        f"a user would pick without seeing the {split_name} steps): at or below on "
        f"{int((chosen <= 1.0).sum())} of {n} rows; worst ratio {chosen.max():.3f}.",
    ]
    if len(text):
        full = text["fusioncast_mse"].mean()
        lines.append(
            f"Mean {split_name} MSE over {len(text)} rows: fusioncast {full:.4f}, no text "
            f"{text['no_text_mse'].mean():.4f}, shuffled text {text['shuffled_mse'].mean():.4f}; "
            f"mean ratio to no text {(text['fusioncast_mse'] / text['no_text_mse']).mean():.3f}, "
            f"to shuffled text {(text['fusioncast_mse'] / text['shuffled_mse']).mean():.3f}."
        )
        removed = text["text_removed_mse"] / text["no_text_mse"]
        if removed.notna().any():
            lines.append(
                f"With every window's text removed at forecast time (a text feed that stopped), "
                f"the full model's mean ratio to the no-text model is {removed.mean():.3f} "
                f"(worst {removed.max():.3f})."
            )
        helped = text[text["text"].str.startswith("helps")]
        hurt = text[text["text"].str.startswith("hurts")]
        names = [f"{d} h{h}" for d, h in zip(helped["domain"], helped["horizon"], strict=True)]
        which = f": {', '.join(names)}." if names else "."
        lines.append(
            f"Text helps (beats both controls by more than 1 %) on {len(helped)} of {len(text)} "
            f"rows{which}"
        )
        names = [f"{d} h{h}" for d, h in zip(hurt["domain"], hurt["horizon"], strict=True)]
        if names:
            lines.append(f"It hurts (both controls better by more than 1 %) on {', '.join(names)}.")
    return " ".join(lines)


def targets(verdict: pd.DataFrame, wall: float) -> str:
    """The issue's targets, each said to be met or not, with the rows that miss them."""
    n = len(verdict)
    chosen = verdict["chosen_ratio"]
    below = int((chosen <= 1.0).sum())
    over = verdict[chosen > 1.05]
    over_text = ", ".join(
        f"{r.domain} h{r.horizon} {r.chosen_ratio:.3f}x" for r in over.itertuples()
    )
    met = below >= min(9, n) and over.empty
    mean_ratio = verdict["ratio"].mean()
    lines = [
        f"Targets: at or below the baseline best on validation on at least 9 of {n} rows and "
        f"never above 1.05x of it: **{'met' if met else 'not met'}** ({below} of {n}"
        + (f"; above 1.05x: {over_text})." if over_text else ")."),
        f"Mean ratio to the best baseline in hindsight at most 0.97: "
        f"**{'met' if mean_ratio <= 0.97 else 'not met'}** ({mean_ratio:.3f}).",
    ]
    text = verdict.dropna(subset=["no_text_mse", "shuffled_mse"])
    if len(text):
        full = text["fusioncast_mse"].mean()
        gain = 1 - full / max(text["no_text_mse"].mean(), text["shuffled_mse"].mean())
        beats = full <= 0.98 * min(text["no_text_mse"].mean(), text["shuffled_mse"].mean())
        worst = (text["fusioncast_mse"] / text["no_text_mse"]).max()
        lines.append(
            f"The full model beats both text controls on the mean by at least 2 %: "
            f"**{'met' if beats else 'not met'}** (mean MSE {full:.4f}, no text "
            f"{text['no_text_mse'].mean():.4f}, shuffled {text['shuffled_mse'].mean():.4f}; "
            f"gain over the weaker control {gain:.1%}). Never more than 2 % worse than no "
            f"text: **{'met' if worst <= 1.02 else 'not met'}** (worst ratio {worst:.3f})."
        )
    lines.append(
        f"All domains in under 30 minutes: **{'met' if wall < 1800 else 'not met'}** "
        f"({wall / 60:.1f} min)."
    )
    return " ".join(lines)


def settings_hash(settings: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    """A short hash of every setting that shapes a run: presets with overrides, domains, horizons,
    variants and seeds."""
    scope = {
        "settings": settings,
        "domains": args.domains,
        "horizons": args.horizons,
        "variants": sorted(args.variants),
        "seeds": args.seeds,
    }
    text = json.dumps(scope, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def source_commit() -> str:
    """The checkout's commit, marked when its ``src`` or ``benchmarks`` differ from it: the
    settings hash names presets, not the code that runs them ("unknown" outside git)."""

    def git(*command: str) -> str:
        done = subprocess.run(
            ["git", *command], cwd=REPO, capture_output=True, text=True, check=True, timeout=30
        )
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--", "src", "benchmarks")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit} with uncommitted changes" if changed else commit


def ledger_row(
    verdict: pd.DataFrame, args: argparse.Namespace, digest: str, argv: list[str]
) -> str:
    """One ledger line for a scoring of the test split."""
    chosen = verdict["chosen_ratio"]
    text = verdict.dropna(subset=["no_text_mse", "shuffled_mse"])
    means = (
        f"{text['fusioncast_mse'].mean():.4f} / {text['no_text_mse'].mean():.4f} / "
        f"{text['shuffled_mse'].mean():.4f}"
        if len(text)
        else "n/a"
    )
    n = len(verdict)
    return (
        f"| {pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M} | `{digest}` at `{args.commit}` | "
        f"`python benchmarks/time_mmd.py {' '.join(argv)}` | {n} | "
        f"{int((verdict['ratio'] <= 1.0).sum())} / {int((chosen <= 1.0).sum())} of {n} | "
        f"{verdict['ratio'].max():.3f} / {chosen.max():.3f} | {means} |"
    )


def append_to_ledger(row: str, path: Path = DOCS) -> None:
    """Add ``row`` at the end of the ledger section (made, with its header, when missing)."""
    content = path.read_text() if path.exists() else "# Benchmarks\n"
    if LEDGER not in content:
        content = (
            content.rstrip()
            + f"\n\n{LEDGER}\n\nEvery scoring of the Time-MMD test split, appended by "
            "`benchmarks/time_mmd.py` itself, so the number of looks is visible.\n\n"
            + _LEDGER_HEADER
            + "\n"
        )
    # after the last row of the section's first table (the Time-MMD looks; the demo's follow)
    lines = content.splitlines()
    start = lines.index(LEDGER)
    header = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    end = header
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    lines.insert(end, row)
    path.write_text("\n".join(lines).rstrip() + "\n")


def write_docs(section: str, path: Path = DOCS) -> None:
    """Replace (or append) the ``## Time-MMD`` section of ``docs/benchmarks.md``."""
    content = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}.*?(?=^## |\Z)", re.M | re.S)
    block = section.rstrip() + "\n\n"
    if pattern.search(content):
        content = pattern.sub(lambda _: block, content, count=1)
    else:
        content = content.rstrip() + "\n\n" + block
    path.write_text(content.rstrip() + "\n")


def docs_section(
    summary: pd.DataFrame, verdict: pd.DataFrame, args: argparse.Namespace, wall: float
) -> str:
    model = ", ".join(f"{k}={v}" for k, v in SETTINGS["monthly"]["model"].items())
    training = "; ".join(
        f"{frequency}: " + ", ".join(f"{k}={v}" for k, v in SETTINGS[frequency]["training"].items())
        for frequency in ("monthly", "weekly")
    )
    concurrency = (
        "one case at a time; fit times are noisy"
        if args.jobs <= 1
        else f"{args.jobs} domains at once; fit times are per run, with the other processes "
        "competing for the cores, and noisy"
    )
    chosen = ""
    if getattr(args, "chosen", None):
        chosen = (
            f"Settings as a user would run them (`--select`): per domain and horizon, the preset "
            f"with the lowest mean MSE over {SELECT_FOLDS} rolling origins half a horizon apart "
            f"before the test split (`fusioncast.selection`), between `short-<frequency>` and "
            f"`short-<frequency>-statistical`: {args.chosen}. The lookback is the protocol's. "
        )
    flag = " --select" if chosen else ""
    return f"""{SECTION} accuracy (`benchmarks/time_mmd.py`)

The five Time-MMD domains of `../shared/data/time-mmd`, each converted from its raw folder into the
data contract by `fusioncast.timemmd` (text events attached to the first step that ends at or
after the event's end) and run through the project's own split, scaler, tokenizer, windows,
training and baselines. MM-TSFlib protocol: univariate target `OT` sorted by date, 70/10/20
chronological split by step (`int` rounding, as MM-TSFlib), z-scoring fitted on training steps,
MSE and MAE on the z-scored scale over every test window (stride 1, the lookback may reach back
into validation); lookback 8 with horizons 6 and 12 (monthly), 36 with 12 and 48 (weekly).
Mean ± std over {args.seeds} seeds, each seed one training run (no ensembling); the baselines are
deterministic. *no text*: the same pipeline with the contract's text columns removed; *shuffled
text*: trained and evaluated with each window given another window's text; *fusioncast, text
removed*: the full model with every window's text removed at forecast time (a text feed that
stopped).

Command: `python benchmarks/time_mmd.py --seeds {args.seeds} --jobs {args.jobs}{flag}
--write-docs`, wall time {wall / 60:.1f} min on the shared 2-core CPU machine ({concurrency}).
Baselines include statsforecast's AutoETS, AutoTheta and AutoARIMA (season 12 monthly, 52
weekly) fitted on each series' whole history up to the origin, selected and fitted again every 10
origins (AutoETS, AutoTheta) or once per split (AutoARIMA), run forward over the new observations
between.
The baselines reproduce the reference figures of the protocol on the raw files (test MSE:
Agriculture h6 last value 0.084; Energy h12 normalised ridge 0.081 vs 0.082; Health_US h12
normalised ridge 1.035 vs 1.034; Traffic h6 normalised ridge 0.146 vs 0.144; Climate h12 last
value 0.423).

{markdown(summary, verdict)}

{overall(verdict)}

{targets(verdict, wall)}

Coverage of the report text (the column the model reads) limits what it can add: Agriculture's
reports start in November 2018 (none in its training span), Health_US's end in January 2020 (its
test span, from 2019, has hardly any while most training windows have some), the other three
cover all three spans in part.

{chosen}Fixed settings (all domains): {model}; text column `report_fact`. Training: {training};
the presets `short-monthly` and `short-weekly` (`fusioncast.presets`); how they were chosen,
and what each earlier look at the test split showed, is in `docs/selection.md`."""


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    settings = json.loads(json.dumps(SETTINGS))
    for item in items:
        key, _, raw = item.partition("=")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        for frequency in settings.values():
            if key == "text":
                frequency["text"] = tuple(value if isinstance(value, list) else [value])
            else:
                section, _, name = key.partition(".")
                frequency[section][name] = value
    for frequency in settings.values():
        frequency["text"] = tuple(frequency["text"])
    return settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--domains", nargs="*", default=None)
    parser.add_argument("--horizons", nargs="*", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1, help="domains run at once, one process each")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--validation-only", action="store_true")
    parser.add_argument(
        "--nested",
        action="store_true",
        help="score the validation steps out of sample: drop the test steps, score on the "
        "validation steps, validate on the end of the training steps (for choosing settings)",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument(
        "--select",
        action="store_true",
        help="per domain and horizon, the preset chosen by rolling-origin selection before the "
        "test split (short-<frequency> or its -statistical twin) instead of the fixed one",
    )
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--ledger",
        type=Path,
        default=DOCS,
        help="where a scoring of the test split is recorded (its ledger section)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write every run's metrics here")
    parser.add_argument(
        "--from-json", type=Path, default=None, help="report the runs saved by --json, no training"
    )
    args = parser.parse_args(argv)
    args.commit = source_commit()  # before the run: the code may change while it runs
    if args.write_docs and (args.validation_only or args.overrides or args.nested):
        parser.error("--write-docs reports the fixed settings on the test split only")

    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        table, wall = pd.DataFrame(saved["runs"]), float(saved["wall_s"])
        args.jobs = int(saved.get("jobs", 1))
        args.seeds = int(table.loc[table["seed"] >= 0, "seed"].nunique())
    else:
        start = time.perf_counter()
        table = run(
            args.data,
            args.domains,
            args.seeds,
            SELECT if args.select else parse_overrides(args.overrides),
            validation_only=args.validation_only,
            nested=args.nested,
            horizons=args.horizons,
            variants=tuple(args.variants),
            jobs=args.jobs,
        )
        wall = time.perf_counter() - start
    if args.json:
        runs = json.loads(table.to_json(orient="records"))
        payload = {"wall_s": wall, "jobs": args.jobs, "runs": runs}
        args.json.write_text(json.dumps(payload, indent=1))
    split = VALIDATION if args.validation_only else TEST
    summary = summarise(table, split)
    verdict = verdicts(summary, summarise(table, VALIDATION))
    label = "VALIDATION" if split == VALIDATION else "TEST"
    if args.nested:
        label = "NESTED (scored on the validation steps, out of sample)"
    print(f"\n{label} split, {args.seeds} seeds, wall time {wall:.0f} s\n")
    if "preset" in table:
        chosen = table.dropna(subset=["preset"]).groupby(["domain", "horizon"])["preset"].first()
        args.chosen = ", ".join(f"{d} h{h} {p}" for (d, h), p in chosen.items())
        print(f"\npresets chosen by rolling-origin selection: {args.chosen}")
    text = markdown(summary, verdict)
    if split == VALIDATION:
        text = text.replace("test MSE", "val MSE").replace("test MAE", "val MAE")
    print(text)
    print()
    print(overall(verdict, "validation" if split == VALIDATION else "test"))
    if split == TEST and not args.nested and not args.from_json:  # a new look at the test split
        digest = settings_hash(SELECT if args.select else parse_overrides(args.overrides), args)
        argv = sys.argv[1:] if argv is None else argv
        append_to_ledger(ledger_row(verdict, args, digest, argv), args.ledger)
        print(f"\nrecorded this look at the test split (settings {digest}) in {args.ledger}")
    if args.write_docs:
        write_docs(docs_section(summary, verdict, args, wall))
        print(f"\nwrote the {SECTION} section of {DOCS}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
