"""Unit tests of fusioncast.validation: one small generated frame per rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusioncast.contract import DataContract
from fusioncast.errors import DataValidationError
from fusioncast.validation import (
    QUARANTINE_COLUMN,
    QUARANTINE_RULE,
    ValidationConfig,
    ValidationReport,
    infer_frequency,
    read_dataset,
    validate_dataset,
    validate_frame,
)

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
    assert {"unique_series_timestamp", "finite", "not_in_future", "frequency_gaps"} <= rules
    expectations = {r.rule: r.expectation for r in report.results}
    assert expectations["unique_series_timestamp"] == "expect_column_values_to_be_between"
    assert {r.action for r in report.results} == {"passed"} and not report.warnings
    assert report.report_path is None and report.data_docs_path is None
    assert report.n_rows_valid == 18 and report.n_quarantined == 0


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
    # series ids and categoricals: each distinct value held once, as sorted str categories
    series = out["series_id"]
    assert isinstance(series.dtype, pd.CategoricalDtype)
    assert isinstance(series.cat.categories.dtype, pd.StringDtype)
    assert series.cat.categories.is_monotonic_increasing
    assert list(series.unique()) in (["s0", "s1", "s2"], ["0", "1", "2"])
    assert isinstance(out["region"].dtype, pd.CategoricalDtype)
    # text as str; a categorical of text (as Parquet dictionaries are read) stays one
    note = out["note"]
    if isinstance(note.dtype, pd.CategoricalDtype):
        assert isinstance(note.cat.categories.dtype, pd.StringDtype)
    else:
        assert isinstance(note.dtype, pd.StringDtype)


def test_single_series_contract():
    contract = DataContract(series_id=None)
    frame = make_frame(n_series=1).drop(columns=["series_id", "price", "region", "note"])
    out, report = validate_frame(frame.iloc[::-1], contract)
    assert report.n_series == 1 and out["timestamp"].is_monotonic_increasing
    frame.loc[1, "timestamp"] = frame.loc[0, "timestamp"]
    error = raises(frame, contract)
    assert (error.rule, error.column) == ("unique_series_timestamp", "timestamp")


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
    assert (error.rule, error.column, error.count) == ("not_null", "target", 1)
    assert error.example == "series_id=s0, timestamp=2024-01-05"


def test_inf_target():
    frame = make_frame()
    frame.loc[2, "target"] = np.inf
    error = raises(frame)
    assert (error.rule, error.column) == ("finite", "target")
    assert error.count == 1 and error.example == "inf at series_id=s0, timestamp=2024-01-03"


def test_inf_in_numeric_covariate():
    frame = make_frame()
    frame.loc[[3, 7], "price"] = -np.inf
    error = raises(frame)
    assert (error.rule, error.column, error.count) == ("finite", "price", 2)


def test_duplicate_series_timestamp():
    frame = make_frame()
    frame = pd.concat([frame, frame.iloc[[5]]], ignore_index=True)
    error = raises(frame)
    assert error.rule == "unique_series_timestamp"
    assert error.column == "series_id, timestamp"
    assert error.count == 2 and error.example == "series_id=s0, timestamp=2024-01-06"


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


def test_short_series_are_excluded_with_a_warning_and_fail_when_none_remain():
    frame = make_frame(n_series=3, length=6)
    frame = frame[~((frame["series_id"] == "s1") & (frame.index % 6 >= 2))]
    out, report = validate_frame(frame, CONTRACT, min_length=3)
    assert sorted(out["series_id"].unique()) == ["s0", "s2"] and len(out) == 12
    assert report.success and report.excluded_series == {"s1": 2}
    (warning,) = report.warnings
    assert (warning.rule, warning.column, warning.failing_count, warning.action) == (
        "series_min_length",
        "series_id",
        1,
        "excluded",
    )
    assert warning.example == "s1 (2 steps)"
    error = raises(frame, min_length=7)
    assert (error.rule, error.column, error.count) == ("series_min_length", "series_id", 3)
    assert "no series has the 7 steps needed" in str(error)


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
    assert (error.rule, error.column) == ("not_null", "target")
    assert "1 other rule(s) failed" in str(error)
    payload = json.loads((tmp_path / "validation.json").read_text())
    assert payload["version"] == 3 and payload["success"] is False
    failed = [r for r in payload["results"] if not r["success"]]
    assert [(r["rule"], r["column"], r["failing_count"]) for r in failed] == [
        ("not_null", "target", 2),
        ("finite", "price", 1),
    ]


# -- configuration-driven rules ----------------------------------------------------------------

NOW = pd.Timestamp("2024-06-01")
QUARANTINE = ValidationConfig(policy="quarantine", now=NOW)


def test_config_defaults_and_bounds():
    config = ValidationConfig()
    assert (config.policy, config.max_missing_target_share, config.max_gap_share) == ("fail", 0, 0)
    assert (config.max_text_chars, config.max_categorical_cardinality) == (2000, 10_000)
    assert not config.allow_future_timestamps and config.data_docs
    for bad in ({"policy": "ignore"}, {"max_gap_share": 1.5}, {"max_text_chars": 0}):
        with pytest.raises(ValueError):
            ValidationConfig(**bad)
    with pytest.raises(ValueError, match="unknown time zone"):
        ValidationConfig(timezone="Mars/Olympus")
    schema = ValidationConfig.model_json_schema()["properties"]
    assert all(field.get("description") for field in schema.values())
    paris = ValidationConfig(
        now=pd.Timestamp("2024-06-01 12:00", tz="UTC"), timezone="Europe/Paris"
    )
    assert paris.current_time() == pd.Timestamp("2024-06-01 14:00")


def test_future_timestamps():
    frame = make_frame()  # 2024-01-01 .. 2024-01-06
    error = raises(frame, config=ValidationConfig(now=pd.Timestamp("2024-01-04 12:00")))
    assert (error.rule, error.column, error.count) == ("not_in_future", "timestamp", 6)
    assert error.example == "2024-01-05 at series_id=s0"
    allowed = ValidationConfig(now=pd.Timestamp("2024-01-04"), allow_future_timestamps=True)
    assert validate_frame(frame, CONTRACT, config=allowed)[1].success


def test_missing_targets_within_the_tolerated_share_are_filled():
    frame = make_frame()
    frame.loc[[0, 8], "target"] = np.nan  # first step of s0, a middle step of s1
    config = ValidationConfig(max_missing_target_share=0.2)
    out, report = validate_frame(frame, CONTRACT, config=config)
    assert out["target"].notna().all()
    assert out.loc[0, "target"] == frame.loc[1, "target"]  # next value at the start
    assert out.loc[8, "target"] == frame.loc[7, "target"]  # else the previous one
    (warning,) = report.warnings
    assert (warning.rule, warning.column, warning.failing_count, warning.action) == (
        "not_null",
        "target",
        2,
        "filled",
    )
    error = raises(frame, config=ValidationConfig(max_missing_target_share=0.1))
    assert (error.rule, error.column, error.count) == ("not_null", "target", 2)


def test_gaps_are_counted_and_tolerated_up_to_a_share():
    frame = make_frame(n_series=2, length=10).drop(index=[3, 4])  # s0 misses 2 of 10 steps
    error = raises(frame)
    assert (error.rule, error.column, error.count) == ("frequency_gaps", "timestamp", 2)
    assert error.example == "series s0: 2 of 10 steps missing (first after 2024-01-03)"
    out, report = validate_frame(frame, CONTRACT, config=ValidationConfig(max_gap_share=0.2))
    assert len(out) == 18
    (warning,) = report.warnings
    assert (warning.rule, warning.failing_count, warning.action) == (
        "frequency_gaps",
        2,
        "tolerated",
    )


def test_steps_off_the_declared_frequency():
    frame = make_frame()
    frame["timestamp"] = frame["timestamp"].astype("datetime64[ns]")
    frame.loc[2, "timestamp"] = pd.Timestamp("2024-01-03 12:00")
    error = raises(frame, DataContract(**{**CONTRACT.model_dump(), "freq": "D"}))
    assert (error.rule, error.column, error.count) == ("on_frequency", "timestamp", 1)
    assert "2024-01-03 12:00:00 in series s0 is not on the 'D' grid" in error.example


def test_calendar_frequency_gaps():
    frame = make_frame(n_series=2, length=8, freq="MS").drop(index=[5])
    error = raises(frame)
    assert (error.rule, error.count) == ("frequency_gaps", 1)
    assert "first after 2024-05-01" in error.example


def test_categorical_cardinality_bound():
    frame = make_frame(n_series=4)
    frame["region"] = frame["series_id"]
    error = raises(frame, config=ValidationConfig(max_categorical_cardinality=3))
    assert (error.rule, error.column, error.count) == ("categorical_cardinality", "region", 4)


def test_a_static_categorical_that_changes_within_a_series(tmp_path):
    frame = make_frame()  # region is static: r0, r1, r0 for s0, s1, s2
    frame.loc[[9, 10], "region"] = "r0"  # s1 moved to another region for two steps
    error = raises(frame)
    assert (error.rule, error.column, error.count) == ("static_per_series", "region", 2)
    assert error.example == "series s1: region takes 2 values (r1, r0)"
    out, report = validate_frame(frame, CONTRACT, config=QUARANTINE, report_dir=tmp_path)
    assert sorted(out["series_id"].unique()) == ["s0", "s2"]
    (warning,) = report.warnings
    assert (warning.rule, warning.column, warning.failing_count, warning.action) == (
        "static_per_series",
        "region",
        2,
        "quarantined",
    )
    quarantined = pd.read_parquet(report.quarantine_path)
    assert (quarantined["series_id"] == "s1").all() and len(quarantined) == 6
    assert set(quarantined[QUARANTINE_RULE]) == {"static_per_series"}
    # a dynamic categorical may change from step to step
    dynamic = DataContract(
        **{**CONTRACT.model_dump(), "static_categorical": (), "dynamic_categorical": ("region",)}
    )
    assert validate_frame(frame, dynamic)[1].success


def test_categorical_mixing_numbers_and_strings():
    frame = make_frame()
    frame["region"] = frame["region"].astype(object)
    frame.loc[[2, 3], "region"] = 7
    error = raises(frame)
    assert (error.rule, error.column, error.count) == ("categorical_type", "region", 2)
    assert error.example == "7"


@pytest.mark.parametrize("dtype", ["str", "string", object])
def test_long_text_is_truncated_and_counted(dtype):
    frame = make_frame()
    frame.loc[3, "note"] = "x" * 50
    frame["note"] = frame["note"].astype(dtype)
    out, report = validate_frame(frame, CONTRACT, config=ValidationConfig(max_text_chars=10))
    assert out["note"].str.len().max() == 10 and out.loc[3, "note"] == "x" * 10
    (warning,) = report.warnings
    assert (warning.rule, warning.column, warning.failing_count, warning.action) == (
        "text_max_length",
        "note",
        1,
        "truncated",
    )


def test_binary_text_is_decoded_and_invalid_utf8_is_rejected():
    frame = make_frame()
    frame["note"] = [None if pd.isna(v) else v.encode() for v in frame["note"]]
    frame.loc[3, "note"] = "café".encode()
    out, report = validate_frame(frame, CONTRACT)
    assert report.success and out.loc[3, "note"] == "café"
    assert isinstance(out["note"].dtype, pd.StringDtype)
    frame.loc[[4, 5], "note"] = b"\xff\xfe broken"
    error = raises(frame)
    assert (error.rule, error.column, error.count) == ("text_utf8", "note", 2)
    assert "xff" in error.example


def test_quarantine_sets_rows_aside_with_their_rule(tmp_path):
    frame = make_frame(n_series=4, length=6)
    frame.loc[2, "price"] = np.inf
    frame.loc[[7, 8], "note"] = None
    frame = pd.concat([frame, frame.iloc[[13]]], ignore_index=True)  # s2: a step twice
    config = QUARANTINE.model_copy(update={"max_gap_share": 0.2})  # the rows taken out leave gaps
    out, report = validate_frame(frame, CONTRACT, config=config, report_dir=tmp_path)
    assert report.success and report.policy == "quarantine"
    assert report.n_quarantined == 3 and report.n_rows_valid == len(out) == 22
    assert report.quarantine_path == str(tmp_path / "quarantine.parquet")
    quarantined = pd.read_parquet(report.quarantine_path)
    assert quarantined[QUARANTINE_RULE].tolist() == ["finite", *["unique_series_timestamp"] * 2]
    assert quarantined[QUARANTINE_COLUMN].tolist() == ["price", *["series_id, timestamp"] * 2]
    assert quarantined["price"].iloc[0] == np.inf and quarantined["series_id"].tolist()[1:] == [
        "s2",
        "s2",
    ]
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
    actions = {(r.rule, r.column): (r.failing_count, r.action) for r in report.warnings}
    assert actions == {
        ("finite", "price"): (1, "quarantined"),
        ("unique_series_timestamp", "series_id, timestamp"): (2, "quarantined"),
        ("frequency_gaps", "timestamp"): (2, "tolerated"),
    }
    payload = json.loads((tmp_path / "validation.json").read_text())
    assert payload["n_quarantined"] == 3 and payload["quarantine_path"] == report.quarantine_path


def test_quarantine_keeps_rows_that_did_not_parse_as_they_came(tmp_path):
    frame = make_frame()
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%d").astype(object)
    frame["note"] = [None if pd.isna(v) else v.encode() for v in frame["note"]]
    frame.loc[0, "timestamp"] = "not a date"  # first step of s0: no gap left behind
    frame.loc[17, "note"] = b"\xff"  # last step of s2
    out, report = validate_frame(frame, CONTRACT, config=QUARANTINE, report_dir=tmp_path)
    assert len(out) == 16 and report.n_quarantined == 2
    quarantined = pd.read_parquet(report.quarantine_path)
    assert quarantined[QUARANTINE_RULE].tolist() == ["timestamp_parses", "text_utf8"]
    assert quarantined["timestamp"].iloc[0] == "not a date"
    assert quarantined["note"].iloc[1] == b"\xff"


def test_quarantine_takes_whole_series_whose_gaps_are_not_tolerated(tmp_path):
    frame = make_frame(n_series=4, length=6)
    frame.loc[2, "target"] = np.nan  # s0 loses a middle step: a gap
    out, report = validate_frame(frame, CONTRACT, config=QUARANTINE, report_dir=tmp_path)
    assert sorted(out["series_id"].unique()) == ["s1", "s2", "s3"]
    quarantined = pd.read_parquet(report.quarantine_path)
    assert quarantined["series_id"].unique().tolist() == ["s0"]
    assert quarantined.groupby(QUARANTINE_RULE).size().to_dict() == {
        "not_null": 1,
        "frequency_gaps": 5,
    }


def test_quarantine_of_every_series_stops_with_the_rule_even_when_one_is_short():
    # every series off the grid, one of them also too short: nothing is left to exclude from
    frame = make_frame(n_series=2, length=6)
    frame = frame[~((frame["series_id"] == "s1") & (frame.index % 6 >= 3))].reset_index(drop=True)
    frame.loc[[2, 7], "timestamp"] += pd.Timedelta(hours=3)
    config = QUARANTINE.model_copy(update={"max_quarantine_share": 1.0})
    declared = DataContract(**{**CONTRACT.model_dump(), "freq": "D"})
    error = raises(frame, declared, config=config, min_length=4)
    assert (error.rule, error.column, error.count) == ("on_frequency", "timestamp", 2)
    assert "quarantine would leave no rows" in str(error)


def test_quarantine_still_stops_on_table_rules_and_on_too_many_bad_rows(tmp_path):
    frame = make_frame()
    frame["price"] = frame["price"].astype(object)
    frame.loc[1, "price"] = "n/a"
    error = raises(frame, config=QUARANTINE)
    assert (error.rule, error.column) == ("numeric_type", "price")
    frame = make_frame()
    frame.loc[[2, 8], "target"] = np.nan  # the gaps they leave take two series of three
    error = raises(frame, config=QUARANTINE, report_dir=tmp_path)
    assert (error.rule, error.column) == ("not_null", "target")
    assert "more than max_quarantine_share=0.5; nothing was quarantined" in str(error)
    assert not (tmp_path / "quarantine.parquet").exists()


def test_data_docs_are_written_to_the_report_dir(tmp_path):
    frame = make_frame()
    frame.loc[2, "target"] = np.inf
    raises(frame, report_dir=tmp_path)
    index = tmp_path / "data_docs" / "index.html"
    assert index.is_file()
    pages = list((tmp_path / "data_docs" / "validations").rglob("*.html"))
    assert len(pages) == 1 and "fusioncast_rows" in str(pages[0])  # the series suite never ran
    payload = json.loads((tmp_path / "validation.json").read_text())
    assert payload["data_docs_path"] == str(index)
    _, report = validate_frame(make_frame(), CONTRACT, report_dir=tmp_path / "ok")
    pages = list((tmp_path / "ok" / "data_docs" / "validations").rglob("*.html"))
    suites = {p.parent.parent.parent.name for p in pages}
    assert suites == {"fusioncast_rows", "fusioncast_keys", "fusioncast_series"}
    off = ValidationConfig(data_docs=False)
    _, report = validate_frame(make_frame(), CONTRACT, config=off, report_dir=tmp_path / "off")
    assert report.data_docs_path is None and not (tmp_path / "off" / "data_docs").exists()


def test_read_input_names_duplicated_and_conflicting_parquet_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = make_frame()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    duplicated = table.append_column("target", table.column("target"))
    pq.write_table(duplicated, tmp_path / "dup.parquet")
    with pytest.raises(DataValidationError) as info:
        validate_dataset(tmp_path / "dup.parquet", CONTRACT, report_dir=tmp_path / "report")
    assert (info.value.rule, info.value.column) == ("unique_column_names", "target")
    assert json.loads((tmp_path / "report" / "validation.json").read_text())["success"] is False

    (tmp_path / "parts").mkdir()
    pq.write_table(table.slice(0, 9), tmp_path / "parts" / "a.parquet")
    other = frame.iloc[9:].assign(price=lambda f: f["price"].astype(str).str.replace("-", "n/a"))
    other.to_parquet(tmp_path / "parts" / "b.parquet", index=False)
    with pytest.raises(DataValidationError) as info:
        read_dataset(tmp_path / "parts", CONTRACT)
    assert (info.value.rule, info.value.column) == ("parquet_schema", "price")
    assert "price: double vs large_string" in str(info.value)


def test_irregular_timestamps_without_a_declared_frequency():
    frame = make_frame(n_series=2, length=4)
    frame["timestamp"] = np.tile(
        pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-05", "2024-01-11"]), 2
    )
    error = raises(frame)
    assert (error.rule, error.column, error.count) == ("regular_frequency", "timestamp", 2)
    assert "declare contract.freq" in str(error)


def test_data_docs_work_with_a_relative_report_dir(tmp_path, monkeypatch):
    # `make run` passes a relative workdir; GX needs an absolute Data Docs directory.
    monkeypatch.chdir(tmp_path)
    _, report = validate_frame(make_frame(), CONTRACT, report_dir=Path("reports") / "run")
    assert (tmp_path / "reports" / "run" / "data_docs" / "index.html").is_file()
    assert report.success


# -- reading the files of a dataset -------------------------------------------------------------


def write_parts(directory: Path, *parts: pd.DataFrame) -> Path:
    directory.mkdir()
    for i, part in enumerate(parts):
        part.to_parquet(directory / f"part-{i}.parquet", index=False)
    return directory


def read_error(source: Path) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        read_dataset(source, CONTRACT)
    return info.value


def test_files_that_are_not_parquet_fail_parquet_readable_and_are_named(tmp_path):
    frame = make_frame()
    good = tmp_path / "good.parquet"
    frame.to_parquet(good, index=False)
    content = good.read_bytes()
    (tmp_path / "csv.parquet").write_text(frame.to_csv(index=False))
    (tmp_path / "empty.parquet").write_bytes(b"")
    (tmp_path / "truncated.parquet").write_bytes(content[: len(content) // 2])
    for name in ("csv.parquet", "empty.parquet", "truncated.parquet"):
        error = read_error(tmp_path / name)
        assert (error.rule, error.column, error.count) == ("parquet_readable", "*", 1)
        assert error.example.startswith(f"{name}: ")
    broken = write_parts(tmp_path / "parts", frame.iloc[:9], frame.iloc[9:])
    (broken / "part-1.parquet").write_bytes(content[:100])
    error = read_error(broken)
    assert (error.rule, error.count) == ("parquet_readable", 1)
    assert "1 of 2 file(s)" in str(error) and error.example.startswith("part-1.parquet: ")
    # a footer that reads, pages that do not: found when the rows are read, the file named
    damaged = write_parts(tmp_path / "damaged", frame.iloc[:9], frame.iloc[9:])
    data = bytearray((damaged / "part-1.parquet").read_bytes())
    data[4:60] = b"\x07" * 56
    (damaged / "part-1.parquet").write_bytes(bytes(data))
    error = read_error(damaged)
    assert (error.rule, error.count) == ("parquet_readable", 1)
    assert error.example.startswith("part-1.parquet: ")


def test_a_path_without_parquet_files_fails_parquet_files(tmp_path):
    error = read_error(tmp_path / "nowhere")
    assert (error.rule, error.column, error.count) == ("parquet_files", "*", 1)
    assert f"input dataset not found: {tmp_path / 'nowhere'}" in str(error)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "README.txt").write_text("sales by store")
    error = read_error(tmp_path / "docs")
    assert (error.rule, error.column, error.count) == ("parquet_files", "*", 1)
    assert f"no Parquet file (*.parquet, *.parq) in {tmp_path / 'docs'}" in str(error)
    assert error.example == "README.txt"


def test_other_files_of_a_directory_are_left_out_with_a_warning(tmp_path):
    frame = make_frame()
    source = write_parts(tmp_path / "parts", frame.iloc[:9])
    frame.iloc[9:].to_parquet(source / "part-1.PARQ", index=False)
    (source / "README.txt").write_text("sales by store")
    frame.to_csv(source / "export.csv", index=False)
    (source / "_SUCCESS").write_text("")  # markers and hidden files are skipped silently
    (source / ".part-0.parquet.crc").write_bytes(b"\x00")
    out, report = validate_dataset(source, CONTRACT, report_dir=tmp_path / "report")
    assert len(out) == len(frame)
    (warning,) = report.warnings
    assert (warning.rule, warning.column, warning.failing_count, warning.action) == (
        "parquet_files",
        "*",
        2,
        "ignored",
    )
    assert warning.example.startswith("README.txt")
    payload = json.loads((tmp_path / "report" / "validation.json").read_text())
    assert [r["rule"] for r in payload["results"][:5]] == [
        "parquet_files",
        "parquet_readable",
        "parquet_columns",
        "timestamp_timezone",
        "parquet_schema",
    ]


def test_files_lacking_a_column_the_others_have_fail_parquet_columns(tmp_path):
    frame = make_frame()
    source = write_parts(
        tmp_path / "parts",
        frame.iloc[:6],
        frame.iloc[6:12].drop(columns=["note"]),
        frame.iloc[12:].drop(columns=["note", "price"]),
    )
    error = read_error(source)
    assert (error.rule, error.column, error.count) == ("parquet_columns", "price, note", 2)
    assert "2 of 3 files lack column(s) the others have" in str(error)
    assert error.example == "part-1.parquet has no note"
    # a column no file has is left to validation, which names it
    source = write_parts(tmp_path / "none", frame.iloc[:9].drop(columns=["note"]))
    with pytest.raises(DataValidationError) as info:
        validate_dataset(source, CONTRACT)
    assert (info.value.rule, info.value.column) == ("columns_present", "note")


def test_files_widen_compatible_types_and_hive_folders_give_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = make_frame()
    source = tmp_path / "parts"
    for i, (series, rows) in enumerate(frame.groupby("series_id")):
        folder = source / f"series_id={series}"
        folder.mkdir(parents=True)
        table = pa.Table.from_pandas(rows.drop(columns=["series_id"]), preserve_index=False)
        if i == 1:  # other writers: 32-bit floats, string (not large_string), milliseconds
            table = table.cast(
                pa.schema(
                    [
                        ("timestamp", pa.timestamp("ms")),
                        ("target", pa.float32()),
                        ("price", pa.float32()),
                        ("region", pa.string()),
                        ("note", pa.string()),
                    ]
                )
            )
        pq.write_table(table, folder / "part.parquet")
    out, report = validate_dataset(source, CONTRACT)
    assert report.success and len(out) == len(frame) and report.n_series == 3
    assert sorted(out["series_id"].unique()) == ["s0", "s1", "s2"]


def test_files_in_different_time_zones_fail_timestamp_timezone(tmp_path):
    frame = make_frame(n_series=4)
    stamps = frame["timestamp"]
    source = write_parts(
        tmp_path / "zones",
        frame.iloc[:12].assign(timestamp=stamps.iloc[:12].dt.tz_localize("UTC")),
        frame.iloc[12:18].assign(timestamp=stamps.iloc[12:18].dt.tz_localize("Asia/Tokyo")),
        frame.iloc[18:].assign(timestamp=stamps.iloc[18:].dt.tz_localize("UTC")),
    )
    with pytest.raises(DataValidationError) as info:
        validate_dataset(source, CONTRACT, report_dir=tmp_path / "report")
    error = info.value
    assert (error.rule, error.column, error.count) == ("timestamp_timezone", "timestamp", 1)
    assert error.example == "part-1.parquet: Asia/Tokyo"
    assert "another time zone than 'UTC'" in str(error)
    assert json.loads((tmp_path / "report" / "validation.json").read_text())["success"] is False
    naive_and_aware = write_parts(
        tmp_path / "naive",
        frame.iloc[:12],
        frame.iloc[12:].assign(timestamp=stamps.iloc[12:].dt.tz_localize("Europe/Berlin")),
    )
    error = read_error(naive_and_aware)
    assert (error.rule, error.count) == ("timestamp_timezone", 1)
    assert "no time zone" in str(error)


# -- time zones --------------------------------------------------------------------------------


def test_hourly_data_across_the_end_of_daylight_saving_time_is_held_as_utc_instants():
    from fusioncast.timestamps import attach_zone

    # 2023-10-29 in Berlin: 02:00 comes twice (CEST, then CET); every instant is one hour apart
    stamps = pd.date_range("2023-10-28 20:00", periods=12, freq="h", tz="Europe/Berlin")
    assert stamps.tz_localize(None).duplicated().sum() == 1
    frame = make_frame(n_series=2, length=12).assign(timestamp=np.tile(stamps, 2))
    out, report = validate_frame(frame, CONTRACT)
    assert (report.freq, report.timezone) == ("h", "Europe/Berlin")
    assert out["timestamp"].dtype == "datetime64[ns]"
    held = out.loc[out["series_id"] == "s0", "timestamp"]
    assert held.is_unique and (held.diff().dropna() == pd.Timedelta(hours=1)).all()
    assert held.iloc[0] == pd.Timestamp("2023-10-28 18:00")  # UTC
    assert attach_zone(held, report.timezone, report.freq).equals(pd.DatetimeIndex(stamps))
    # steps after the last one, as the forecast takes them, continue in Berlin time
    offset = pd.tseries.frequencies.to_offset(report.freq)
    origin = pd.Timestamp("2023-10-29 00:00", tz="UTC").tz_localize(None)  # 02:00 CEST
    after = attach_zone(
        pd.date_range(origin + offset, periods=3, freq=offset), "Europe/Berlin", "h"
    )
    assert [str(t) for t in after] == [
        "2023-10-29 02:00:00+01:00",
        "2023-10-29 03:00:00+01:00",
        "2023-10-29 04:00:00+01:00",
    ]


def test_daily_data_at_local_midnight_keeps_calendar_days_across_daylight_saving_time():
    from fusioncast.timestamps import attach_zone

    stamps = pd.date_range("2024-03-28", periods=6, freq="D", tz="Europe/Berlin")  # DST: 03-31
    assert set((stamps[1:] - stamps[:-1]) // pd.Timedelta(hours=1)) == {23, 24}  # hours apart
    frame = make_frame(length=6).assign(timestamp=lambda f: np.tile(stamps, 3))
    out, report = validate_frame(frame, CONTRACT)
    assert (report.freq, report.timezone) == ("D", "Europe/Berlin")
    assert (out["timestamp"].dt.hour == 0).all()  # wall-clock days
    assert attach_zone(out["timestamp"].iloc[:6], "Europe/Berlin", "D").equals(stamps)


def test_tz_aware_timestamps_are_compared_with_now_as_instants():
    tokyo = pd.date_range("2024-01-01", periods=6, freq="D", tz="Asia/Tokyo")
    frame = make_frame().assign(timestamp=np.tile(tokyo, 3))
    # 2024-01-06 00:00 in Tokyo is 2024-01-05 15:00 UTC: in the past at 16:00 UTC
    now = ValidationConfig(now=pd.Timestamp("2024-01-05 16:00", tz="UTC"))
    assert validate_frame(frame, CONTRACT, config=now)[1].success
    before = ValidationConfig(now=pd.Timestamp("2024-01-05 14:00", tz="UTC"))
    error = raises(frame, config=before)
    assert (error.rule, error.count) == ("not_in_future", 3)
    assert error.example == "2024-01-06 at series_id=s0"  # shown in the input's zone


def test_duplicate_instants_of_tz_aware_data_are_shown_in_their_zone():
    stamps = pd.date_range("2023-10-29 01:00", periods=4, freq="h", tz="Europe/Berlin")
    frame = make_frame(n_series=1, length=5)
    frame["timestamp"] = [*stamps, stamps[2]]  # 02:00+01:00 twice
    error = raises(frame)
    assert (error.rule, error.count) == ("unique_series_timestamp", 2)
    assert error.example == "series_id=s0, timestamp=2023-10-29 02:00:00+01:00"


def test_strings_with_several_utc_offsets_are_instants_in_utc():
    stamps = pd.date_range("2023-10-28 20:00", periods=12, freq="h", tz="Europe/Berlin")
    frame = make_frame(length=12).assign(
        timestamp=np.tile(stamps.strftime("%Y-%m-%dT%H:%M:%S%z"), 3)
    )
    out, report = validate_frame(frame, CONTRACT)
    assert (report.freq, report.timezone) == ("h", "UTC")
    assert (
        out["timestamp"]
        .iloc[:12]
        .equals(
            pd.Series(stamps.tz_convert("UTC").tz_localize(None).as_unit("ns"), name="timestamp")
        )
    )
    one_offset = make_frame(length=6).assign(
        timestamp=np.tile(stamps[:6].strftime("%Y-%m-%dT%H:%M:%S%z"), 3)
    )
    assert validate_frame(one_offset, CONTRACT)[1].timezone == "UTC+02:00"
