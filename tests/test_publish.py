import pandas as pd
import pyarrow.parquet as pq
import pytest

from fusioncast.contract import ForecastColumn as F
from fusioncast.errors import ConfigError
from fusioncast.publish import publish_forecasts, read_forecasts


def _forecasts(
    run_id: str, value: float = 1.0, n_series: int = 2, horizon: int = 3
) -> pd.DataFrame:
    created = pd.Timestamp("2026-11-25 06:00", tz="UTC")
    rows = [
        {
            F.SERIES_ID: f"s{s}",
            F.FORECAST_ORIGIN: pd.Timestamp("2026-11-24"),
            F.TARGET_TIMESTAMP: pd.Timestamp("2026-11-24") + pd.Timedelta(days=h),
            F.HORIZON_STEP: h,
            F.FORECAST: value,
            F.MODEL_VERSION: "v1",
            F.RUN_ID: run_id,
            F.CREATED_AT: created,
        }
        for s in range(n_series)
        for h in range(1, horizon + 1)
    ]
    return pd.DataFrame(rows)


def test_publish_writes_one_file_per_run_under_its_forecast_date(tmp_path):
    path = publish_forecasts(_forecasts("run-a"), tmp_path, run_id="run-a")
    assert path == tmp_path / "forecast_date=2026-11-25" / "run-run-a.parquet"
    table = pd.read_parquet(path)
    assert len(table) == 6 and table[F.RUN_ID].unique().tolist() == ["run-a"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_publishing_the_same_run_again_replaces_its_rows(tmp_path):
    publish_forecasts(_forecasts("run-a", 1.0), tmp_path, run_id="run-a")
    publish_forecasts(_forecasts("run-b", 2.0), tmp_path, run_id="run-b")
    publish_forecasts(_forecasts("run-a", 3.0), tmp_path, run_id="run-a")
    everything = read_forecasts(tmp_path)
    assert len(everything) == 12
    assert everything.groupby(F.RUN_ID)[F.FORECAST].unique().to_dict() == {
        "run-a": [3.0],
        "run-b": [2.0],
    }


def test_readers_skip_a_half_written_temporary_file(tmp_path):
    path = publish_forecasts(_forecasts("run-a"), tmp_path, run_id="run-a")
    (path.parent / ".run-run-b.parquet.0123.tmp").write_bytes(b"PAR1 half written")
    assert len(read_forecasts(tmp_path)) == 6


def test_a_failed_write_leaves_earlier_forecasts_untouched(tmp_path):
    path = publish_forecasts(_forecasts("run-a"), tmp_path, run_id="run-a")
    before = path.read_bytes()
    broken = _forecasts("run-a").assign(**{F.FORECAST: [object()] * 6})  # not serialisable
    with pytest.raises((TypeError, ValueError, ArithmeticError, OSError)):
        publish_forecasts(broken, tmp_path, run_id="run-a")
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert pq.read_table(path).num_rows == 6


@pytest.mark.parametrize("run_id", ["../escape", "a/b", ""])
def test_run_ids_cannot_escape_the_dataset(tmp_path, run_id):
    with pytest.raises(ConfigError):
        publish_forecasts(_forecasts("x"), tmp_path, run_id=run_id)


def test_empty_forecasts_are_refused(tmp_path):
    with pytest.raises(ConfigError):
        publish_forecasts(_forecasts("x").iloc[:0], tmp_path, run_id="x")
