"""Choosing settings on rolling origins before the test split: never the test steps, the better
settings chosen, ties to the earlier, and the ``select`` command end to end."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest
from tiny_pipeline import TINY_MODEL_SETTINGS

from fusioncast.backtest import Fold
from fusioncast.config import BacktestConfig, BaselineConfig, ModelConfig, TrainingConfig
from fusioncast.contract import MetricColumn as M
from fusioncast.demo import DEMO_CONTRACT as C
from fusioncast.demo import generate_demo_frame, write_demo_dataset
from fusioncast.errors import ConfigError
from fusioncast.parameters import SelectParameters
from fusioncast.presets import PRESETS
from fusioncast.selection import (
    Candidate,
    Trial,
    candidate_settings,
    choose,
    history_before_test,
    plan_trials,
    select_settings,
    selection_folds,
)
from fusioncast.split import split_by_time

TINY_MODEL = TINY_MODEL_SETTINGS
TINY_TRAINING = {"epochs": 2, "batch_size": 64, "patience": 2, "steps_per_epoch": 3}
NO_PEERS = BaselineConfig(statistical=())


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """One store, two categories, 160 days (128 before the test split) of a strong weekly
    season on a trend: a ridge on the lookback forecasts it almost exactly, the last value not."""
    data = generate_demo_frame(n_stores=1, n_categories=2, n_days=160, seed=2)
    data = data.sort_values([C.series_id, C.timestamp]).reset_index(drop=True)
    step = data.groupby(C.series_id).cumcount().to_numpy()
    noise = np.random.default_rng(0).normal(0.0, 0.5, len(data))
    data[C.target] = 100.0 + 0.2 * step + 20.0 * np.sin(2 * np.pi * step / 7) + noise
    return data


def _with_absurd_test_steps(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose test-split steps hold huge targets and covariates and other text."""
    test = frame[C.timestamp] > split_by_time(frame, C).validation_end
    assert test.any()
    absurd = frame.copy()
    absurd.loc[test, C.target] = 1e9
    absurd.loc[test, "price"] = -1e9
    absurd.loc[test, "note"] = "clearance clearance clearance"
    return absurd


# -- the candidates ------------------------------------------------------------------------------


def test_the_run_fields_apply_to_every_candidate_over_the_preset():
    model = ModelConfig(lookback=14, horizon=7, hidden_units=48)
    training = TrainingConfig(epochs=3)
    default, weekly = candidate_settings(["default", "short-weekly"], model, training)
    assert default.model == model and default.training == training
    assert weekly.model.linear_skip == "ridge" and weekly.training.keep_initial  # the preset's
    assert (weekly.model.lookback, weekly.model.horizon) == (14, 7)
    assert weekly.model.hidden_units == 48 and weekly.training.epochs == 3  # the run's
    assert weekly.training.patience == PRESETS["short-weekly"]["training"]["patience"]
    assert weekly.overridden == ("model.hidden_units", "training.epochs")
    assert default.overridden == ()


def test_an_unknown_candidate_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="unknown candidate 'long-hourly'; the candidates are"):
        candidate_settings(["default", "long-hourly"], ModelConfig(), TrainingConfig())
    with pytest.raises(ValueError, match="unknown candidate 'long-hourly'"):
        SelectParameters(candidates=("long-hourly",))
    with pytest.raises(ValueError, match="select chooses the preset"):
        SelectParameters.model_validate({"preset": "short-weekly"})
    assert SelectParameters().candidates == ("default", *PRESETS)


