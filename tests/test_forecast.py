"""What a forecast may publish: only finite values, from inputs within the model's scale."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusioncast.contract import ForecastColumn as F
from fusioncast.demo import DEMO_CONTRACT as C
from fusioncast.errors import DataValidationError
from fusioncast.forecast import Forecaster
from fusioncast.model import build_model
from fusioncast.publish import publish_forecasts
from fusioncast.split import split_by_time
from fusioncast.state import ForecastingState, prepare

pytestmark = pytest.mark.slow

BROKEN = "S01-dairy"


@pytest.fixture
def fitted(demo_frame, small_model_config):
    boundaries = split_by_time(demo_frame, C)
    state, _ = prepare(demo_frame, C, boundaries, small_model_config)
    return state, boundaries, build_model(state.spec)


def _forecast(model, frame, state, **kwargs) -> pd.DataFrame:
    return Forecaster(model, state, "v1").predict(
        frame,
        freq="D",
        run_id="run-a",
        created_at=pd.Timestamp("2026-11-25 06:00", tz="UTC"),
        **kwargs,
    )


def _with_infinite_scale(state: ForecastingState) -> ForecastingState:
    """A state whose scale of one series' target is infinite: scaled inputs stay finite (zero),
    and that series' forecasts come back as NaN or +-inf."""
    from dataclasses import replace

    scale = state.scaler.scale.copy()
    scale[state.scaler.positions(np.array([BROKEN])), 0] = float("inf")
    return replace(state, scaler=replace(state.scaler, scale=scale))


def test_a_forecast_that_is_not_finite_is_never_published(fitted, demo_frame, tmp_path):
    state, _, model = fitted
    broken = _with_infinite_scale(state)
    with pytest.raises(DataValidationError) as refused:
        _forecast(model, demo_frame, broken)
    error = refused.value
    assert (error.rule, error.column, error.count, error.example) == (
        "forecast_finite",
        F.FORECAST,
        1,
        BROKEN,
    )
    assert f"hold NaN or infinite values: {BROKEN}" in str(error)

    set_aside = []
    forecasts = _forecast(
        model, demo_frame, broken, policy="quarantine", on_set_aside=set_aside.append
    )
    assert [e.rule for e in set_aside] == ["forecast_finite"]
    path = publish_forecasts(forecasts, tmp_path, run_id="run-a")
    published = pd.read_parquet(path)
    assert BROKEN not in set(published[F.SERIES_ID])
    assert published[F.SERIES_ID].nunique() == demo_frame[C.series_id].nunique() - 1
    values = published[[F.FORECAST, "p10", "p50", "p90"]].to_numpy()
    assert np.isfinite(values).all()


def test_a_forecast_of_no_finite_series_stops_under_quarantine_too(fitted, demo_frame):
    state, _, model = fitted
    one_series = demo_frame[demo_frame[C.series_id] == BROKEN]
    with pytest.raises(DataValidationError, match="rule 'forecast_finite'"):
        _forecast(model, one_series, _with_infinite_scale(state), policy="quarantine")


def _far_outside(frame: pd.DataFrame) -> pd.DataFrame:
    series = frame[C.series_id] == BROKEN
    return frame.assign(**{C.target: frame[C.target].where(~series, frame[C.target] * 1e30)})


def test_a_series_far_outside_the_scale_is_refused_before_prediction(fitted, demo_frame):
    state, _, model = fitted
    damaged = _far_outside(demo_frame)
    with pytest.raises(DataValidationError) as refused:
        _forecast(None, damaged, state)  # no model: refused before anything is predicted
    error = refused.value
    assert (error.rule, error.column) == ("within_scale", C.target)
    # the rule is applied to the steps the model reads: the last lookback steps of each series
    read = damaged[damaged[C.series_id] == BROKEN].tail(state.spec.config.lookback)
    assert error.count == len(read)
    first = read.iloc[0]
    assert error.example.startswith(f"{C.target}={first[C.target]:.6g} at series_id={BROKEN}, ")
    assert f"{C.timestamp}={first[C.timestamp].date()}" in error.example

    set_aside = []
    forecasts = _forecast(model, damaged, state, policy="quarantine", on_set_aside=set_aside.append)
    assert [e.rule for e in set_aside] == ["within_scale"]
    assert BROKEN not in set(forecasts[F.SERIES_ID])
    assert forecasts[F.SERIES_ID].nunique() == demo_frame[C.series_id].nunique() - 1
    assert np.isfinite(forecasts[[F.FORECAST, "p10", "p90"]].to_numpy()).all()


def test_training_arrays_refuse_steps_far_outside_the_training_scale(fitted, demo_frame):
    """The scaler is fitted on training steps; a later step a unit error away would be
    early-stopped and scored on. A whole series in other units is fine: it has its own scale."""
    state, boundaries, _ = fitted
    later = demo_frame[C.timestamp] > boundaries.train_end
    damaged = demo_frame.copy()
    damaged.loc[later & (demo_frame[C.series_id] == BROKEN), "price"] *= 1e30
    with pytest.raises(DataValidationError, match="rule 'within_scale' failed on column 'price'"):
        state.arrays(damaged, boundaries)

    whole = _far_outside(demo_frame)
    _, arrays = prepare(whole, C, boundaries, state.spec.config)
    assert arrays.numeric.shape[0] == len(whole)


