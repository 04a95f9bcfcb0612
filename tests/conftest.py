"""Shared fixtures: tiny demo data, a small model configuration, one Prefect test server."""

from __future__ import annotations

import os
import tempfile

# Before Prefect or TensorFlow are imported anywhere in the test session.
_PREFECT_HOME = tempfile.mkdtemp(prefix="fusioncast-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from tiny_pipeline import TINY_MODEL_SETTINGS  # noqa: E402

from fusioncast.config import ModelConfig, TrainingConfig  # noqa: E402
from fusioncast.demo import DEMO_CONTRACT, generate_demo_frame  # noqa: E402


@pytest.fixture(scope="session")
def demo_frame() -> pd.DataFrame:
    """2 stores x 2 categories x 240 days of demo data, sorted by series and date."""
    frame = generate_demo_frame(n_stores=2, n_categories=2, n_days=240, seed=3)
    return frame.sort_values([DEMO_CONTRACT.series_id, DEMO_CONTRACT.timestamp]).reset_index(
        drop=True
    )


@pytest.fixture
def small_model_config() -> ModelConfig:
    return ModelConfig(
        lookback=21,
        horizon=5,
        numeric_units=8,
        text_units=8,
        text_embedding_dim=8,
        hidden_units=16,
        max_text_tokens=24,
        min_token_count=1,
    )


@pytest.fixture(scope="session")
def tiny_model_settings() -> dict[str, int]:
    """The smallest model settings a flow run takes (as JSON parameters): seconds to train."""
    return dict(TINY_MODEL_SETTINGS)


@pytest.fixture
def fast_training() -> TrainingConfig:
    return TrainingConfig(epochs=2, batch_size=64, patience=2, steps_per_epoch=4)


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect server (SQLite under a temporary PREFECT_HOME) for the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


def pytest_terminal_summary(terminalreporter):
    """Print where tests left files for a person to look at (``record_property("screenshots",
    folder)``, e.g. the Prefect UI screenshots of tests/test_ui.py), even under ``-q``."""
    shown = set()
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, value in getattr(report, "user_properties", ()):
                if name == "screenshots" and value not in shown:
                    shown.add(value)
                    terminalreporter.write_line(f"screenshots for a person to look at: {value}")