def test_equal_settings_are_fitted_once_and_the_peers_once_per_fold(frame):
    model = ModelConfig(**TINY_MODEL)
    candidates = candidate_settings(
        ["short-weekly", "default", "short-daily"], model, TrainingConfig()
    )
    history = history_before_test(frame, C, TrainingConfig())
    folds = selection_folds(history, C, model, BacktestConfig(n_folds=2))
    trials = plan_trials(candidates, folds, model, BaselineConfig())
    assert [(t.fold.index, t.candidates) for t in trials] == [
        (0, ("short-weekly", "short-daily")),
        (0, ("default",)),
        (1, ("short-weekly", "short-daily")),
        (1, ("default",)),
    ]
    assert [bool(t.baselines.statistical) for t in trials] == [True, False, True, False]
    other = Candidate("longer", ModelConfig(**{**TINY_MODEL, "horizon": 3}), TrainingConfig())
    with pytest.raises(ConfigError, match="candidate 'longer' has lookback 14 and horizon 3"):
        plan_trials([other], folds, model)


def test_folds_that_do_not_fit_before_the_test_split_are_a_config_error(frame):
    history = history_before_test(frame, C, TrainingConfig())
    assert history[C.timestamp].nunique() == 128
    with pytest.raises(ConfigError, match="use fewer backtest.n_folds.*the 128 steps before"):
        selection_folds(history, C, ModelConfig(**TINY_MODEL), BacktestConfig(n_folds=20))


# -- the choice ----------------------------------------------------------------------------------


def _scores(fold: Fold, mse: dict[str, float]) -> pd.DataFrame:
    """A trial's scores as :func:`fusioncast.selection.run_trial` gives them."""
    return pd.DataFrame(
        {
            M.FOLD: np.int32(fold.index),
            M.ORIGIN: fold.origin,
            M.MODEL: list(mse),
            M.MSE: list(mse.values()),
            M.N_WINDOWS: 2,
        }
    )


def test_a_tie_goes_to_the_earlier_candidate_and_the_baseline_is_the_lowest_mean():
    day = pd.Timestamp("2024-01-01")
    folds = [Fold(k, day - pd.Timedelta(days=7 * k), day, day, day) for k in (0, 1)]
    names = ["b", "a", "c"]
    candidates = [Candidate(n, ModelConfig(), TrainingConfig()) for n in names]
    trials = [
        Trial((n,), ModelConfig(), TrainingConfig(), fold, NO_PEERS)
        for fold in folds
        for n in names
    ]
    mse = {  # per trial: the model, its ablation (never a baseline) and the baselines
        ("b", 0): 0.5, ("a", 0): 0.3, ("c", 0): 0.2,
        ("b", 1): 0.3, ("a", 1): 0.5, ("c", 1): 0.9,
    }  # fmt: skip
    scores = [
        _scores(
            t.fold,
            {
                "fusioncast": mse[t.candidates[0], t.fold.index],
                "fusioncast_text_removed": 0.01,
                "last_value": 0.6 + 0.2 * t.fold.index,  # mean 0.7
                "ridge": 0.4 if t.fold.index else 1.1,  # mean 0.75
                # scored on one fold only: not comparable over the folds
                **({"seasonal_naive": 0.05} if t.fold.index == 0 else {}),
            },
        )
        for t in trials
    ]
    selection = choose(candidates, trials, scores)
    assert selection.mean_mse == pytest.approx({"b": 0.4, "a": 0.4, "c": 0.55})
    assert selection.chosen == "b"  # a tie with "a": the earlier in the order given
    assert selection.fold_mse["c"] == [0.2, 0.9]
    assert selection.best_baseline == "last_value"
    assert selection.baseline_mean_mse == pytest.approx({"last_value": 0.7, "ridge": 0.75})
    table = selection.table()
    assert list(table["candidate"]) == ["b", "b", "a", "a", "c", "c"]
    assert list(table["best_baseline_mse"]) == pytest.approx([0.6, 0.8] * 3)
    report = selection.to_json()
    assert report["chosen"] == "b" and report["best_baseline_mean_mse"] == pytest.approx(0.7)
    json.dumps(report, allow_nan=False)


