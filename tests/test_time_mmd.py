"""Conversion of Time-MMD domain folders into the data contract (fast: no training)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusioncast.split import TEST, VALIDATION
from fusioncast.statistical import AUTO_ARIMA, AUTO_ETS, AUTO_THETA
from fusioncast.timemmd import (
    STEP_END,
    TARGET,
    TIMESTAMP,
    clean_text,
    convert_domain,
    list_domains,
    mmtsf_boundaries,
)
from fusioncast.validation import read_dataset

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FUSIONCAST_SHARED_DATA", REPO.parent / "shared" / "data"))
TIME_MMD = SHARED / "time-mmd"

needs_data = pytest.mark.skipif(
    not (TIME_MMD / "numerical").is_dir(),
    reason=f"Time-MMD data not found at {TIME_MMD} (set FUSIONCAST_SHARED_DATA to its parent)",
)


def benchmark_module(name: str):
    """A module of ``benchmarks/`` (not a package), imported by name."""
    if str(REPO / "benchmarks") not in sys.path:
        sys.path.insert(0, str(REPO / "benchmarks"))
    return importlib.import_module(name)


def copy_domain(source: str, root: Path, name: str) -> None:
    """Copy the shared domain ``source`` under ``root`` as a domain called ``name``."""
    for kind, suffixes in (("numerical", [""]), ("textual", ["_report", "_search"])):
        (root / kind / name).mkdir(parents=True)
        for suffix in suffixes:
            shutil.copy(
                TIME_MMD / kind / source / f"{source}{suffix}.csv",
                root / kind / name / f"{name}{suffix}.csv",
            )


def write_domain(root: Path, name: str, numeric: str, report: str | None, search: str | None):
    (root / "numerical" / name).mkdir(parents=True)
    (root / "numerical" / name / f"{name}.csv").write_text(numeric)
    (root / "textual" / name).mkdir(parents=True)
    for source, text in (("report", report), ("search", search)):
        if text is not None:
            (root / "textual" / name / f"{name}_{source}.csv").write_text(text)


MONTHLY = """Date,OT,Region,start_date,end_date
2020-01-01,1.0,north,2020-01-01,2020-01-31
2020-02-01,2.0,north,2020-02-01,2020-02-29
2020-03-01,3.0,north,2020-03-01,2020-03-31
2020-04-01,4.0,north,2020-04-01,2020-04-30
"""

REPORT = """,start_date,end_date,fact,preds
0,2019-10-01,2019-10-31,before the series,NA
1,2020-01-10,2020-01-31,ends with step one,up;NA
2,2020-01-20,2020-02-01,ends one day into step two,NA (no relevant information)
3,2020-02-15,2020-03-15,ends mid step three,down
4,2020-03-20,2020-03-31,also ends with step three,flat
5,2020-04-20,2020-05-02,ends after the last step,NA
"""


def test_event_goes_to_first_step_ending_at_or_after_it(tmp_path):
    write_domain(tmp_path, "Toy", MONTHLY, REPORT, None)
    domain = convert_domain(tmp_path, "Toy")
    frame = domain.frame
    assert list(frame[TARGET]) == [1.0, 2.0, 3.0, 4.0]
    assert list(frame["report_fact"]) == [
        "ends with step one",
        "ends one day into step two",
        "ends mid step three\nalso ends with step three",
        None,
    ]
    assert list(frame["report_preds"]) == ["up", None, "down\nflat", None]
    # Never text from after the step: every attached event ended by the step's end.
    assert domain.contract.text == ("report_fact", "report_preds")
    assert "Region" not in domain.contract.numeric  # a text category, not a number
    assert domain.frequency == "monthly"


def test_date_column_variants_reverse_order_and_text_categories(tmp_path):
    numeric = """MapDate,AreaOfInterest,OT,D0,ValidStart,ValidEnd
