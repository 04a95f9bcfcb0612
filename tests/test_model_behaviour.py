"""What the trained model does on the demo data: text helps, text moves forecasts the right way,
and a level shift after training does not make it worse than repeating the last value.

One model with text and one with text shuffled across windows are trained once for the module
(about a minute on two CPU cores).
"""

from __future__ import annotations

import numpy as np
import pytest

from fusioncast.baselines import LAST_VALUE
from fusioncast.config import ModelConfig, TrainingConfig
from fusioncast.demo import DEMO_CONTRACT as C
from fusioncast.demo import DEMO_EVENTS, generate_demo_frame
from fusioncast.evaluate import MODEL, TEXT_REMOVED, TEXT_SHUFFLED, evaluate_model, summarise
from fusioncast.split import TEST, TRAIN, split_by_time
from fusioncast.state import ForecastingState, prepare
from fusioncast.tokenize import BOS, PAD
from fusioncast.training import train_forecaster
from fusioncast.windows import gather_inputs, window_origins

pytestmark = pytest.mark.slow

CONFIG = ModelConfig(
    lookback=28,
    horizon=7,
    numeric_units=32,
    text_units=16,
    text_embedding_dim=16,
    hidden_units=64,
    max_text_tokens=48,
)
TRAINING = TrainingConfig(
    epochs=12, batch_size=128, patience=4, steps_per_epoch=40, learning_rate=3e-3
)


@pytest.fixture(scope="module")
def demo():
    frame = generate_demo_frame(n_stores=3, n_categories=4, n_days=600, seed=0)
    boundaries = split_by_time(frame, C)
    return frame, boundaries, *prepare(frame, C, boundaries, CONFIG)


@pytest.fixture(scope="module")
def with_text(demo):
    return train_forecaster(demo[2], demo[3], TRAINING)


@pytest.fixture(scope="module")
def with_shuffled_text(demo):
    return train_forecaster(demo[2], demo[3], TRAINING, shuffle_text=True)


def test_text_beats_the_same_model_trained_on_shuffled_text(with_text, with_shuffled_text):
    best_full = min(with_text[1].history["val_loss"])
    best_shuffled = min(with_shuffled_text[1].history["val_loss"])
    assert best_full < 0.95 * best_shuffled, (best_full, best_shuffled)


def test_trained_model_beats_the_last_value_and_its_text_ablations(demo, with_text):
    evaluation = evaluate_model(with_text[0], demo[3], season=7)
    mse = summarise(evaluation.metrics).set_index("model")["mse"]
    assert mse[MODEL] < 0.8 * mse[LAST_VALUE]
    # The same trained model, given no text or another window's text, forecasts worse.
    assert mse[MODEL] < 0.95 * mse[TEXT_REMOVED], mse.to_dict()
    assert mse[MODEL] < 0.95 * mse[TEXT_SHUFFLED], mse.to_dict()


def _note_tokens(state: ForecastingState, note: str, batch: int, age: int) -> tuple:
    ids, _ = state.tokenizers["note"].encode([note])
    tokens = np.full((batch, CONFIG.max_text_tokens), PAD, dtype=np.int32)
    ages = np.full((batch, CONFIG.max_text_tokens), CONFIG.lookback, dtype=np.int32)
    tokens[:, 0] = BOS
    tokens[:, 1 : 1 + len(ids)] = ids
    ages[:, 1 : 1 + len(ids)] = age
    return tokens, ages


@pytest.mark.parametrize("event", ["festival", "marathon", "road_works", "strike"])
def test_a_note_announcing_an_event_moves_the_forecast_in_its_direction(demo, with_text, event):
    _, _, state, arrays = demo
    kind = next(e for e in DEMO_EVENTS if e.key == event)
    origins = window_origins(arrays, CONFIG.lookback, CONFIG.horizon, TEST)[::5]
    inputs = gather_inputs(arrays, origins, CONFIG.lookback, CONFIG.max_text_tokens)
    # Posted yesterday; its effect falls inside the horizon from step lag - 1 on.
    note = kind.templates[0].format(when=f"in {kind.lag} days")
    affected = slice(kind.lag - 2, min(CONFIG.horizon, kind.lag - 2 + kind.duration))
    control = dict(inputs)
    control["text_0_tokens"], control["text_0_age"] = _note_tokens(
        state, "Staff meeting at 9am", len(origins), 1
    )
    announced = dict(inputs)
    announced["text_0_tokens"], announced["text_0_age"] = _note_tokens(state, note, len(origins), 1)
    median = CONFIG.output_quantiles.index(0.5)
    model = with_text[0].model
    base = model.predict(control, verbose=0)[:, affected, median]
    moved = model.predict(announced, verbose=0)[:, affected, median]
    change = float(np.mean(moved - base))
    assert np.sign(change) == kind.direction, change
    assert abs(change) > 0.1  # in per-series standard deviations


def test_level_shift_after_training_is_no_worse_than_the_last_value(demo, with_text):
    frame, boundaries, state, _ = demo
    shifted = frame.copy()
    after = boundaries.labels(shifted[C.timestamp]) != TRAIN
    # Everything after training jumps to three times the level: far outside the training range.
    shifted.loc[after, C.target] = shifted.loc[after, C.target] * 3 + 500
    arrays = state.arrays(shifted, boundaries)
    assert arrays.numeric[arrays.split == TEST, 0].min() > 5  # > 5 training std above the mean
    evaluation = evaluate_model(with_text[0], arrays, ablations=False)
    mse = summarise(evaluation.metrics).set_index("model")["mse"]
    assert mse[MODEL] <= mse[LAST_VALUE]
