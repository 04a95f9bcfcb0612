"""Metrics against values worked out by hand, and the evaluation table built from them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusioncast import metrics as m
from fusioncast.baselines import LAST_VALUE
from fusioncast.contract import DataContract
from fusioncast.errors import DataValidationError
from fusioncast.evaluate import MODEL, TEXT_REMOVED, TEXT_SHUFFLED, evaluate_model, summarise
from fusioncast.forecast import Forecaster
from fusioncast.model import build_model
from fusioncast.promotion import decide
from fusioncast.references import LIMIT, NO_TEXT_LIMIT
from fusioncast.split import TEST, split_by_time
from fusioncast.state import prepare
from fusioncast.windows import window_origins


def test_mase_scale_is_the_in_sample_naive_error():
    # |3-1|, |2-3|, |4-2| -> (2 + 1 + 2) / 3
    assert m.mase_scale(np.array([1.0, 3.0, 2.0, 4.0])) == pytest.approx(5 / 3)
    # Season 2: |2-1|, |4-3| -> 1
    assert m.mase_scale(np.array([1.0, 3.0, 2.0, 4.0]), season=2) == pytest.approx(1.0)
    assert np.isnan(m.mase_scale(np.array([2.0, 2.0, 2.0])))  # never changes
    assert np.isnan(m.mase_scale(np.array([2.0]), season=1))  # too short


def test_smape_by_hand():
    actual = np.array([[5.0, 6.0, 0.0, -2.0]])
    forecast = np.array([[4.0, 4.0, 0.0, 2.0]])
    # 200*1/9, 200*2/10, 0/0 -> 0, 200*4/4
    np.testing.assert_allclose(
        m.smape_terms(actual, forecast), [[200 / 9, 40.0, 0.0, 200.0]], rtol=1e-12
    )


def test_pinball_and_coverage_by_hand():
    quantiles = (0.1, 0.5, 0.9)
    actual = np.array([[5.0, 6.0]])
    forecast = np.array([[[4.5, 5.0, 5.5], [6.5, 6.8, 7.0]]])
    # Step 1: 0.1*0.5, 0, -0.1*-0.5 -> 0.1/3. Step 2 (actual below every quantile):
    # 0.1*-0.5 -> (0.1-1)*-0.5 = 0.45; 0.5: (0.5-1)*-0.8 = 0.4; 0.9: (0.9-1)*-1.0 = 0.1.
    np.testing.assert_allclose(
        m.pinball_terms(actual, forecast, quantiles), [[0.1 / 3, (0.45 + 0.4 + 0.1) / 3]]
    )
    assert m.central_intervals(quantiles) == [(80, 0.1, 0.9)]
    assert m.central_intervals((0.05, 0.1, 0.5, 0.9, 0.95)) == [(90, 0.05, 0.95), (80, 0.1, 0.9)]
    assert m.central_intervals((0.1, 0.5)) == []
    hits = m.interval_hits(actual, forecast, quantiles, 0.1, 0.9)
    np.testing.assert_array_equal(hits, [[1.0, 0.0]])
    # On the bounds counts as inside.
    edge = m.interval_hits(np.array([[4.5, 7.0]]), forecast, quantiles, 0.1, 0.9)
    np.testing.assert_array_equal(edge, [[1.0, 1.0]])


CONTRACT = DataContract(
    series_id="sid", timestamp="t", target="y", numeric=(), text=("note",), freq="D"
)


VALUES = np.array([1, 3, 2, 4, 3, 5, 4, 6, 5, 7, 6, 8, 9, 7, 10, 8, 11, 9, 12, 10], float)


@pytest.fixture(scope="module")
def untrained():
    """Two short series with hand-picked values (the second is ten times the first plus 100) and
    an untrained model, which forecasts the last value: frame, config, forecaster, arrays."""
    days = pd.date_range("2024-01-01", periods=len(VALUES), freq="D")
    frame = pd.concat(
        [
            pd.DataFrame({"sid": "a", "t": days, "y": VALUES, "note": "x"}),
            pd.DataFrame({"sid": "b", "t": days, "y": VALUES * 10 + 100, "note": "x"}),
        ],
        ignore_index=True,
    )
    from fusioncast.config import ModelConfig

    config = ModelConfig(
        lookback=3,
        horizon=2,
        numeric_units=4,
        text_units=4,
        text_embedding_dim=2,
        hidden_units=4,
        max_text_tokens=4,
        min_token_count=1,
    )
    boundaries = split_by_time(frame, CONTRACT, train_fraction=0.5, validation_fraction=0.2)
    state, arrays = prepare(frame, CONTRACT, boundaries, config)
    return frame, config, Forecaster(build_model(state.spec), state), arrays


@pytest.fixture(scope="module")
def tiny(untrained):
    _, config, forecaster, arrays = untrained
    return VALUES, config, arrays, evaluate_model(forecaster, arrays, season=None)


def test_evaluation_of_the_last_value_matches_hand_computed_mase_and_smape(tiny):
    values, config, arrays, evaluation = tiny
    table = evaluation.metrics.set_index(["model", "series_id", "horizon_step"])
    # 10 training steps (days 1-10), 4 validation, 6 test: test windows end on days 14..18.
    origins = window_origins(arrays, config.lookback, config.horizon, TEST)
    assert len(origins) == 2 * 5
    train = values[:10]
    scale = np.mean(np.abs(np.diff(train)))  # (2+1+2+1+2+1+2+1+2) / 9 = 14/9
    assert scale == pytest.approx(14 / 9)
    for step in (1, 2):
        last = values[13:18]  # origins: days 14..18 (0-based 13..17)
        actual = values[13 + step : 18 + step]
        abs_error = np.abs(actual - last)
        for sid, factor, offset in (("a", 1, 0), ("b", 10, 100)):
            row = table.loc[(LAST_VALUE, sid, step)]
            assert row["n_windows"] == 5
            # MASE is scale-free: the same for both series.
            assert row["mase"] == pytest.approx(np.mean(abs_error / scale))
            y, f = actual * factor + offset, last * factor + offset
            assert row["smape"] == pytest.approx(np.mean(200 * np.abs(y - f) / (y + f)))
            # MSE is on the z-scored target: also the same for both series.
            z_scale = np.std(train)
            assert row["mse"] == pytest.approx(np.mean((abs_error / z_scale) ** 2), rel=1e-5)


def test_evaluation_covers_model_ablations_and_baselines(tiny):
    _, config, _, evaluation = tiny
    metrics = evaluation.metrics
    assert {MODEL, TEXT_REMOVED, TEXT_SHUFFLED, LAST_VALUE}.issubset(set(metrics["model"]))
    model_rows = metrics[metrics["model"] == MODEL]
    assert model_rows["coverage_80"].between(0, 1).all()
    assert (model_rows["pinball"] >= 0).all()
    # Baselines give a point forecast only: no quantile metrics.
    assert metrics.loc[metrics["model"] == LAST_VALUE, "pinball"].isna().all()
    summary = summarise(metrics)
    assert list(summary["mse"]) == sorted(summary["mse"])
    assert evaluation.quantiles.shape == (10, config.horizon, 3)
    assert evaluation.actual.shape == (10, config.horizon)


def test_report_writes_metrics_and_plots(tiny, tmp_path):
    from fusioncast.report import ranked_series, write_report

    _, _, _, evaluation = tiny
    paths = write_report(evaluation, tmp_path, n_series=1)
    assert pd.read_parquet(paths["metrics"]).equals(evaluation.metrics)
    for name in ("best series", "worst series", "error by horizon"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    ranked = ranked_series(evaluation.metrics)
    assert sorted(ranked) == ["a", "b"]
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def _reference(evaluation, name: str, forecast: np.ndarray) -> pd.DataFrame:
    """Reference forecasts ``[B, H]`` (original scale) of the evaluation's windows, as a file
    holds them."""
    n_windows, horizon = forecast.shape
    return pd.DataFrame(
        {
            "series_id": np.repeat(evaluation.series.astype(str), horizon),
            "forecast_origin": np.repeat(evaluation.origin_times, horizon),
            "horizon_step": np.tile(np.arange(1, horizon + 1), n_windows),
            "forecast": forecast.ravel(),
            "reference": name,
        }
    )


def test_references_are_scored_on_the_model_windows_and_scale(untrained, tiny):
    _, _, forecaster, arrays = untrained
    plain = tiny[3]
    actual, series = plain.actual, plain.series.astype(str)
    limit = _reference(plain, LIMIT, actual + 0.5)
    no_text = _reference(plain, NO_TEXT_LIMIT, actual + 1.0)
    # the no-text limit misses step 2 of the first window (of series a): that window is left out
    missing = (
        (no_text["series_id"] == "a")
        & (no_text["forecast_origin"] == plain.origin_times[0])
        & (no_text["horizon_step"] == 2)
    )
    assert series[0] == "a" and missing.sum() == 1
    beyond = limit.assign(horizon_step=3, forecast=1e6)  # past the model's horizon of 2
    untested = limit.head(2).assign(forecast_origin=pd.Timestamp("2024-01-05"), forecast=1e6)
    references = pd.concat(
        [
            _reference(plain, "oracle", actual),
            limit,
            no_text[~missing],
            beyond,
            untested,
            _reference(plain, "one step", actual[:, :1]),  # forecasts no window whole
        ],
        ignore_index=True,
    )
    evaluation = evaluate_model(forecaster, arrays, season=None, references=references)
    metrics = evaluation.metrics
    # the candidates' rows are those of an evaluation without references
    pd.testing.assert_frame_equal(
        metrics[~metrics["reference"]].reset_index(drop=True), plain.metrics
    )
    assert not plain.metrics["reference"].any()
    covered = {"oracle": 10, LIMIT: 10, NO_TEXT_LIMIT: 9, "one step": 0}
    assert evaluation.reference_windows == covered
    assert set(metrics.loc[metrics["reference"], "model"]) == {"oracle", LIMIT, NO_TEXT_LIMIT}
    oracle = metrics[metrics["model"] == "oracle"]
    np.testing.assert_allclose(oracle[["mse", "mae", "mase", "smape"]], 0.0, atol=1e-9)
    assert (oracle["n_windows"] == 5).all() and oracle["pinball"].isna().all()
    # errors of 1 unit on the candidate's z-scored target: series b is ten times series a
    z = np.std(VALUES[:10])
    table = metrics[metrics["model"] == NO_TEXT_LIMIT].set_index(["series_id", "horizon_step"])
    assert table.loc[("a", 1), "n_windows"] == 4 and table.loc[("b", 1), "n_windows"] == 5
    assert table.loc[("a", 1), "mse"] == pytest.approx(1 / z**2)
    assert table.loc[("b", 2), "mse"] == pytest.approx(1 / (10 * z) ** 2)
    summary = summarise(metrics).set_index("model")
    assert summary.loc["oracle", "reference"] and not summary.loc[MODEL, "reference"]

    # the share and the ratio are over the 9 windows both limits forecast
    scale = np.where(series == "a", z, 10 * z)[:, None]

    def mse(forecast):
        return float(np.mean(((forecast - actual) / scale)[1:] ** 2))

    model, removed = mse(plain.forecasts[MODEL]), mse(plain.forecasts[TEXT_REMOVED])
    figures = evaluation.limit
    assert figures["n_windows"] == 9 and figures["test_windows"] == 10
    assert figures["no_text_model"] == TEXT_REMOVED
    assert figures["mse"][LIMIT] == pytest.approx(mse(actual + 0.5))
    assert figures["text_gain_share"] == pytest.approx(
        (removed - model) / (mse(actual + 1.0) - mse(actual + 0.5))
    )
    assert figures["mse_over_limit"] == pytest.approx(model / mse(actual + 0.5))
    assert plain.limit is None and plain.reference_windows == {}


def test_the_gate_ignores_references_even_better_than_the_candidate(untrained, tiny):
    frame, _, forecaster, arrays = untrained
    plain = tiny[3]
    oracle = _reference(plain, "oracle", plain.actual)
    with_oracle = evaluate_model(forecaster, arrays, season=None, references=oracle)
    assert summarise(with_oracle.metrics)["model"].iloc[0] == "oracle"  # the lowest MSE
    for champion in (None, forecaster):
        assert decide(with_oracle, forecaster.scaler, frame, champion) == decide(
            plain, forecaster.scaler, frame, champion
        )


def test_a_reference_named_like_a_candidate_is_refused(untrained, tiny):
    _, _, forecaster, arrays = untrained
    impostor = _reference(tiny[3], LAST_VALUE, tiny[3].actual)
    with pytest.raises(DataValidationError, match="reference_forecasts.*last_value") as caught:
        evaluate_model(forecaster, arrays, season=None, references=impostor)
    assert caught.value.column == "reference" and caught.value.count == len(impostor)
