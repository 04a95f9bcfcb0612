import numpy as np
import pandas as pd
import pytest

from fusioncast.demo import DEMO_CONTRACT
from fusioncast.errors import ConfigError
from fusioncast.split import TEST, TRAIN, VALIDATION, SplitBoundaries, split_by_time


def test_split_is_chronological_and_shared_by_all_series(demo_frame):
    boundaries = split_by_time(
        demo_frame, DEMO_CONTRACT, train_fraction=0.7, validation_fraction=0.1
    )
    labels = boundaries.labels(demo_frame[DEMO_CONTRACT.timestamp])
    times = demo_frame[DEMO_CONTRACT.timestamp]
    assert times[labels == TRAIN].max() < times[labels == VALIDATION].min()
    assert times[labels == VALIDATION].max() < times[labels == TEST].min()
    # 240 distinct days: 168 train, 24 validation, 48 test in every series.
    assert set(map(tuple, (tuple(v.values()) for v in boundaries.per_series.values()))) == {
        (168, 24, 48)
    }


def test_split_round_trips_through_json(demo_frame):
    boundaries = split_by_time(demo_frame, DEMO_CONTRACT)
    again = SplitBoundaries.from_json(boundaries.to_json())
    assert again == boundaries
    np.testing.assert_array_equal(
        again.labels(demo_frame[DEMO_CONTRACT.timestamp]),
        boundaries.labels(demo_frame[DEMO_CONTRACT.timestamp]),
    )


@pytest.mark.parametrize("train,validation", [(0.0, 0.1), (0.9, 0.1), (0.5, 1.2)])
def test_split_rejects_fractions_that_leave_no_split(demo_frame, train, validation):
    with pytest.raises(ConfigError):
        split_by_time(
            demo_frame, DEMO_CONTRACT, train_fraction=train, validation_fraction=validation
        )


def test_labels_accept_plain_timestamps():
    boundaries = SplitBoundaries(pd.Timestamp("2024-01-10"), pd.Timestamp("2024-01-20"), {})
    labels = boundaries.labels(pd.to_datetime(["2024-01-10", "2024-01-11", "2024-01-21"]))
    assert labels.tolist() == [TRAIN, VALIDATION, TEST]
