"""The statistical peers (statsforecast) as baselines, and the gate that knows the best baseline."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from statsforecast.models import AutoARIMA, AutoETS, AutoTheta

from fusioncast.baselines import LAST_VALUE, RIDGE
from fusioncast.config import BaselineConfig, ModelConfig, PromotionConfig
from fusioncast.contract import DataContract
from fusioncast.errors import ModelStateError
from fusioncast.evaluate import MODEL, evaluate_model
from fusioncast.forecast import Forecaster
from fusioncast.model import PEER_MIX, ModelSpec, build_model
from fusioncast.promotion import decide
from fusioncast.split import TEST, TRAIN, VALIDATION, split_by_time
from fusioncast.state import prepare
from fusioncast.statistical import (
    AUTO_ARIMA,
    AUTO_ETS,
    AUTO_THETA,
    PRIOR_MODELS,
    _fourier,
    _harmonic_fit,
    statistical_forecasts,
)
from fusioncast.training import fit_skip
from fusioncast.windows import gather_targets, window_origins

CONTRACT = DataContract(series_id="sid", timestamp="t", target="y", numeric=(), text=(), freq="D")
STEPS = 140


def weekly(level: float, amplitude: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(STEPS)
    shape = np.array([0.0, 1.0, 0.5, -0.5, -1.0, 2.0, -2.0])
    return level + 0.02 * t + amplitude * shape[t % 7] + rng.normal(0, 0.05, STEPS)


@pytest.fixture(scope="module")
def seasonal():
    """Two daily series with a strong weekly shape (one ten times the other's size) and an
    untrained model: frame, forecaster, arrays."""
    days = pd.date_range("2024-01-01", periods=STEPS, freq="D")
    frame = pd.concat(
        [
            pd.DataFrame({"sid": "a", "t": days, "y": weekly(10, 1, 0)}),
            pd.DataFrame({"sid": "b", "t": days, "y": weekly(200, 20, 1)}),
        ],
        ignore_index=True,
    )
    config = ModelConfig(lookback=7, horizon=3, numeric_units=4, hidden_units=4)
    boundaries = split_by_time(frame, CONTRACT, train_fraction=0.6, validation_fraction=0.2)
    state, arrays = prepare(frame, CONTRACT, boundaries, config)
    return frame, Forecaster(build_model(state.spec), state), arrays


def test_each_window_gets_the_model_fitted_on_the_whole_history_up_to_its_origin(seasonal):
    frame, forecaster, arrays = seasonal
    origins = window_origins(arrays, 7, 3, TEST)
    got = statistical_forecasts(
        arrays,
        forecaster.scaler,
        origins,
        3,
        season=7,
        models=(AUTO_ETS, AUTO_THETA),
        refit_every=1,
    )
    for name, kind in ((AUTO_ETS, AutoETS), (AUTO_THETA, AutoTheta)):
        assert got[name].shape == (len(origins), 3)
        for window in (0, len(origins) - 1):  # one window of each series
            origin = origins[window]
            sid = arrays.series_ids[arrays.row_series[origin]]
            start = arrays.offsets[arrays.row_series[origin]]
            # fitted on the original values from the series' first step to the origin
            history = frame.loc[frame["sid"] == sid, "y"].to_numpy()[: origin - start + 1]
            expected = kind(season_length=7).forecast(y=history, h=3)["mean"]
            scaled = forecaster.scaler.scale_target(expected[None, :], np.array([sid]))
            # the arrays hold the scaled target as float32: equal to float32 precision
            np.testing.assert_allclose(got[name][window], scaled[0], atol=1e-4)


def test_fitted_once_the_model_runs_forward_and_stays_close_to_refitting(seasonal):
    _, forecaster, arrays = seasonal
    origins = window_origins(arrays, 7, 3, TEST)
    actual = gather_targets(arrays, origins, 3)
    kwargs = dict(season=7, models=(AUTO_ETS,))
    every = statistical_forecasts(arrays, forecaster.scaler, origins, 3, refit_every=1, **kwargs)
    once = statistical_forecasts(arrays, forecaster.scaler, origins, 3, refit_every=10**6, **kwargs)
    assert not np.allclose(every[AUTO_ETS], once[AUTO_ETS])  # the parameters were not refitted
    error_every = np.mean((every[AUTO_ETS] - actual) ** 2)
    error_once = np.mean((once[AUTO_ETS] - actual) ** 2)
    assert error_once < 1.5 * error_every


def test_autoarima_run_forward_gives_what_statsforecast_forward_gives_at_each_origin(seasonal):
    # the filter's state is carried from origin to origin instead of run from the start at each
    frame, forecaster, arrays = seasonal
    origins = window_origins(arrays, 7, 3, TEST)
    got = statistical_forecasts(
        arrays, forecaster.scaler, origins, 3, season=7, models=(AUTO_ARIMA,), refit_every=10**6
    )[AUTO_ARIMA]
    owner = arrays.row_series[origins]
    for s in range(len(arrays.series_ids)):
        windows = np.flatnonzero(owner == s)
        sid, start = arrays.series_ids[s], arrays.offsets[s]
        values = frame.loc[frame["sid"] == sid, "y"].to_numpy()
        fitted = AutoARIMA(season_length=7).fit(values[: origins[windows[0]] - start + 1])
        for window in windows[[0, len(windows) // 2, -1]]:
            history = values[: origins[window] - start + 1]
            expected = fitted.forward(y=history, h=3)["mean"]
            scaled = forecaster.scaler.scale_target(expected[None, :], np.array([sid]))
            np.testing.assert_allclose(got[window], scaled[0], atol=1e-4)
    # and the windows differ: each is run forward to its own origin
    assert np.abs(np.diff(got[owner == 0], axis=0)).max() > 0.01


def test_too_short_a_history_falls_back_to_the_last_value(seasonal):
    _, forecaster, arrays = seasonal
    origins = np.array([1, 2])  # two and three observations of series "a"
    got = statistical_forecasts(
        arrays, forecaster.scaler, origins, 3, season=7, models=(AUTO_ETS,), refit_every=1
    )
    last = arrays.numeric[origins, 0][:, None]
    np.testing.assert_allclose(got[AUTO_ETS], np.repeat(last, 3, axis=1), rtol=1e-6)


def test_the_evaluation_scores_the_peers_on_test_and_validation(seasonal):
    _, forecaster, arrays = seasonal
    evaluation = evaluate_model(forecaster, arrays, season=7)
    summary = evaluation.summary().set_index("model")["mse"]
    # on a clean weekly shape the peers beat the last value by far, on both splits
    for name in (AUTO_ETS, AUTO_THETA):
        assert summary[name] < 0.25 * summary[LAST_VALUE]
        assert evaluation.validation_mse[name] < 0.25 * evaluation.validation_mse[LAST_VALUE]
    assert evaluation.best_baseline in (AUTO_ETS, AUTO_THETA, "seasonal_naive", RIDGE)
    assert set(evaluation.validation_mse) >= {MODEL, LAST_VALUE, AUTO_ETS, AUTO_THETA}
    only_theta = evaluate_model(
        forecaster, arrays, season=7, baselines=BaselineConfig(statistical=("auto_theta",))
    )
    assert AUTO_ETS not in set(only_theta.metrics["model"])


def _with(evaluation, model_forecast, best_forecast):
    forecasts = dict(evaluation.forecasts, **{MODEL: model_forecast, RIDGE: best_forecast})
    validation = {name: 1.0 for name in evaluation.validation_mse}
    validation[RIDGE] = 0.1  # the ridge is the baseline best on validation
    return dataclasses.replace(evaluation, forecasts=forecasts, validation_mse=validation)


def test_the_gate_keeps_out_a_model_well_behind_the_best_baseline(seasonal):
    frame, forecaster, arrays = seasonal
    evaluation = evaluate_model(forecaster, arrays, season=7, ablations=False)
    actual, scaler = evaluation.actual, forecaster.scaler
    # one standard deviation of each window's series: errors of 0.3 and 0.1 on the scaled target
    spread = scaler.scale[scaler.positions(np.asarray(evaluation.series).astype(str)), 0][:, None]
    behind = _with(evaluation, actual + 0.3 * spread, actual + 0.1 * spread)
    decision = decide(behind, scaler, frame, None)
    assert not decision.promote
    assert decision.best_baseline == RIDGE and "ridge" in decision.reason
    assert decision.candidate_mse > 1.05 * decision.best_baseline_mse
    # the check can be turned off, and a model within the margin passes it
    off = decide(behind, scaler, frame, None, PromotionConfig(best_baseline_margin=None))
    assert off.promote
    close = _with(evaluation, actual + 0.1 * spread, actual + 0.099 * spread)
    assert decide(close, scaler, frame, None).promote


def test_the_statistical_skip_starts_at_the_ridges_and_peers_mixed_by_validation_error(
    seasonal, tmp_path
):
    frame, _, _ = seasonal
    config = ModelConfig(
        lookback=7, horizon=3, numeric_units=4, hidden_units=4, linear_skip="statistical"
    )
    boundaries = split_by_time(frame, CONTRACT, train_fraction=0.6, validation_fraction=0.2)
    state, arrays = prepare(frame, CONTRACT, boundaries, config)
    origins = window_origins(arrays, 7, 3, TEST)
    actual = gather_targets(arrays, origins, 3)
    # AutoETS, AutoTheta and AutoARIMA, fitted on the training steps and run forward: each far
    # better than the last value on this weekly shape
    assert arrays.prior.shape == (arrays.n_rows, 3, len(PRIOR_MODELS))
    last_mse = np.mean((arrays.numeric[origins, 0][:, None] - actual) ** 2)
    for k in range(len(PRIOR_MODELS)):
        assert np.mean((arrays.prior[origins, :, k] - actual) ** 2) < 0.1 * last_mse

    # the shares: the ridge skip's and each peer's, in inverse proportion to the square of
    # their validation MSE
    shares = fit_skip(arrays, config)[PEER_MIX][0]
    assert shares.shape == (1 + len(PRIOR_MODELS),) and np.isclose(shares.sum(), 1.0)
    validation = window_origins(arrays, 7, 3, VALIDATION)
    seen = gather_targets(arrays, validation, 3)
    peer_mse = [np.mean((arrays.prior[validation, :, k] - seen) ** 2) for k in range(3)]
    for k in (1, 2):
        np.testing.assert_allclose(
            shares[1] * peer_mse[0] ** 2, shares[k + 1] * peer_mse[k] ** 2, rtol=1e-4
        )

    def untrained(with_shares):
        model = build_model(state.spec)
        for layer, weights in fit_skip(arrays, config).items():
            model.get_layer(layer).set_weights(weights)
        model.get_layer(PEER_MIX).set_weights([np.asarray(with_shares, dtype=np.float32)])
        return Forecaster(model, state)

    # one share at 1: the model forecasts that peer alone, or the ridge skip alone
    only_theta = untrained([0, 0, 1, 0]).predict_windows(arrays, origins)[..., 1]
    np.testing.assert_allclose(only_theta, arrays.prior[origins, :, 1], atol=1e-4)
    ridge = untrained([1, 0, 0, 0]).predict_windows(arrays, origins)[..., 1]
    # the fitted shares: an untrained model forecasts the mix; saved and loaded, it still does
    forecaster = untrained(shares)
    median = forecaster.predict_windows(arrays, origins)[..., 1]
    mix = shares[0] * ridge + np.einsum("bhk,k->bh", arrays.prior[origins], shares[1:])
    np.testing.assert_allclose(median, mix, atol=1e-4)
    forecaster.save(tmp_path)
    loaded = Forecaster.load(tmp_path)
    np.testing.assert_allclose(loaded.predict_windows(arrays, origins)[..., 1], median, atol=1e-6)


def test_a_yearly_season_of_weekly_steps_enters_the_priors_autoarima_as_fourier_terms():
    # AutoETS leaves a season of 52 out and AutoARIMA's seasonal terms take minutes to fit there:
    # the prior's AutoARIMA regresses on the season's harmonics instead, and follows the shape
    weeks = 52 * 4
    t = np.arange(weeks)
    noise = np.random.default_rng(3).normal(0, 0.3, weeks)
    y = 10 + 3 * np.sin(2 * np.pi * t / 52) + 1.5 * np.cos(4 * np.pi * t / 52) + noise
    sundays = pd.date_range("2020-01-05", periods=weeks, freq="W-SUN")
    frame = pd.DataFrame({"sid": "a", "t": sundays, "y": y})
    contract = CONTRACT.model_copy(update={"freq": "W-SUN"})
    config = ModelConfig(lookback=8, horizon=6, linear_skip="statistical")
    boundaries = split_by_time(frame, contract, train_fraction=0.7, validation_fraction=0.1)
    state, arrays = prepare(frame, contract, boundaries, config)
    origins = window_origins(arrays, 8, 6, TEST)
    actual = gather_targets(arrays, origins, 6)
    arima = arrays.prior[origins, :, PRIOR_MODELS.index(AUTO_ARIMA)]
    ets = arrays.prior[origins, :, PRIOR_MODELS.index(AUTO_ETS)]
    # near the noise's variance (0.94x; 2.05x without the harmonics), far below AutoETS (20x)
    noise_mse = 0.3**2 / state.scaler.scale[0, 0] ** 2
    assert np.mean((arima - actual) ** 2) < 1.3 * noise_mse
    assert np.mean((arima - actual) ** 2) < 0.1 * np.mean((ets - actual) ** 2)
    # what statsforecast's forward gives with the same harmonics, at the last origin
    fitted_on = int((arrays.split == TRAIN).sum())
    fitted = _harmonic_fit(52, y[:fitted_on].tobytes())
    terms = _fourier(weeks + 6, 52, sum(k.startswith("ex_") for k in fitted.model_["coef"]) // 2)
    end = int(origins[-1])
    expected = fitted.forward(y=y[: end + 1], h=6, X=terms[: end + 1], X_future=terms[end + 1 :])
    scaled = state.scaler.scale_target(expected["mean"][None, :], np.array(["a"]))
    np.testing.assert_allclose(arima[-1], scaled[0, : len(arima[-1])], atol=1e-4)


def test_a_model_saved_with_the_earlier_statistical_skip_is_refused_with_a_clear_error(seasonal):
    _, forecaster, _ = seasonal
    payload = forecaster.state.spec.to_json()
    payload["config"]["linear_skip"] = "statistical"
    assert ModelSpec.from_json(payload).config.linear_skip == "statistical"
    for earlier in (1, 2):  # the mean of two peers; the mix without a long season's Fourier terms
        with pytest.raises(ModelStateError, match=f"spec_version.*version {earlier}.*retrain"):
            ModelSpec.from_json({**payload, "version": earlier})


def test_the_prior_at_an_origin_does_not_see_the_steps_after_it(seasonal):
    frame, _, _ = seasonal
    config = ModelConfig(lookback=7, horizon=3, linear_skip="statistical")
    boundaries = split_by_time(frame, CONTRACT, train_fraction=0.6, validation_fraction=0.2)
    _, arrays = prepare(frame, CONTRACT, boundaries, config)
    changed = frame.copy()
    later = changed["t"] > changed["t"].iloc[120]  # test steps only
    changed.loc[later, "y"] *= 3.0
    _, arrays_changed = prepare(changed, CONTRACT, boundaries, config)
    rows = np.flatnonzero(arrays.timestamps <= changed["t"].iloc[120])
    np.testing.assert_allclose(arrays_changed.prior[rows], arrays.prior[rows], rtol=1e-5)
    after = np.flatnonzero(arrays.timestamps > changed["t"].iloc[125])
    assert not np.allclose(arrays_changed.prior[after], arrays.prior[after])
