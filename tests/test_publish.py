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


_SLOW_PUBLISH = """
import sys
import numpy as np
import pandas as pd
from fusioncast.contract import ForecastColumn as F
from fusioncast.publish import publish_forecasts

n = 3_000_000
frame = pd.DataFrame({
    F.SERIES_ID: np.char.add("series-", np.arange(n).astype(str)).astype(object),
    F.FORECAST_ORIGIN: pd.Timestamp("2026-11-25"),
    F.TARGET_TIMESTAMP: pd.Timestamp("2026-11-26"),
    F.HORIZON_STEP: 1,
    F.FORECAST: np.random.default_rng(0).normal(size=n),
    F.EXPLANATION: np.char.add("[note ", np.arange(n).astype(str)).astype(object),
    F.MODEL_VERSION: "v2",
    F.RUN_ID: "killed",
    F.CREATED_AT: pd.Timestamp("2026-11-26 06:00", tz="UTC"),
})
print("ready", flush=True)
publish_forecasts(frame, sys.argv[1], run_id="killed")
print("published", flush=True)
"""


def test_a_publish_killed_part_way_leaves_no_partial_partition(tmp_path):
    """A real process is SIGKILLed while it writes; readers still see exactly the old forecasts."""
    import signal
    import subprocess
    import sys
    import time

    earlier = publish_forecasts(_forecasts("run-a"), tmp_path, run_id="run-a")
    before = read_forecasts(tmp_path)
    script = tmp_path.parent / "slow_publish.py"
    script.write_text(_SLOW_PUBLISH)
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        staging = tmp_path / ".staging"
        while not any(p.stat().st_size > 0 for p in staging.glob("*.tmp")):
            assert process.poll() is None, "publish finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL
    assert "published" not in process.stdout.read()
    # The temporary file is there (killed part-way) but invisible; no new partition exists.
    assert list((tmp_path / ".staging").glob("*.tmp"))
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "forecast_date=2026-11-25"
    ]
    pd.testing.assert_frame_equal(read_forecasts(tmp_path), before)
    assert pq.read_table(earlier).num_rows == 6


def test_readme_ways_of_reading_the_latest_forecasts(tmp_path):
    """pandas, pyarrow and DuckDB, as the README shows them, give the latest run's rows."""
    import duckdb
    import pyarrow.dataset as ds

    publish_forecasts(_forecasts("run-a", 1.0), tmp_path, run_id="run-a")
    later = _forecasts("run-b", 2.0).assign(
        **{F.CREATED_AT: pd.Timestamp("2026-11-26 06:00", tz="UTC")}
    )
    publish_forecasts(later, tmp_path, run_id="run-b")

    everything = pd.read_parquet(tmp_path)
    latest = everything[everything["created_at"] == everything["created_at"].max()]
    assert set(latest[F.RUN_ID]) == {"run-b"} and len(latest) == 6

    dataset = ds.dataset(tmp_path, format="parquet", partitioning="hive")
    newest_date = max(dataset.to_table(columns=["forecast_date"]).column(0).to_pylist())
    table = dataset.to_table(filter=ds.field("forecast_date") == newest_date)
    assert set(table.column(F.RUN_ID).to_pylist()) == {"run-b"}

    query = f"""
        SELECT * FROM read_parquet('{tmp_path}/*/*.parquet', hive_partitioning = true)
        WHERE created_at = (SELECT max(created_at)
                            FROM read_parquet('{tmp_path}/*/*.parquet', hive_partitioning = true))
    """
    rows = duckdb.sql(query).df()
    assert set(rows[F.RUN_ID]) == {"run-b"} and len(rows) == 6
