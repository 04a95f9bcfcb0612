"""What real series do to a network kept on validation: it must not blow up on test.

Small demo datasets, each with one thing real series do: an extreme training outlier (one point 20
standard deviations out), a level break (the level of every series moves by three standard
deviations inside the validation span and stays there) or text that stops (no note after the
training and validation steps). The network is trained with the ``short-daily`` preset's settings
for a few epochs and must score on test within 5 % of the baseline best on validation, the one a
user choosing without the test split would run instead (statistical peers included).
"""

from __future__ import annotations

import numpy as np
import pytest

from fusioncast.config import ModelConfig, TrainingConfig
from fusioncast.demo import DEMO_CONTRACT as C
from fusioncast.demo import generate_demo_frame
from fusioncast.evaluate import MODEL, evaluate_model
from fusioncast.presets import preset
from fusioncast.split import TRAIN, VALIDATION, split_by_time
from fusioncast.state import prepare
from fusioncast.training import train_forecaster

pytestmark = pytest.mark.slow

SETTINGS = preset("short-daily")
CONFIG = ModelConfig(**{**SETTINGS["model"], "lookback": 28, "horizon": 7})
TRAINING = TrainingConfig(**{**SETTINGS["training"], "epochs": 6, "steps_per_epoch": 20})


def outlier(frame, labels):
    """One training value of the first series 20 of its standard deviations above its mean."""
    first = frame[C.series_id] == frame[C.series_id].iloc[0]
    training = first & (labels == TRAIN)
    values = frame.loc[training, C.target]
    row = values.index[len(values) // 2]
    frame.loc[row, C.target] = values.mean() + 20 * values.std()
    return frame


def level_break(frame, labels):
    """From the middle of the validation span on, every series is 3 standard deviations higher."""
    times = np.sort(frame.loc[labels == VALIDATION, C.timestamp].unique())
    after = frame[C.timestamp] >= times[len(times) // 2]
    spread = frame.groupby(C.series_id)[C.target].transform(
        lambda v: v[labels[v.index] == TRAIN].std()
    )
    frame.loc[after, C.target] += 3 * spread[after]
    return frame


def text_stops(frame, labels):
    """No note after the validation span (a text feed that stopped)."""
    frame.loc[labels > VALIDATION, C.text[0]] = None
    return frame


@pytest.mark.parametrize("change", [outlier, level_break, text_stops], ids=lambda f: f.__name__)
def test_a_network_kept_on_validation_stays_near_the_baseline_chosen_there(change):
    frame = generate_demo_frame(n_stores=1, n_categories=3, n_days=420, seed=7)
    frame = frame.sort_values([C.series_id, C.timestamp]).reset_index(drop=True)
    boundaries = split_by_time(frame, C, train_fraction=0.7, validation_fraction=0.1)
    frame = change(frame, boundaries.labels(frame[C.timestamp]))
    state, arrays = prepare(frame, C, boundaries, CONFIG)
    forecaster, _ = train_forecaster(state, arrays, TRAINING)
    evaluation = evaluate_model(forecaster, arrays, season=7, ablations=False)
    test_mse = evaluation.summary().set_index("model")["mse"]
    chosen = evaluation.best_baseline
    assert chosen is not None and np.isfinite(test_mse[MODEL])
    assert test_mse[MODEL] <= 1.05 * test_mse[chosen], (
        f"{change.__name__}: the network's test MSE {test_mse[MODEL]:.4f} is more than 5 % "
        f"above {chosen}'s {test_mse[chosen]:.4f}"
    )
