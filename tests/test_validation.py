"""Unit tests of fusioncast.validation: one small generated frame per rule."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fusioncast.contract import DataContract
from fusioncast.errors import DataValidationError
from fusioncast.validation import ValidationReport, infer_frequency, validate_frame

CONTRACT = DataContract(numeric=("price",), static_categorical=("region",), text=("note",))


def make_frame(n_series: int = 3, length: int = 6, freq: str = "D") -> pd.DataFrame:
    """A valid long frame, sorted by (series_id, timestamp)."""
    stamps = pd.date_range("2024-01-01", periods=length, freq=freq)
    rng = np.random.default_rng(0)
    n = n_series * length
    return pd.DataFrame(
        {
            "series_id": np.repeat([f"s{i}" for i in range(n_series)], length),
            "timestamp": np.tile(stamps, n_series),
            "target": rng.normal(size=n),
            "price": rng.normal(size=n),
            "region": np.repeat([f"r{i % 2}" for i in range(n_series)], length),
            "note": [None if i % 3 else f"note {i}" for i in range(n)],
        }
    )


def raises(frame: pd.DataFrame, contract: DataContract = CONTRACT, **kwargs) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        validate_frame(frame, contract, **kwargs)
    return info.value


def test_valid_frame_passes_sorted_and_normalised():
    frame = make_frame()
    out, report = validate_frame(frame, CONTRACT)
    assert report.success and isinstance(report, ValidationReport)
    assert (report.n_rows, report.n_series, report.freq) == (18, 3, "D")
    assert out.index.equals(pd.RangeIndex(18))
    assert out["timestamp"].dtype == "datetime64[ns]"
    assert out["target"].dtype == "float64"
    assert pd.api.types.is_string_dtype(out["series_id"])
    assert pd.api.types.is_string_dtype(out["note"])
    assert out[["series_id", "timestamp"]].equals(
        out.sort_values(["series_id", "timestamp"]).reset_index(drop=True)[
            ["series_id", "timestamp"]
        ]
    )
    rules = {r.rule for r in report.results}
    assert {"expect_compound_columns_to_be_unique", "expect_column_values_to_be_between"} <= rules
    assert report.report_path is None


def test_reversed_and_shuffled_rows_are_sorted():
    frame = make_frame()
    shuffled = frame.iloc[::-1].sample(frac=1.0, random_state=1)
    out, _ = validate_frame(shuffled, CONTRACT)
    expected = frame.copy()
    pd.testing.assert_series_equal(out["target"], expected["target"])
    assert list(out["series_id"]) == list(expected["series_id"])


def test_string_timestamps_and_numeric_strings_are_normalised():
    frame = make_frame()
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%d")
    frame["price"] = frame["price"].astype(str).astype(object)
    out, report = validate_frame(frame, CONTRACT)
    assert report.success and out["price"].dtype == "float64"
    assert out["timestamp"].dtype == "datetime64[ns]"


@pytest.mark.parametrize(
    "change",
    [
        lambda f: f.assign(timestamp=f["timestamp"].dt.tz_localize("Europe/Paris")),
        lambda f: f.assign(series_id=f["series_id"].str[1:].astype(int)),
        lambda f: f.assign(note=f["note"].astype("category")),
        lambda f: f.assign(note=np.nan),
    ],
    ids=["tz_aware", "int_series_id", "categorical_text", "all_null_text"],
)
def test_accepted_variants_are_normalised(change):
    out, report = validate_frame(change(make_frame()), CONTRACT)
    assert report.success and report.freq == "D"
    assert out["timestamp"].dtype == "datetime64[ns]" and out["timestamp"].iloc[0].hour == 0
    assert isinstance(out["series_id"].dtype, pd.StringDtype)
    assert isinstance(out["note"].dtype, pd.StringDtype)


def test_single_series_contract():
    contract = DataContract(series_id=None)
    frame = make_frame(n_series=1).drop(columns=["series_id", "price", "region", "note"])
    out, report = validate_frame(frame.iloc[::-1], contract)
    assert report.n_series == 1 and out["timestamp"].is_monotonic_increasing
    frame.loc[1, "timestamp"] = frame.loc[0, "timestamp"]
    error = raises(frame, contract)
    assert (error.rule, error.column) == ("expect_column_values_to_be_unique", "timestamp")


def test_empty_dataset():
    error = raises(make_frame().iloc[:0])
    assert error.rule == "non_empty" and error.column == "*"


def test_missing_columns():
    error = raises(make_frame().drop(columns=["price", "note"]))
    assert (error.rule, error.column, error.count) == ("columns_present", "price, note", 2)


def test_duplicate_column_names():
    frame = make_frame()
    columns = [*frame.columns, "target"]
    values = np.column_stack([frame.to_numpy(dtype=object), frame["target"].to_numpy()])
    error = raises(pd.DataFrame(values, columns=columns))
    assert (error.rule, error.column) == ("unique_column_names", "target")


def test_nan_target():
    frame = make_frame()
    frame.loc[4, "target"] = np.nan
    error = raises(frame)
    assert (error.rule, error.column, error.count) == (
        "expect_column_values_to_not_be_null",
        "target",
        1,
    )


def test_inf_target():
    frame = make_frame()
    frame.loc[2, "target"] = np.inf
    error = raises(frame)
    assert (error.rule, error.column) == ("expect_column_values_to_be_between", "target")
    assert error.count == 1 and error.example == "inf"


def test_inf_in_numeric_covariate():
    frame = make_frame()
    frame.loc[[3, 7], "price"] = -np.inf
    error = raises(frame)
    assert (error.rule, error.column, error.count) == (
        "expect_column_values_to_be_between",
        "price",
        2,
    )


def test_duplicate_series_timestamp():
    frame = make_frame()
    frame = pd.concat([frame, frame.iloc[[5]]], ignore_index=True)
    error = raises(frame)
    assert error.rule == "expect_compound_columns_to_be_unique"
    assert error.column == "series_id, timestamp"
    assert error.count == 2 and "s0" in error.example


def test_mixed_number_and_string_column():
    frame = make_frame()
    frame["price"] = frame["price"].astype(object)
    frame.loc[5, "price"] = "n/a"
    error = raises(frame)
    assert (error.rule, error.column, error.count) == ("numeric_type", "price", 1)
    assert "n/a" in str(error)


def test_unparsable_timestamp():
    frame = make_frame()
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%d").astype(object)
    frame.loc[3, "timestamp"] = "not a date"
    error = raises(frame)
    assert (error.rule, error.column, error.count) == ("timestamp_parses", "timestamp", 1)
    assert error.example == "not a date"


def test_short_series():
    frame = make_frame(n_series=3, length=6)
    frame = frame[~((frame["series_id"] == "s1") & (frame.index % 6 >= 2))]
    error = raises(frame, min_length=3)
    assert (error.rule, error.column, error.count) == ("series_min_length", "series_id", 1)
    assert error.example == "s1"


def test_text_column_with_non_strings():
    frame = make_frame()
    frame["note"] = frame["note"].astype(object)  # pandas 3 infers str dtype, which refuses 42
    frame.loc[4, "note"] = 42
    error = raises(frame)
    assert (error.rule, error.column, error.count) == ("text_type", "note", 1)
    assert error.example == "42"


@pytest.mark.parametrize(("freq", "expected"), [("D", "D"), ("W-MON", "W-MON")])
def test_infer_frequency(freq, expected):
    frame = make_frame(freq=freq).sample(frac=1.0, random_state=2)
    assert infer_frequency(frame, CONTRACT) == expected
    declared = CONTRACT.model_copy(update={"freq": "h"})
    assert infer_frequency(frame, declared) == "h"


def test_infer_frequency_fails_on_irregular_steps():
    frame = make_frame(n_series=1, length=3)
    frame["timestamp"] = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-05"])
    with pytest.raises(DataValidationError) as info:
        infer_frequency(frame, CONTRACT)
    assert (info.value.rule, info.value.column) == ("regular_frequency", "timestamp")


def test_report_json_written(tmp_path):
    _, report = validate_frame(make_frame(), CONTRACT, report_dir=tmp_path)
    assert report.report_path == str(tmp_path / "validation.json")
    assert json.loads((tmp_path / "validation.json").read_text())["success"] is True
    rows = report.table_rows()
    assert rows and set(rows[0]) == {"rule", "column", "failing_count", "example", "status"}
    assert {row["status"] for row in rows} == {"passed"}

    frame = make_frame()
    frame.loc[[1, 2], "target"] = np.nan
    frame.loc[3, "price"] = np.inf
    error = raises(frame, report_dir=tmp_path)
    assert (error.rule, error.column) == ("expect_column_values_to_not_be_null", "target")
    assert "1 other rule(s) failed" in str(error)
    payload = json.loads((tmp_path / "validation.json").read_text())
    assert payload["version"] == 1 and payload["success"] is False
    failed = [r for r in payload["results"] if not r["success"]]
    assert [(r["rule"], r["column"], r["failing_count"]) for r in failed] == [
        ("expect_column_values_to_not_be_null", "target", 2),
        ("expect_column_values_to_be_between", "price", 1),
    ]
