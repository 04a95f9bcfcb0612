"""Reference forecasts beside a dataset: what is read, what is refused, how origins are held."""

from __future__ import annotations

import pandas as pd
import pytest

from fusioncast.errors import DataValidationError
from fusioncast.references import held_origins, read_reference_forecasts, reference_dir


def _forecasts(name: str, origins: int = 2) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "series_id": "a",
            "forecast_origin": pd.date_range("2024-03-01", periods=origins, freq="D"),
            "horizon_step": 1,
            "forecast": 1.5,
            "reference": name,
        }
    )


def test_every_parquet_file_in_the_reference_folder_is_read(tmp_path):
    data = tmp_path / "data"
    assert read_reference_forecasts(data) is None  # no folder
    folder = reference_dir(data)
    folder.mkdir(parents=True)
    assert read_reference_forecasts(data) is None  # an empty one
    _forecasts("one").to_parquet(folder / "b.parquet")
    _forecasts("two", 3).to_parquet(folder / "a.parquet")
    # what writers leave behind, and notes, are not references
    _forecasts("left over").to_parquet(folder / ".b.parquet.1f2e.tmp")
    _forecasts("hidden").to_parquet(folder / "_metadata.parquet")
    (folder / "README.txt").write_text("how these were made")
    references = read_reference_forecasts(data)
    assert list(references["reference"]) == ["two"] * 3 + ["one"] * 2


@pytest.mark.parametrize(
    ("broken", "column", "count"),
    [
        (lambda f: f.drop(columns=["forecast", "reference"]), "forecast, reference", 2),
        (lambda f: f.assign(forecast="1.5"), "forecast", 2),
        (lambda f: f.assign(forecast_origin="2024-03-01"), "forecast_origin", 2),
        (lambda f: f.assign(horizon_step=1.0), "horizon_step", 2),
        (
            lambda f: f.assign(forecast_origin=pd.Timestamp("2024-03-01")),
            "reference, series_id, forecast_origin, horizon_step",
            2,
        ),
    ],
)
def test_a_broken_reference_file_is_refused_naming_its_column(tmp_path, broken, column, count):
    folder = reference_dir(tmp_path / "data")
    folder.mkdir(parents=True)
    broken(_forecasts("one")).to_parquet(folder / "one.parquet")
    with pytest.raises(DataValidationError, match="reference_forecasts") as caught:
        read_reference_forecasts(tmp_path / "data")
    assert (caught.value.column, caught.value.count) == (column, count)


def test_a_reference_file_that_is_not_parquet_is_refused(tmp_path):
    folder = reference_dir(tmp_path / "data.parquet")
    folder.mkdir(parents=True)
    (folder / "limit.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataValidationError, match="reference_forecasts.*limit.parquet"):
        read_reference_forecasts(tmp_path / "data.parquet")


def test_reference_origins_are_held_like_the_input_timestamps():
    wall = pd.Series(pd.to_datetime(["2024-03-30 23:00", "2024-03-31 23:00"]))
    assert held_origins(wall, None, "D").equals(wall)  # tz-naive input: wall-clock time
    in_paris = wall.dt.tz_localize("Europe/Paris")
    assert held_origins(in_paris, None, "D").equals(wall)
    # daily input in a zone is held as wall-clock time there, hourly input as UTC
    assert held_origins(in_paris, "Europe/Paris", "D").equals(wall)
    assert held_origins(in_paris.dt.tz_convert("UTC"), "Europe/Paris", "D").equals(wall)
    utc = pd.Series(pd.to_datetime(["2024-03-30 22:00", "2024-03-31 21:00"]))
    assert held_origins(wall, "Europe/Paris", "h").equals(utc)  # across the change to summer time
    assert held_origins(in_paris, "Europe/Paris", "h").equals(utc)
