import numpy as np
import pytest

from fusioncast.demo import DEMO_CONTRACT
from fusioncast.errors import ModelStateError
from fusioncast.scaling import SeriesScaler
from fusioncast.split import TRAIN, split_by_time
from fusioncast.state import fit_scaler

C = DEMO_CONTRACT


def test_scaler_is_fitted_on_training_steps_only(demo_frame):
    boundaries = split_by_time(demo_frame, C)
    scaler = fit_scaler(demo_frame, C, boundaries)
    # Leakage check: wildly changing every validation/test value must not move the statistics.
    changed = demo_frame.copy()
    later = boundaries.labels(changed[C.timestamp]) != TRAIN
    changed.loc[later, C.target] = changed.loc[later, C.target] * 100 + 1e6
    changed.loc[later, "price"] = -50.0
    assert fit_scaler(changed, C, boundaries).to_json() == scaler.to_json()
    train = demo_frame[~later]
    first = train[train[C.series_id] == "S01-dairy"]
    loc, scale = scaler.statistics("S01-dairy", C.target)
    assert loc == pytest.approx(first[C.target].mean())
    assert scale == pytest.approx(first[C.target].std(ddof=0))


def test_transform_and_inverse_round_trip(demo_frame):
    boundaries = split_by_time(demo_frame, C)
    scaler = fit_scaler(demo_frame, C, boundaries)
    scaled = scaler.transform(demo_frame, C)
    assert scaled.shape == (len(demo_frame), 2) and scaled.dtype == np.float32
    train = boundaries.labels(demo_frame[C.timestamp]) == TRAIN
    assert abs(scaled[train, 0].mean()) < 1e-3
    keys = demo_frame[C.series_id].to_numpy(dtype=object)
    restored = scaler.inverse_target(scaled[:, 0].astype(np.float64), keys)
    np.testing.assert_allclose(restored, demo_frame[C.target], rtol=1e-5, atol=1e-3)


def test_unseen_series_needs_with_series_and_then_uses_its_own_history(demo_frame):
    boundaries = split_by_time(demo_frame, C)
    scaler = fit_scaler(demo_frame[demo_frame[C.series_id] != "S02-bakery"], C, boundaries)
    with pytest.raises(ModelStateError, match="1 series"):
        scaler.transform(demo_frame, C)
    extended = scaler.with_series(demo_frame, C)
    assert "S02-bakery" in extended.series and "S02-bakery" not in scaler.series
    assert np.isfinite(extended.transform(demo_frame, C)).all()


def test_scaler_json_round_trip_and_constant_column(demo_frame):
    frame = demo_frame.assign(price=1.0)
    scaler = SeriesScaler.fit(frame, C, np.ones(len(frame), dtype=bool))
    assert scaler.statistics("S01-dairy", "price") == (1.0, 1.0)  # a constant column: scale 1
    again = SeriesScaler.from_json(scaler.to_json())
    np.testing.assert_array_equal(again.transform(frame, C), scaler.transform(frame, C))


def test_a_scaler_saved_as_version_1_still_loads(demo_frame):
    """Models registered before the scaler held arrays keep forecasting after an upgrade."""
    scaler = SeriesScaler.fit(demo_frame, C, np.ones(len(demo_frame), dtype=bool))
    stats = {
        series: {c: list(scaler.statistics(series, c)) for c in scaler.columns}
        for series in scaler.series
    }
    old = SeriesScaler.from_json({"version": 1, "columns": scaler.columns, "stats": stats})
    assert old.to_json() == scaler.to_json()
    with pytest.raises(ModelStateError, match="version 0"):
        SeriesScaler.from_json({"version": 0})