20200115,Total,30.0,1.5,2020-01-15,2020-01-21
20200108,Total,20.0,1.0,2020-01-08,2020-01-14
20200101,Total,10.0,0.5,2020-01-01,2020-01-07
"""
    write_domain(tmp_path, "Dry", numeric, None, None)
    domain = convert_domain(tmp_path, "Dry")
    frame = domain.frame
    assert list(frame[TARGET]) == [10.0, 20.0, 30.0]
    assert frame[TIMESTAMP].is_monotonic_increasing
    assert list(frame[STEP_END].dt.day) == [7, 14, 21]
    assert domain.contract.numeric == ("D0",)
    assert domain.contract.text == ()
    assert domain.frequency == "weekly"


def test_non_finite_targets_dropped_and_missing_end_derived(tmp_path):
    numeric = """date,OT
2021-01-04,1.0
2021-01-11,
2021-01-18,inf
2021-01-25,4.0
2021-02-01,5.0
"""
    write_domain(tmp_path, "Gaps", numeric, None, None)
    frame = convert_domain(tmp_path, "Gaps").frame
    assert list(frame[TARGET]) == [1.0, 4.0, 5.0]
    assert frame[STEP_END].iloc[-1] == pd.Timestamp("2021-02-07")


def test_repeated_start_keeps_every_row(tmp_path):
    numeric = """date,start_date,end_date,OT
