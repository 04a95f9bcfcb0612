import numpy as np
import pytest

from fusioncast.demo import DEMO_CONTRACT
from fusioncast.split import TEST, TRAIN, VALIDATION, split_by_time
from fusioncast.state import prepare
from fusioncast.tokenize import BOS, PAD
from fusioncast.windows import (
    WindowSampler,
    forecast_origins,
    gather_inputs,
    gather_targets,
    window_origins,
)

C = DEMO_CONTRACT


@pytest.fixture
def built(demo_frame, small_model_config):
    return prepare(demo_frame, C, split_by_time(demo_frame, C), small_model_config)


def test_origins_keep_each_horizon_inside_its_split_and_series(built, small_model_config):
    _, arrays = built
    lookback, horizon = small_model_config.lookback, small_model_config.horizon
    for split in (TRAIN, VALIDATION, TEST):
        origins = window_origins(arrays, lookback, horizon, split)
        assert len(origins) > 0
        for origin in origins:
            series = arrays.row_series[origin]
            assert arrays.offsets[series] <= origin - lookback + 1
            assert origin + horizon < arrays.offsets[series + 1]
            assert set(arrays.split[origin + 1 : origin + horizon + 1]) == {split}
    # 4 series x (168 train steps - lookback - horizon + 1) training windows.
    assert len(window_origins(arrays, lookback, horizon, TRAIN)) == 4 * (168 - 21 - 5 + 1)


def test_gathered_windows_equal_plain_slices(built, small_model_config, demo_frame):
    state, arrays = built
    lookback, horizon = small_model_config.lookback, small_model_config.horizon
    origins = window_origins(arrays, lookback, horizon, TEST)[[0, 7, -1]]
    inputs = gather_inputs(arrays, origins, lookback, small_model_config.max_text_tokens)
    targets = gather_targets(arrays, origins, horizon)
    for b, origin in enumerate(origins):
        np.testing.assert_array_equal(
            inputs["numeric"][b], arrays.numeric[origin - lookback + 1 : origin + 1]
        )
        np.testing.assert_array_equal(
            targets[b], arrays.numeric[origin + 1 : origin + horizon + 1, 0]
        )
        assert inputs["static_0"][b, 0] == arrays.static[arrays.row_series[origin], 0]
    assert inputs["dynamic_0"].shape == (3, lookback)


def test_text_window_holds_the_most_recent_tokens_of_the_lookback(built, small_model_config):
    state, arrays = built
    lookback, max_tokens = small_model_config.lookback, small_model_config.max_text_tokens
    text = arrays.text[0]
    origins = window_origins(arrays, lookback, small_model_config.horizon)
    inputs = gather_inputs(arrays, origins, lookback, max_tokens)
    tokens, age = inputs["text_0_tokens"], inputs["text_0_age"]
    assert (tokens[:, 0] == BOS).all()
    for b in range(0, len(origins), 37):
        origin = origins[b]
        expected = text.ids[text.offsets[origin - lookback + 1] : text.offsets[origin + 1]]
        expected = expected[-(max_tokens - 1) :]
        n = len(expected)
        np.testing.assert_array_equal(tokens[b, 1 : 1 + n], expected)
        assert (tokens[b, 1 + n :] == PAD).all()  # right-padded
        assert (age[b, 1 + n :] == lookback).all()
        assert ((age[b, 1 : 1 + n] >= 0) & (age[b, 1 : 1 + n] < lookback)).all()
        assert (np.diff(age[b, 1 : 1 + n]) <= 0).all()  # time order: oldest first


def _one_batch(arrays, origins, config, **options):
    """All ``origins`` as one batch of a sampler shaped by ``config``."""
    sampler = WindowSampler(
        arrays,
        origins,
        lookback=config.lookback,
        horizon=config.horizon,
        max_text_tokens=config.max_text_tokens,
        batch_size=len(origins),
        **options,
    )
    return sampler[0]


def test_shuffled_text_takes_text_from_other_windows_and_keeps_numbers(built, small_model_config):
    _, arrays = built
    origins = window_origins(arrays, small_model_config.lookback, small_model_config.horizon, TRAIN)
    plain_x, plain_y = _one_batch(arrays, origins, small_model_config)
    shuffled_x, shuffled_y = _one_batch(arrays, origins, small_model_config, shuffle_text=True)
    np.testing.assert_array_equal(plain_x["numeric"], shuffled_x["numeric"])
    np.testing.assert_array_equal(plain_y, shuffled_y)
    differs = (plain_x["text_0_tokens"] != shuffled_x["text_0_tokens"]).any(axis=1).mean()
    assert differs > 0.5
    # Same multiset of token rows: text is moved between windows, not made up.
    assert sorted(map(tuple, plain_x["text_0_tokens"])) == sorted(
        map(tuple, shuffled_x["text_0_tokens"])
    )