def test_a_forecaster_without_a_version_publishes_nothing(fitted, demo_frame):
    """Published rows name the registry version that made them: none before registering."""
    state, _, model = fitted
    with pytest.raises(ValueError, match="only once it has a version"):
        Forecaster(model, state).predict(
            demo_frame, freq="D", run_id="run-a", created_at=pd.Timestamp.now(tz="UTC")
        )


def test_each_forecast_names_the_steps_whose_text_weighed_most(fitted, demo_frame):
    """The published explanation of a series ranks its lookback's steps by the attention mass
    their tokens received (the explanation model's weights, summed per step)."""
    import json

    from fusioncast.model import explanation_model
    from fusioncast.windows import forecast_origins, gather_inputs

    state, _, model = fitted
    config = state.spec.config
    published = _forecast(model, demo_frame, state)
    arrays = state.arrays(demo_frame)
    origins = forecast_origins(arrays, config.lookback)
    inputs = gather_inputs(arrays, origins, config.lookback, config.max_text_tokens)
    _, *weights = explanation_model(model, len(C.text)).predict(inputs, verbose=0)
    named = 0
    for b, origin in enumerate(origins):
        mass: dict[tuple[str, int], float] = {}
        for i, column in enumerate(C.text):
            ages = inputs[f"text_{i}_age"][b]
            for position in np.flatnonzero(ages < config.lookback):
                key = (column, int(origin - ages[position]))
                mass[key] = mass.get(key, 0.0) + float(weights[i][b, position])
        expected = sorted(mass.items(), key=lambda item: -item[1])[:3]
        series = arrays.series_ids[arrays.row_series[origin]]
        text = published.loc[published[F.SERIES_ID] == series, F.EXPLANATION].iloc[0]
        entries = json.loads(text)
        assert [(e["feature"], pd.Timestamp(e["timestamp"])) for e in entries] == [
            (column, pd.Timestamp(arrays.timestamps[row])) for (column, row), _ in expected
        ]
        assert [e["weight"] for e in entries] == pytest.approx([w for _, w in expected], abs=1e-4)
        assert [e["text"] for e in entries] == [
            demo_frame[column].iloc[row] for (column, row), _ in expected
        ]
        named += len(entries)
    assert named > 0  # the demo's notes are within reach of the lookback


def test_many_series_unseen_in_training_are_scaled_on_their_own_history(fitted, demo_frame):
    """Series the model has not seen are forecast as if their scaler statistics (mean and
    standard deviation of their whole history) had been fitted with the others'."""
    state, _, model = fitted
    copies = []
    for k in range(60):  # 240 series unseen in training: copies of the demo's at other levels
        copy = demo_frame.copy()
        copy[C.series_id] = copy[C.series_id] + f"-copy{k:02d}"
        copy[C.target] = copy[C.target] * (1 + k / 10) + k
        copies.append(copy)
    frame = pd.concat([demo_frame, *copies], ignore_index=True)
    published = _forecast(model, frame, state)

    from dataclasses import replace

    scaler = state.scaler
    unseen = frame[~frame[C.series_id].isin(scaler.series)].groupby(C.series_id)[scaler.columns]
    std = unseen.std(ddof=0)
    known = replace(
        state,
        scaler=replace(
            scaler,
            series=np.concatenate([scaler.series, unseen.mean().index.to_numpy(dtype=object)]),
            location=np.concatenate([scaler.location, unseen.mean().to_numpy()]),
            scale=np.concatenate([scaler.scale, std.where(std > 0, 1.0).to_numpy()]),
        ),
    )
    expected = _forecast(model, frame, known)
    assert published[F.SERIES_ID].nunique() == demo_frame[C.series_id].nunique() * 61
    pd.testing.assert_frame_equal(published, expected, rtol=1e-6)
    # and a copy at another level is forecast at that level, not at the original's
    original = published[published[F.SERIES_ID] == BROKEN][F.FORECAST].to_numpy()
    copy = published[published[F.SERIES_ID] == f"{BROKEN}-copy59"][F.FORECAST].to_numpy()
    assert np.all(copy > original * 3)


@pytest.mark.parametrize("freq", ["D", "h", "W-SUN", "MS", "ME", "QE-DEC", "15min"])
def test_the_steps_forecast_follow_the_frequency_from_each_origin(freq):
    from fusioncast.timestamps import future_steps

    origins = pd.date_range("2023-01-01", periods=40, freq=freq)[[0, 7, 39]]
    steps = future_steps(origins.to_numpy(), freq, 5)
    for origin, row in zip(origins, steps, strict=True):
        expected = pd.date_range(origin, periods=6, freq=freq)[1:]
        assert pd.DatetimeIndex(row).equals(expected)