2020-12-21,2020-12-21,2020-12-27,1.0
2020-12-28,2020-12-28,2021-01-03,2.0
2020-12-28,2020-12-28,2021-01-03,3.0
2021-01-04,2021-01-04,2021-01-10,4.0
"""
    write_domain(tmp_path, "Flu", numeric, None, None)
    frame = convert_domain(tmp_path, "Flu").frame
    assert list(frame[TARGET]) == [1.0, 2.0, 3.0, 4.0]
    assert frame[TIMESTAMP].is_unique and frame[TIMESTAMP].is_monotonic_increasing


def test_clean_text():
    assert clean_text("NA") is None
    assert clean_text("NA (No relevant information found)") is None
    assert clean_text("Prices rose.;NA", split=True) == "Prices rose."
    assert clean_text("National average") == "National average"
    assert clean_text(None) is None


def test_split_matches_mmtsflib_rounding():
    frame = pd.DataFrame(
        {"series_id": "x", "timestamp": pd.date_range("2000-01-01", periods=532, freq="MS")}
    )
    from fusioncast.contract import DataContract

    contract = DataContract(target="OT")
    boundaries = mmtsf_boundaries(frame, contract)
    labels = boundaries.labels(frame["timestamp"])
    # int(532 * 0.7) = 372 train, int(532 * 0.2) = 106 test, 54 validation
    assert np.bincount(labels).tolist() == [372, 54, 106]


def test_parquet_round_trip(tmp_path):
    write_domain(tmp_path / "src", "Toy", MONTHLY, REPORT, REPORT)
    domain = convert_domain(tmp_path / "src", "Toy")
    path = domain.write_parquet(tmp_path / "toy.parquet")
    back = read_dataset(path, domain.contract)
    assert list(back.columns) == domain.contract.all_columns
    assert back["search_fact"].iloc[0] == "ends with step one"


@needs_data
def test_shared_domains_convert():
    names = list_domains(TIME_MMD)
    assert {"Agriculture", "Climate", "Energy", "Health_US", "Traffic"} <= set(names)
    climate = convert_domain(TIME_MMD, "Climate")
    assert climate.frame[TIMESTAMP].is_monotonic_increasing
    assert "AreaOfInterest" not in climate.contract.numeric
    assert climate.frequency == "weekly"
    health = convert_domain(TIME_MMD, "Health_US")
    assert len(health.frame) == 1389  # every row kept, as the protocol counts them
    agriculture = convert_domain(TIME_MMD, "Agriculture")
    assert len(agriculture.frame) == 532 and agriculture.frequency == "monthly"
    for domain in (climate, health, agriculture):
        frame = domain.frame
        for column in domain.contract.text:
            has_text = frame[column].notna().to_numpy()
            assert has_text.any()


@needs_data
def test_renamed_copy_converts_without_code_changes(tmp_path):
    source, name = "Traffic", "RoadMiles"
    copy_domain(source, tmp_path, name)
    assert list_domains(tmp_path) == [name]
    renamed = convert_domain(tmp_path, name)
    original = convert_domain(TIME_MMD, source)
    columns = [c for c in original.frame.columns if c != "series_id"]
    pd.testing.assert_frame_equal(renamed.frame[columns], original.frame[columns])
    assert renamed.frame["series_id"].unique().tolist() == [name]


def test_ridge_skip_model_starts_at_the_ridge_and_reloads(tmp_path):
    """With ``linear_skip="ridge"`` an untrained model forecasts the mix of the two ridges."""
    from fusioncast.config import ModelConfig
    from fusioncast.model import LINEAR_SKIP, ModelSpec, build_model, load_model, save_model
    from fusioncast.training import fit_linear_skip
    from fusioncast.windows import gather_inputs, window_origins

    synthetic_arrays = benchmark_module("_synthetic").synthetic_arrays

    arrays = synthetic_arrays(1, 300, 1, vocabulary=50, seed=4)
    config = ModelConfig(
        lookback=8,
        horizon=3,
        loss="mse",
        linear_skip="ridge",
        text_encoder="bag",
        numeric_units=4,
        text_units=4,
        text_embedding_dim=4,
        hidden_units=4,
        max_text_tokens=16,
    )
    spec = ModelSpec(config, n_numeric=1, text_vocabulary_sizes=[50])
    validation = window_origins(arrays, 8, 3, VALIDATION)
    weights = fit_linear_skip(arrays, config)
    model = build_model(spec)
    model.get_layer(LINEAR_SKIP).set_weights(weights)
    kernel, bias, level_kernel, level_bias, share = weights
    inputs = gather_inputs(arrays, validation, 8, 16)
    forecast = np.asarray(model.predict(inputs, verbose=0))[..., 0]
    history = arrays.numeric[validation[:, None] + np.arange(-7, 1), 0].astype(np.float64)
    last = history[:, -1:]
    relative = last + (history - last) @ kernel + bias
    level = history @ level_kernel + level_bias
    expected = (1 - share) * relative + share * level
    np.testing.assert_allclose(forecast, expected, rtol=1e-4, atol=1e-4)
    save_model(model, tmp_path / "m.keras")
    reloaded = np.asarray(load_model(tmp_path / "m.keras").predict(inputs, verbose=0))[..., 0]
    np.testing.assert_allclose(reloaded, forecast, rtol=1e-5, atol=1e-5)


def test_normalised_ridge_skip_model_starts_at_the_normalised_ridge_baseline():
    """``linear_skip="ridge_normalised"``: an untrained model forecasts that baseline exactly."""
    from fusioncast.baselines import RIDGE_NORMALISED, baseline_forecasts
    from fusioncast.config import ModelConfig
    from fusioncast.model import LINEAR_SKIP, ModelSpec, build_model
    from fusioncast.training import fit_linear_skip
    from fusioncast.windows import gather_inputs, window_origins

    arrays = benchmark_module("_synthetic").synthetic_arrays(1, 300, 1, seed=6)
    config = ModelConfig(
        lookback=8,
        horizon=3,
        loss="mse",
        linear_skip="ridge_normalised",
        numeric_units=4,
        hidden_units=4,
    )
    model = build_model(ModelSpec(config, n_numeric=1))
    weights = fit_linear_skip(arrays, config)
    assert float(weights[-1]) == 0.0  # no share of the level ridge
    model.get_layer(LINEAR_SKIP).set_weights(weights)
    origins = window_origins(arrays, 8, 3, TEST)
    forecast = np.asarray(model.predict(gather_inputs(arrays, origins, 8, 16), verbose=0))[..., 0]
    expected = baseline_forecasts(arrays, origins, 8, 3)[RIDGE_NORMALISED]
    np.testing.assert_allclose(forecast, expected, rtol=1e-4, atol=1e-4)


@needs_data
def test_benchmark_runs_on_an_unseen_domain_folder(tmp_path, capsys):
    """The benchmark takes any folder in the Time-MMD layout: a renamed copy, no code change."""
    name = "RoadMiles"
    copy_domain("Traffic", tmp_path, name)
    time_mmd = benchmark_module("time_mmd")

    saved = tmp_path / "runs.json"
    ledger = tmp_path / "benchmarks.md"
    ledger.write_text("# Benchmarks\n\n## Time-MMD accuracy\n\ntext\n")
    time_mmd.main(
        ["--data", str(tmp_path), "--seeds", "1", "--horizons", "6", "--json", str(saved)]
        + ["--set", "training.epochs=2", "--ledger", str(ledger)]
    )
    printed = capsys.readouterr().out
    runs = pd.DataFrame(json.loads(saved.read_text())["runs"])
    assert set(runs["domain"]) == {name} and set(runs["horizon"]) == {6}
    expected = {"fusioncast", "no text", "shuffled text", *time_mmd.BASELINES.values()}
    assert set(runs["model"]) == expected
    assert runs[["mse_1", "mse_2", "mae_2"]].notna().all().all()
    full = runs[runs["model"] == "fusioncast"]
    assert full["mse_2_text_removed"].notna().all()
    # The report names the domain, its best baseline and the text verdict.
    assert f"| {name} | 6 | " in printed and "what the text adds" in printed
    assert "Against the baseline best on the validation split" in printed
    assert "fusioncast at or below the best baseline on" in printed
    # The look at the test split is recorded in the ledger, after the sections already there.
    content = ledger.read_text()
    assert content.index("## Time-MMD accuracy") < content.index(time_mmd.LEDGER)
    rows = [line for line in content.splitlines() if "benchmarks/time_mmd.py --data" in line]
    assert len(rows) == 1 and "training.epochs=2" in rows[0] and "| 1 |" in rows[0]
    # ... with the commit of the code that ran (a preset's name hashes the same across commits)
    assert f"at `{time_mmd.source_commit()}`" in rows[0]
    # Reporting saved runs is no new look.
    time_mmd.main(["--from-json", str(saved), "--ledger", str(ledger)])
    assert ledger.read_text() == content


@needs_data
def test_nested_scoring_scores_the_validation_steps_out_of_sample(tmp_path):
    """``--nested``: the test split is the validation steps, training never sees them."""
    time_mmd = benchmark_module("time_mmd")

    from fusioncast.split import TRAIN

    domain = convert_domain(TIME_MMD, "Traffic")
    settings = time_mmd.SETTINGS[domain.frequency]
    plain = time_mmd.prepare(domain, 6, settings, tmp_path)
    nested = time_mmd.prepare(domain, 6, settings, tmp_path, nested=True)

    def horizon_times(case, split):
        origins = case.origins[split]
        return case.arrays.timestamps[origins[:, None] + np.arange(1, 7)]

    np.testing.assert_array_equal(horizon_times(nested, TEST), horizon_times(plain, VALIDATION))
    split = nested.arrays.split
    n_validation = int((plain.arrays.split == VALIDATION).sum())
    assert (split == VALIDATION).sum() == (split == TEST).sum() == n_validation
    assert split.tolist() == sorted(split.tolist())  # train, then validation, then test
    assert (split == TRAIN).sum() == (plain.arrays.split == TRAIN).sum() - n_validation


def test_the_peers_are_fitted_once_per_split_for_every_horizon_of_a_domain(tmp_path):
    """The benchmark's statistical peers at each horizon are those fitted for that horizon alone:
    the fits at the longest horizon, over the shortest's origins, sliced."""
    time_mmd = benchmark_module("time_mmd")
    months = pd.date_range("2010-01-01", periods=120, freq="MS")
    shape = 10 + np.sin(2 * np.pi * np.arange(120) / 12) + np.random.default_rng(0).normal(size=120)
    rows = [f"{m:%Y-%m-%d},{v:.4f}" for m, v in zip(months, shape, strict=True)]
    write_domain(tmp_path, "Toy", "Date,OT\n" + "\n".join(rows) + "\n", None, None)
    domain = convert_domain(tmp_path, "Toy")
    settings = {**time_mmd.SETTINGS[domain.frequency], "text": ()}
    horizons = domain.protocol.horizons
    assert len(horizons) == 2
    shared = time_mmd.SharedPeers(horizons)
    for horizon in horizons:
        case = time_mmd.prepare(domain, horizon, settings, tmp_path)
        for split in (VALIDATION, TEST):
            alone = time_mmd.peer_forecasts(case, case.origins[split])
            both = shared.forecasts(case, split)
            assert set(both) == set(alone) == {AUTO_ETS, AUTO_THETA, AUTO_ARIMA}
            for name, forecast in alone.items():
                assert both[name].shape == (len(case.origins[split]), horizon)
                np.testing.assert_allclose(both[name], forecast, rtol=1e-9, atol=1e-9)
    assert set(shared.done) == {VALIDATION, TEST}  # one computation per split


