"""The retail demo dataset: shape, determinism, and that its notes carry forward-looking signal."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from fusioncast.demo import (
    DEMO_CONTRACT,
    DEMO_EVENTS,
    DOWN_EVENTS,
    NOISE_NOTES,
    UP_EVENTS,
    classify_note,
    generate_demo_frame,
    generate_demo_frame_with_truth,
    write_demo_dataset,
)
from fusioncast.errors import ConfigError
from fusioncast.validation import read_dataset

SMALL = {"n_stores": 2, "n_categories": 2, "n_days": 200}

# Keywords written out here (not taken from the module) so that the signal is checked from the
# note text alone: keyword -> (direction, lag, duration) as the module docstring states them.
KEYWORDS = {
    "street festival": (+1, 4, 3),
    "marathon": (+1, 5, 2),
    "school holidays": (+1, 3, 4),
    "heatwave": (+1, 3, 3),
    "open-air concert": (+1, 4, 2),
    "coupon campaign": (+1, 5, 3),
    "road works": (-1, 4, 4),
    "supplier strike": (-1, 3, 3),
    "storm": (-1, 3, 2),
    "parking lot": (-1, 5, 3),
    "power outage": (-1, 4, 2),
    "bus line": (-1, 5, 4),
}


def _event_notes(frame: pd.DataFrame):
    """(series_id, row position within the series, direction, lag, duration) per event note."""
    for series_id, group in frame.groupby("series_id", sort=True):
        for pos, note in enumerate(group["note"].tolist()):
            if not isinstance(note, str):
                continue
            hits = [v for k, v in KEYWORDS.items() if k in note.lower()]
            assert len(hits) <= 1, note
            if hits:
                yield series_id, pos, *hits[0]


@pytest.fixture(scope="module")
def default_frame() -> tuple[pd.DataFrame, float]:
    started = time.perf_counter()
    frame = generate_demo_frame()
    return frame, time.perf_counter() - started


def test_default_size_and_speed(default_frame):
    frame, seconds = default_frame
    n_series = frame["series_id"].nunique()
    n_days = frame["date"].nunique()
    assert n_series >= 20 and n_days >= 730
    assert len(frame) == n_series * n_days
    assert seconds < 2.0
    assert list(frame.columns) == DEMO_CONTRACT.all_columns


def test_dtypes(default_frame):
    frame, _ = default_frame
    assert frame["date"].dtype == np.dtype("datetime64[ns]")
    assert (frame["date"] == frame["date"].dt.normalize()).all()
    assert frame["date"].dt.tz is None
    assert frame["units_sold"].dtype == np.float64 and frame["price"].dtype == np.float64
    for column in ("series_id", "store", "category", "day_of_week", "note"):
        assert pd.api.types.is_string_dtype(frame[column]), column
    assert frame["note"].isna().any()


def test_deterministic_by_seed():
    a = generate_demo_frame(seed=7, **SMALL)
    b = generate_demo_frame(seed=7, **SMALL)
    pd.testing.assert_frame_equal(a, b)
    c = generate_demo_frame(seed=8, **SMALL)
    assert not a["units_sold"].equals(c["units_sold"])
    assert not a["note"].fillna("").equals(c["note"].fillna(""))


def test_series_are_stable_when_more_stores_are_added():
    small = generate_demo_frame(seed=3, **SMALL)
    large = generate_demo_frame(seed=3, n_stores=3, n_categories=2, n_days=200)
    pd.testing.assert_frame_equal(small, large.iloc[: len(small)])


def test_complete_daily_grid_without_duplicates(default_frame):
    frame, _ = default_frame
    assert not frame.duplicated(["series_id", "date"]).any()
    for _, dates in frame.groupby("series_id")["date"]:
        assert dates.is_monotonic_increasing
        assert (dates.diff().dropna() == pd.Timedelta(days=1)).all()
    assert frame["date"].min() == pd.Timestamp("2023-01-02")
    spans = frame.groupby("series_id")["date"].agg(["min", "max"])
    assert spans["min"].nunique() == 1 and spans["max"].nunique() == 1


def test_ids_and_static_columns(default_frame):
    frame, _ = default_frame
    assert (frame["series_id"] == frame["store"] + "-" + frame["category"]).all()
    assert frame.groupby("series_id")[["store", "category"]].nunique().max().max() == 1
    assert set(frame["store"]) == {"S01", "S02", "S03", "S04"}
    assert {"dairy", "bakery", "produce"} <= set(frame["category"])
    expected = frame["date"].dt.day_name().str[:3]
    assert (frame["day_of_week"] == expected).all()


def test_target_and_price_are_sane(default_frame):
    frame, _ = default_frame
    assert np.isfinite(frame["units_sold"]).all() and (frame["units_sold"] >= 0).all()
    assert np.isfinite(frame["price"]).all() and (frame["price"] > 0).all()
    means = frame.groupby("series_id")["units_sold"].mean()
    assert means.max() / means.min() > 2  # levels differ by store and category


def test_weekend_peak(default_frame):
    frame, _ = default_frame
    by_day = frame.groupby("day_of_week")["units_sold"].mean()
    assert by_day["Sat"] > by_day[["Mon", "Tue", "Wed", "Thu"]].max()


def test_discounts_raise_sales(default_frame):
    frame, _ = default_frame
    regular = frame.groupby("series_id")["price"].transform("max")
    discounted = frame["price"] < regular
    assert 0.03 < discounted.mean() < 0.3
    cut = 1 - frame.loc[discounted, "price"] / regular[discounted]
    assert cut.between(0.08, 0.32).all()
    # Compare with the series' own median, within each series.
    rel = frame["units_sold"] / frame.groupby("series_id")["units_sold"].transform("median")
    assert rel[discounted].mean() > 1.15 * rel[~discounted].mean()


def test_notes_mostly_empty_and_from_the_phrase_lists(default_frame):
    frame, _ = default_frame
    assert frame["note"].isna().mean() > 0.7
    notes = frame["note"].dropna()
    known = set(NOISE_NOTES)
    for note in notes.unique():
        for part in note.split(". "):
            assert part in known or classify_note(part) is not None, part
    kinds = {classify_note(n).key for n in notes if classify_note(n) is not None}
    assert kinds == {e.key for e in DEMO_EVENTS}
    assert len(UP_EVENTS) == 6 and len(DOWN_EVENTS) == 6 and len(NOISE_NOTES) >= 10
    # Frequencies: event notes every ~15-25 days, noise notes every ~7-10 days per series.
    n_series = frame["series_id"].nunique()
    n_days = frame["date"].nunique()
    n_events = sum(1 for _ in _event_notes(frame))
    assert 12 < n_series * n_days / n_events < 28
    n_noise = sum(sum(p in known for p in n.split(". ")) for n in notes)
    assert 6 < n_series * n_days / n_noise < 11


def test_notes_state_the_lag():
    frame = generate_demo_frame(seed=1)
    for note in frame["note"].dropna().unique():
        event = classify_note(note)
        if event is None:
            continue
        days_word = f"{event.lag} days"
        assert days_word in note or " on " in note, note


def test_event_notes_move_the_target_later(default_frame):
    frame, _ = default_frame
    up, down = [], []
    target = {k: g["units_sold"].to_numpy() for k, g in frame.groupby("series_id")}
    for series_id, pos, direction, lag, duration in _event_notes(frame):
        y = target[series_id]
        window = np.arange(pos + lag, pos + lag + duration)
        around = np.r_[pos - 14 : pos, pos + lag + duration + 3 : pos + lag + duration + 17]
        if window[-1] >= len(y) or around.min() < 0 or around.max() >= len(y):
            continue
        ratio = y[window].mean() / y[around].mean()
        (up if direction > 0 else down).append(ratio)
    assert len(up) > 100 and len(down) > 100
    assert np.mean(up) > 1.35 and np.median(up) > 1.3
    assert np.mean(down) < 0.7 and np.median(down) < 0.7
    # The days between the note and the effect are not moved.
    before = []
    for series_id, pos, _, lag, _ in _event_notes(frame):
        y = target[series_id]
        if pos - 14 >= 0 and pos + lag < len(y):
            before.append(y[pos : pos + lag].mean() / y[pos - 14 : pos].mean())
    assert 0.93 < np.mean(before) < 1.07


def test_noise_notes_do_not_move_the_target(default_frame):
    frame, _ = default_frame
    ratios = []
    for _, group in frame.groupby("series_id"):
        y = group["units_sold"].to_numpy()
        notes = group["note"].fillna("").tolist()
        for pos, note in enumerate(notes):
            if note in NOISE_NOTES and 14 <= pos < len(y) - 10:
                after = y[pos + 3 : pos + 6].mean()
                ratios.append(after / y[pos - 14 : pos].mean())
    # Later events may fall after a noise note by chance; on average they cancel out roughly.
    assert 0.85 < np.mean(ratios) < 1.15


def test_effects_start_after_their_note():
    frame, truth = generate_demo_frame_with_truth(seed=5, **SMALL)
    effect = truth.event_effects().ravel()  # the frame's rows are series x days
    assert effect.shape == (len(frame),)
    covered = np.zeros(len(frame), dtype=bool)
    offsets = frame.groupby("series_id", sort=True).cumcount().to_numpy()
    first_row = frame.reset_index().groupby("series_id")["index"].min().to_dict()
    n_events = 0
    for series_id, pos, direction, lag, duration in _event_notes(frame):
        n_events += 1
        row = first_row[series_id] + pos
        n_series_days = int((frame["series_id"] == series_id).sum())
        stop = min(pos + lag + duration, n_series_days) - pos
        assert (effect[row : row + lag] == 0).all()  # nothing on or right after the note day
        block = effect[row + lag : row + stop]
        assert (np.sign(block) == direction).all()
        assert np.all(np.abs(block) >= 0.3) and np.all(np.abs(block) <= 0.8)
        covered[row + lag : row + stop] = True
    assert n_events > 10
    # Every row with an effect belongs to the window of a note posted before it.
    assert not (effect != 0)[~covered].any()
    assert offsets.max() == SMALL["n_days"] - 1


def test_classify_note():
    assert classify_note(None) is None
    assert classify_note(pd.NA) is None
    assert classify_note("Staff meeting at 9am") is None
    event = classify_note("Fire drill completed. Storm warning issued for the area in 3 days")
    assert event is not None and event.direction == -1 and event.lag == 3


@pytest.mark.parametrize("kwargs", [{"n_stores": 0}, {"n_categories": 99}, {"n_days": 0}])
def test_bad_parameters(kwargs):
    with pytest.raises(ConfigError):
        generate_demo_frame(**kwargs)


def test_write_partitioned_dataset_round_trips(tmp_path):
    frame = generate_demo_frame(seed=2, **SMALL)
    path = write_demo_dataset(tmp_path / "demo", seed=2, **SMALL)
    assert path == tmp_path / "demo"
    # the reference forecasts go to a folder that readers of Parquet datasets skip
    assert sorted(p.name for p in path.iterdir()) == ["_reference", "store=S01", "store=S02"]

    def normalise(df: pd.DataFrame) -> pd.DataFrame:
        df = df[frame.columns].copy()
        df["store"] = df["store"].astype(str).astype("string")
        for column in df.columns[[isinstance(t, pd.CategoricalDtype) for t in df.dtypes]]:
            df[column] = df[column].astype(frame[column].dtype)  # read_dataset: categoricals
        return df.sort_values(["series_id", "date"], ignore_index=True)

    table = ds.dataset(path, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == len(frame)
    pd.testing.assert_frame_equal(normalise(table.to_pandas()), frame)
    pd.testing.assert_frame_equal(normalise(pd.read_parquet(path)), frame)
    pd.testing.assert_frame_equal(normalise(read_dataset(path, DEMO_CONTRACT)), frame)

    # Writing again replaces the partitions instead of adding rows.
    write_demo_dataset(path, seed=2, **SMALL)
    assert len(pd.read_parquet(path)) == len(frame)


def test_write_single_file(tmp_path):
    path = write_demo_dataset(str(tmp_path / "out" / "demo.parquet"), seed=4, **SMALL)
    assert path.is_file()
    pd.testing.assert_frame_equal(pd.read_parquet(path), generate_demo_frame(seed=4, **SMALL))