def test_text_removal_leaves_only_the_begin_marker_and_keeps_numbers(built, small_model_config):
    _, arrays = built
    origins = window_origins(arrays, small_model_config.lookback, small_model_config.horizon, TEST)
    plain_x, _ = _one_batch(arrays, origins, small_model_config)
    removed_x, _ = _one_batch(arrays, origins, small_model_config, without_text=True)
    dropped_x, _ = _one_batch(arrays, origins, small_model_config, text_dropout=0.5)
    np.testing.assert_array_equal(plain_x["numeric"], dropped_x["numeric"])
    assert (removed_x["text_0_tokens"][:, 0] == BOS).all()
    assert (removed_x["text_0_tokens"][:, 1:] == PAD).all()
    assert (removed_x["text_0_age"][:, 1:] == small_model_config.lookback).all()
    had_text = (plain_x["text_0_tokens"][:, 1:] != PAD).any(axis=1)
    blanked = (dropped_x["text_0_tokens"][:, 1:] == PAD).all(axis=1) & had_text
    kept = (dropped_x["text_0_tokens"] == plain_x["text_0_tokens"]).all(axis=1)
    assert (blanked | kept).all()  # a window keeps all its text or none of it
    assert 0.3 < blanked.sum() / had_text.sum() < 0.7


def test_sampler_covers_every_window_once_per_epoch_and_reshuffles(built, small_model_config):
    _, arrays = built
    origins = window_origins(arrays, small_model_config.lookback, small_model_config.horizon, TRAIN)
    sampler = WindowSampler(
        arrays, origins, lookback=21, horizon=5, max_text_tokens=24, batch_size=100, shuffle=True
    )
    seen = [sampler.batch_origins(i)[0] for i in range(len(sampler))]
    assert sorted(np.concatenate(seen).tolist()) == sorted(origins.tolist())
    first = np.concatenate(seen)
    again = np.concatenate([sampler.batch_origins(i)[0] for i in range(len(sampler))])
    np.testing.assert_array_equal(first, again)  # asked twice in one epoch: the same batches
    sampler.epoch = 1
    second = np.concatenate([sampler.batch_origins(i)[0] for i in range(len(sampler))])
    assert sorted(second.tolist()) == sorted(origins.tolist())
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("steps_per_epoch", [None, 3], ids=["shuffled_epochs", "sampled_steps"])
def test_batches_depend_on_the_seed_and_epoch_not_on_how_often_they_are_asked_for(
    built, small_model_config, steps_per_epoch
):
    """Keras asks for batches to probe shapes, to build a distributed model and ahead of time on
    its prefetch threads; the same seed must serve the same batches whatever was asked before."""
    _, arrays = built
    origins = window_origins(arrays, small_model_config.lookback, small_model_config.horizon, TRAIN)

    def served(probes: list[int]) -> list[np.ndarray]:
        sampler = WindowSampler(
            arrays, origins, lookback=21, horizon=5, max_text_tokens=24, batch_size=100,
            shuffle=True, steps_per_epoch=steps_per_epoch, seed=3, text_dropout=0.5,
        )  # fmt: skip
        for index in probes:
            sampler[index]
        batches = []
        for epoch in (1, 2):
            sampler.epoch = epoch
            batches += [sampler[i][0]["numeric"] for i in range(len(sampler))]
            sampler.on_epoch_end()
        return batches

    quiet, probed = served([]), served([0, 1, 0, 2])
    for ours, theirs in zip(quiet, probed, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert not np.array_equal(quiet[0], quiet[len(quiet) // 2])  # each epoch draws anew


def test_forecast_origins_are_the_last_row_of_each_long_enough_series(built):
    _, arrays = built
    np.testing.assert_array_equal(forecast_origins(arrays, 21), arrays.offsets[1:] - 1)
    assert len(forecast_origins(arrays, 10_000)) == 0


def test_windows_are_views_of_shared_arrays_not_copies(built, small_model_config):
    """The sampler holds the per-series arrays once; no window table is built up front."""
    _, arrays = built
    origins = window_origins(arrays, small_model_config.lookback, small_model_config.horizon)
    sampler = WindowSampler(arrays, origins, lookback=21, horizon=5, max_text_tokens=24)
    assert sampler.arrays.numeric is arrays.numeric
    held = [v for v in vars(sampler).values() if isinstance(v, np.ndarray)]
    assert max(a.nbytes for a in held) <= 8 * len(origins)