# -- on real training ----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_better_settings_are_chosen_without_reading_the_test_steps(frame):
    """Ridge-started settings against a network that cannot move from its first weights, the
    better one listed second; the same scores when the test steps are absurd."""
    model = ModelConfig(**TINY_MODEL)
    fit = {**TINY_TRAINING, "epochs": 1, "patience": 1}
    frozen = Candidate("frozen", model, TrainingConfig(**fit, learning_rate=1e-7))
    ridge = Candidate(
        "ridge",
        ModelConfig(**TINY_MODEL, linear_skip="ridge_normalised"),
        TrainingConfig(**fit, keep_initial=True),
    )

    def selected(data: pd.DataFrame, candidates: list[Candidate]):
        return select_settings(
            data,
            C,
            candidates,
            model=model,
            training=TrainingConfig(),
            backtest=BacktestConfig(n_folds=1),
            freq="D",
            baselines=NO_PEERS,
        )

    selection = selected(frame, [frozen, ridge])
    assert selection.chosen == "ridge"
    assert selection.mean_mse["ridge"] < 0.2 * selection.mean_mse["frozen"]
    assert selection.folds[0].test_end <= split_by_time(frame, C).validation_end
    assert selection.best_baseline in {"ridge", "ridge_normalised"}
    assert int(selection.scores["n_windows"].iloc[0]) == 2  # one window per series

    absurd = selected(_with_absurd_test_steps(frame), [ridge])
    scores = selection.scores
    expected = scores[scores["candidate"] == "ridge"].reset_index(drop=True)
    pd.testing.assert_frame_equal(absurd.scores, expected)
    pd.testing.assert_frame_equal(absurd.baseline_scores, selection.baseline_scores)
    assert absurd.folds == selection.folds


# -- the command ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_select_prints_the_choice_and_writes_its_report(prefect_server, tmp_path):
    """(Not capsys: the flow run sets up Prefect's console logging on the stream it finds, which
    must outlive the test; the server logs to it when it stops.)"""
    from fusioncast.flows.cli import main

    data = write_demo_dataset(tmp_path / "data", n_stores=1, n_categories=2, n_days=160, seed=2)
    params = tmp_path / "params.json"
    params.write_text(
        json.dumps(
            {
                "model": TINY_MODEL,
                "training": {k: v for k, v in TINY_TRAINING.items() if k != "epochs"},
                "baselines": {"statistical": []},
                "validation": {"data_docs": False},
            }
        )
    )
    workdir = tmp_path / "out"
    argv = ["select", "--data", str(data), "--workdir", str(workdir), "--params", str(params)]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        status = main([*argv, "--epochs", "2", "--folds", "1", "--candidates", "default"])
    out = printed.getvalue()
    assert status == 0, out
    line = next(line for line in out.splitlines() if line.startswith("selected: "))
    report = json.loads(next(workdir.glob("reports/*/selection.json")).read_text())
    assert report["chosen"] == "default" and report["candidates"] == ["default"]
    mean = report["mean_mse"]["default"]
    assert line == (
        f"selected: default (mean fold MSE {mean:.4f}; best baseline "
        f"{report['best_baseline']} {report['best_baseline_mean_mse']:.4f})"
    )
    table = pd.read_parquet(next(workdir.glob("reports/*/selection.parquet")))
    assert list(table["candidate"]) == ["default"] and list(table["fold"]) == [0]
    assert table["mse"].iloc[0] == pytest.approx(mean)
    assert f"selection written to {workdir}" in out
    assert len(report["folds"]) == 1 and not list(workdir.glob("models/*"))


def test_an_unknown_candidate_is_one_line_and_nothing_is_written(tmp_path, capfd):
    from fusioncast.flows.cli import main

    workdir = tmp_path / "out"
    status = main(["select", "--workdir", str(workdir), "--candidates", "default,long-hourly"])
    err = capfd.readouterr().err
    assert status == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("fusioncast: ")]
    assert len(lines) == 1 and "unknown candidate 'long-hourly'" in lines[0], err
    assert "short-weekly" in lines[0]
    assert not workdir.exists()