@needs_data
def test_skip_rules_choose_on_validation_and_a_single_choice_never_beats_hindsight(
    tmp_path, capsys
):
    """``time_mmd_skip.py``: each rule scored against the best baseline on the scored split."""
    copy_domain("Energy", tmp_path, "FuelPrices")
    skip = benchmark_module("time_mmd_skip")

    for test in (False, True):
        table = skip.run(tmp_path, None, test=test)
        assert list(table.index) == [("FuelPrices", 12), ("FuelPrices", 48)]
        assert list(table.columns) == [skip.SKIP, *skip.RULES]
        assert np.isfinite(table.to_numpy()).all()
        for name, (single, _) in skip.RULES.items():
            if single:  # one baseline, chosen before seeing the scored split
                assert (table[name] >= 1 - 1e-12).all(), name
    skip.main(["--data", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "validation steps, nested" in printed and "| FuelPrices | 48 | " in printed
    assert f"| {skip.SKIP} | " in printed and " of 2 | " in printed


def test_verdict_compares_with_the_baseline_best_on_validation_as_well_as_in_hindsight():
    time_mmd = benchmark_module("time_mmd")

    def summary(scores: dict[str, float]) -> pd.DataFrame:
        return pd.DataFrame(
            [{"domain": "D", "horizon": 6, "model": m, "mse": v} for m, v in scores.items()]
            + [{"domain": "D", "horizon": 12, "model": "last value", "mse": 1.0}]
            + [{"domain": "D", "horizon": 12, "model": "fusioncast", "mse": 0.5}]
        ).assign(text_removed=np.nan)

    test = summary({"last value": 0.2, "ridge": 0.8, "fusioncast": 0.4})
    validation = summary({"last value": 0.9, "ridge": 0.3, "fusioncast": 0.25})
    verdict = time_mmd.verdicts(test, validation).set_index("horizon")
    assert verdict.loc[6, "best_baseline"] == "last value" and verdict.loc[6, "ratio"] == 2.0
    assert verdict.loc[6, "chosen_baseline"] == "ridge" and verdict.loc[6, "chosen_ratio"] == 0.5
    assert verdict.loc[12, "chosen_ratio"] == verdict.loc[12, "ratio"] == 0.5
    printed = time_mmd.overall(verdict)
    assert "at or below the best baseline on 1 of 2 rows; worst ratio 2.000" in printed
    assert (
        "without seeing the test steps): at or below on 2 of 2 rows; worst ratio 0.500" in printed
    )


def test_a_look_is_recorded_in_the_time_mmd_table_not_after_the_demo_looks(tmp_path):
    time_mmd = benchmark_module("time_mmd")
    ledger = tmp_path / "benchmarks.md"
    ledger.write_text(
        f"# Benchmarks\n\n{time_mmd.LEDGER}\n\nintro\n\n| date | x |\n|---|---|\n| old | 1 |\n\n"
        "Demo looks:\n\n| date | y |\n|---|---|\n| demo | 2 |\n\nclosing words\n\n## Next\n"
    )
    time_mmd.append_to_ledger("| new | 3 |", ledger)
    lines = ledger.read_text().splitlines()
    assert lines[lines.index("| old | 1 |") + 1] == "| new | 3 |"
    assert lines.index("| demo | 2 |") > lines.index("| new | 3 |")
    assert lines[-1] == "## Next"
