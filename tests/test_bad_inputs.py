"""The bad-input corpus, run through the real flows and command line.

A model is trained once per module on tiny demo data (4 daily series). Each case is a small
generator that damages (or merely reshuffles) that data and writes it as Parquet; the case then
runs ``fusioncast forecast`` on it against the trained workspace:

- a rejected case must exit with status 2 and one line naming the rule, the column and the count,
  without a traceback, and leave every file under ``models/`` and ``forecasts/`` byte-for-byte as
  it was (no forecast written, the champion untouched);
- an accepted case must publish forecasts (and leave the model alone).

The quarantine policy and a rejected ``retrain`` are tested here too.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fusioncast.contract import ForecastColumn as F
from fusioncast.demo import DEMO_CONTRACT, generate_demo_frame
from fusioncast.validation import QUARANTINE_COLUMN, QUARANTINE_RULE, REPORT_FILE

pytestmark = pytest.mark.slow

LOOKBACK, HORIZON = 14, 7
SERIES = ["S01-bakery", "S01-dairy", "S02-bakery", "S02-dairy"]
DAYS = 120  # 2023-01-02 .. 2023-05-01 per series
TRAINING = {"epochs": 1, "batch_size": 64, "steps_per_epoch": 2, "patience": 1}
# A model trained for seconds need not come near the statistical peers to be published.
PROMOTION = {"best_baseline_margin": None}


def base_frame() -> pd.DataFrame:
    frame = generate_demo_frame(n_stores=2, n_categories=2, n_days=DAYS, seed=1)
    return frame.sort_values(["series_id", "date"]).reset_index(drop=True)


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@dataclass
class Workspace:
    root: Path
    data: Path
    baseline: pd.DataFrame = field(default_factory=pd.DataFrame)  # forecasts of the clean data

    @property
    def workdir(self) -> str:
        return str(self.root / "out")

    def digests(self) -> tuple[dict[str, str], dict[str, str]]:
        out = Path(self.workdir)
        return tree_digest(out / "models"), tree_digest(out / "forecasts")


def params_file(directory: Path, payload: dict[str, Any]) -> Path:
    path = directory / "params.json"
    path.write_text(json.dumps(payload))
    return path


@pytest.fixture(scope="module")
def workspace(prefect_server, tmp_path_factory, tiny_model_settings) -> Workspace:
    from fusioncast.flows.cli import main, run

    # The cases below are built for this window shape.
    assert (tiny_model_settings["lookback"], tiny_model_settings["horizon"]) == (LOOKBACK, HORIZON)

    root = tmp_path_factory.mktemp("corpus")
    data = root / "data.parquet"
    base_frame().to_parquet(data, index=False)
    params = params_file(
        root, {"model": tiny_model_settings, "training": TRAINING, "promotion": PROMOTION}
    )
    args = ["--data", str(data), "--workdir", str(root / "out"), "--params", str(params)]
    assert main(["retrain", *args]) == 0
    space = Workspace(root, data)
    outcome = run(["forecast", "--data", str(data), "--workdir", space.workdir])
    space.baseline = pd.read_parquet(outcome["forecasts_path"])
    return space


# -- the corpus: each generator writes a damaged copy of the base frame ---------------------------


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, index=False)
    return path


def in_series(frame: pd.DataFrame, series: str, days: list[int]) -> pd.Index:
    """Index labels of the given day numbers (0 = first day) of one series."""
    rows = frame.index[frame["series_id"] == series]
    return rows[days]


def missing_column(frame, path):
    return write(frame.drop(columns=["price"]), path)


def renamed_column(frame, path):
    return write(frame.rename(columns={"units_sold": "sales"}), path)


def duplicate_column_names(frame, path):
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table.append_column("price", table.column("price")), path)
    return path


def nan_target(frame, path):
    frame.loc[in_series(frame, "S01-dairy", [40, 41, 90]), "units_sold"] = np.nan
    return write(frame, path)


def inf_target(frame, path):
    frame.loc[in_series(frame, "S02-bakery", [10, 70]), "units_sold"] = np.inf
    return write(frame, path)


def inf_covariate(frame, path):
    frame.loc[in_series(frame, "S01-bakery", [5]), "price"] = -np.inf
    return write(frame, path)


def duplicate_keys(frame, path):
    copies = frame.loc[in_series(frame, "S02-dairy", list(range(50, 55)))]
    return write(pd.concat([frame, copies.assign(units_sold=0.0)], ignore_index=True), path)


def gaps(frame, path):
    return write(frame.drop(index=in_series(frame, "S01-dairy", [60, 61, 62])), path)


def off_frequency(frame, path):
    row = in_series(frame, "S02-dairy", [30])
    frame.loc[row, "date"] = frame.loc[row, "date"] + pd.Timedelta(hours=12)
    return write(frame, path)


def future_timestamps(frame, path):
    return write(frame, path)  # the run's `now` is two days before the last date


def unparsable_timestamp(frame, path):
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d").astype(object)
    frame.loc[in_series(frame, "S01-bakery", [3]), "date"] = "not a date"
    return write(frame, path)


def mixed_type_column(frame, path):
    price = frame["price"].astype(object)
    price[in_series(frame, "S02-bakery", [7, 8])] = "n/a"
    return write(frame.assign(price=price.astype(str)), path)  # a string column in Parquet


def wrong_type_target(frame, path):
    return write(frame.assign(units_sold=frame["date"]), path)  # timestamps where numbers go


def wrong_type_text(frame, path):
    return write(frame.assign(note=np.arange(len(frame))), path)  # integers where text goes


def numeric_timestamps(frame, path):
    days = (frame["date"] - pd.Timestamp("1970-01-01")).dt.days
    return write(frame.assign(date=days), path)


def empty_dataset(frame, path):
    return write(frame.iloc[:0], path)


def single_row_series(frame, path):
    return write(frame.iloc[:1], path)


def all_series_too_short(frame, path):
    return write(frame.groupby("series_id").tail(LOOKBACK - 4), path)


def invalid_utf8(frame, path):
    notes = [None if pd.isna(v) else v.encode() for v in frame["note"]]
    for row in in_series(frame, "S01-dairy", [12, 13]):
        notes[row] = b"caf\xe9 \xff broken"  # latin-1, not UTF-8
    table = pa.Table.from_pandas(frame.drop(columns=["note"]), preserve_index=False)
    pq.write_table(table.append_column("note", pa.array(notes, pa.binary())), path)
    return path


def null_series_id(frame, path):
    frame.loc[in_series(frame, "S02-bakery", [0, 1]), "series_id"] = None
    return write(frame, path)


def too_many_categories(frame, path):
    return write(frame, path)  # the run allows 5 values per categorical; day_of_week has 7


def halves(frame, path, second=lambda rows: rows):
    """A dataset directory of two files: the first half of the rows, and the rest changed."""
    path.mkdir()
    half = len(frame) // 2  # S01-* and S02-*
    write(frame.iloc[:half], path / "part-0.parquet")
    write(second(frame.iloc[half:]), path / "part-1.parquet")
    return path


def schema_conflict(frame, path):
    def as_text(rows):
        rows = rows.assign(price=rows["price"].astype(str))
        rows.loc[rows.index[:2], "price"] = (
            "n/a"  # strings in a column the first file has as floats
        )
        return rows

    return halves(frame, path, as_text)


def csv_named_parquet(frame, path):
    path.write_text(frame.to_csv(index=False))
    return path


def zero_byte_file(frame, path):
    path.write_bytes(b"")
    return path


def truncated_file(frame, path):
    content = write(frame, path).read_bytes()
    path.write_bytes(content[: len(content) // 2])
    return path


def directory_with_a_corrupt_file(frame, path):
    halves(frame, path)
    truncated_file(frame.iloc[: len(frame) // 2], path / "part-1.parquet")
    return path


def directory_with_only_a_readme(frame, path):
    path.mkdir()
    (path / "README.txt").write_text("daily sales per store and category\n")
    return path


def column_missing_from_one_file(frame, path):
    return halves(frame, path, lambda rows: rows.drop(columns=["note"]))


def files_in_different_time_zones(frame, path):
    frame = frame.assign(date=frame["date"].dt.tz_localize("UTC"))
    return halves(
        frame, path, lambda rows: rows.assign(date=rows["date"].dt.tz_convert("Asia/Tokyo"))
    )


def missing_path(frame, path):
    return path  # nothing written


def static_store_changes(frame, path):
    frame.loc[in_series(frame, "S01-dairy", list(range(DAYS - 10, DAYS))), "store"] = "S02"
    return write(frame, path)


def target_in_other_units(frame, path):
    series = frame["series_id"] == "S02-bakery"
    frame.loc[series, "units_sold"] = frame.loc[series, "units_sold"] * 1e30
    return write(frame, path)


@dataclass
class Case:
    make: Callable[[pd.DataFrame, Path], Path]
    rule: str
    column: str
    count: int | None
    validation: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.make.__name__


LAST_DAY = pd.Timestamp("2023-05-01")
REJECTED = [
    Case(missing_column, "columns_present", "price", 1),
    Case(renamed_column, "columns_present", "units_sold", 1),
    Case(duplicate_column_names, "unique_column_names", "price", 1),
    Case(nan_target, "not_null", "units_sold", 3),
    Case(inf_target, "finite", "units_sold", 2),
    Case(inf_covariate, "finite", "price", 1),
    Case(duplicate_keys, "unique_series_timestamp", "series_id, date", 10),
    Case(gaps, "frequency_gaps", "date", 3),
    Case(off_frequency, "on_frequency", "date", 1),
    Case(
        future_timestamps,
        "not_in_future",
        "date",
        4 * 2,
        {"now": str(LAST_DAY - pd.Timedelta(days=2))},
    ),
    Case(unparsable_timestamp, "timestamp_parses", "date", 1),
    Case(mixed_type_column, "numeric_type", "price", 2),
    Case(wrong_type_target, "numeric_type", "units_sold", 4 * DAYS),
    Case(wrong_type_text, "text_type", "note", 4 * DAYS),
    Case(numeric_timestamps, "timestamp_parses", "date", 4 * DAYS),
    Case(empty_dataset, "non_empty", "*", 1),
    Case(single_row_series, "series_min_length", "series_id", 1),
    Case(all_series_too_short, "series_min_length", "series_id", 4),
    Case(invalid_utf8, "text_utf8", "note", 2),
    Case(null_series_id, "not_null", "series_id", 2),
    Case(
        too_many_categories,
        "categorical_cardinality",
        "day_of_week",
        7,
        {"max_categorical_cardinality": 5},
    ),
    Case(schema_conflict, "parquet_schema", "price", 1),
    Case(csv_named_parquet, "parquet_readable", "*", 1),
    Case(zero_byte_file, "parquet_readable", "*", 1),
    Case(truncated_file, "parquet_readable", "*", 1),
    Case(directory_with_a_corrupt_file, "parquet_readable", "*", 1),
    Case(directory_with_only_a_readme, "parquet_files", "*", 1),
    Case(missing_path, "parquet_files", "*", 1),
    Case(column_missing_from_one_file, "parquet_columns", "note", 1),
    Case(files_in_different_time_zones, "timestamp_timezone", "date", 1),
    Case(static_store_changes, "static_per_series", "store", 10),
    Case(target_in_other_units, "within_scale", "units_sold", LOOKBACK),  # the steps read
]


def forecast_args(space: Workspace, data: Path, tmp_path: Path, validation: dict) -> list[str]:
    args = ["forecast", "--data", str(data), "--workdir", space.workdir]
    if validation:
        args += ["--params", str(params_file(tmp_path, {"validation": validation}))]
    return args


@pytest.mark.parametrize("case", REJECTED, ids=lambda c: c.name)
def test_rejected_input_stops_the_run_and_touches_nothing(case, workspace, tmp_path, capfd):
    from fusioncast.flows.cli import main

    data = case.make(base_frame(), tmp_path / "input.parquet")
    models, forecasts = workspace.digests()
    capfd.readouterr()
    status = main(forecast_args(workspace, data, tmp_path, case.validation))
    err = capfd.readouterr().err
    assert status == 2
    line = next(line for line in err.splitlines() if line.startswith("fusioncast: error:"))
    assert f"rule '{case.rule}' failed on column '{case.column}'" in line
    count = int(re.search(r": (\d+) offending row", line).group(1))
    if case.count is not None:
        assert count == case.count, line
    assert "Traceback" not in err
    assert workspace.digests() == (models, forecasts)  # no forecast written, model untouched


def test_mixed_number_and_string_values_name_the_column_and_an_example(workspace, tmp_path, capfd):
    from fusioncast.flows.cli import main

    data = mixed_type_column(base_frame(), tmp_path / "input.parquet")
    assert main(forecast_args(workspace, data, tmp_path, {})) == 2
    assert "(example: 'n/a')" in capfd.readouterr().err


# -- accepted quirks ---------------------------------------------------------------------------


def reversed_order(frame):
    return frame.iloc[::-1]


def shuffled_order(frame):
    return frame.sample(frac=1.0, random_state=7)


def unseen_categories(frame):
    series = frame["series_id"] == "S02-dairy"
    return frame.assign(
        store=frame["store"].where(~series, "S99"),
        category=frame["category"].where(~series, "toys"),
        day_of_week=frame["day_of_week"].where(frame.index % 11 != 0, "Holiday"),
    )


def empty_text_column(frame):
    return frame.assign(note=pd.Series([None] * len(frame), dtype="str"))


def oversized_text(frame):
    frame.loc[in_series(frame, "S01-bakery", [DAYS - 3]), "note"] = "Big sale " * 500
    return frame


def single_row_series_among_others(frame):
    extra = frame.iloc[[0]].assign(series_id="S03-bakery", store="S03")
    return pd.concat([frame, extra], ignore_index=True)


ACCEPTED = {
    reversed_order: {"same_forecasts": True},
    shuffled_order: {"same_forecasts": True},
    unseen_categories: {},
    empty_text_column: {},
    oversized_text: {"warning": ("text_max_length", "note", 1, "truncated")},
    single_row_series_among_others: {"warning": ("series_min_length", "series_id", 1, "excluded")},
}


@pytest.mark.parametrize("change", list(ACCEPTED), ids=lambda f: f.__name__)
def test_accepted_quirks_are_forecast(change, workspace, tmp_path):
    from fusioncast.flows.cli import run

    expected = ACCEPTED[change]
    data = write(change(base_frame()), tmp_path / "input.parquet")
    models, _ = workspace.digests()
    outcome = run(["forecast", "--data", str(data), "--workdir", workspace.workdir])
    forecasts = pd.read_parquet(outcome["forecasts_path"])
    assert sorted(forecasts[F.SERIES_ID].unique()) == SERIES
    assert len(forecasts) == len(SERIES) * HORIZON
    assert forecasts[F.FORECAST].notna().all()
    assert workspace.digests()[0] == models
    if expected.get("same_forecasts"):
        columns = [F.SERIES_ID, F.TARGET_TIMESTAMP, F.FORECAST, "p10", "p90"]
        pd.testing.assert_frame_equal(forecasts[columns], workspace.baseline[columns])
    report = json.loads(
        (Path(workspace.workdir) / "reports" / outcome["run_id"] / REPORT_FILE).read_text()
    )
    warnings = [
        (r["rule"], r["column"], r["failing_count"], r["action"])
        for r in report["results"]
        if r["action"] != "passed"
    ]
    assert warnings == ([expected["warning"]] if "warning" in expected else [])


def test_a_readme_beside_the_parquet_files_is_left_out_with_a_warning(workspace, tmp_path):
    from fusioncast.flows.cli import run

    data = halves(base_frame(), tmp_path / "input")
    (data / "README.txt").write_text("daily sales per store and category\n")
    outcome = run(["forecast", "--data", str(data), "--workdir", workspace.workdir])
    forecasts = pd.read_parquet(outcome["forecasts_path"])
    columns = [F.SERIES_ID, F.TARGET_TIMESTAMP, F.FORECAST]
    pd.testing.assert_frame_equal(forecasts[columns], workspace.baseline[columns])
    report = json.loads(
        (Path(workspace.workdir) / "reports" / outcome["run_id"] / REPORT_FILE).read_text()
    )
    warnings = [
        (r["rule"], r["failing_count"], r["action"], r["example"]) for r in report["results"]
    ]
    assert ("parquet_files", 1, "ignored", "README.txt (not *.parquet or *.parq: not read)") in (
        warnings
    )


# -- time zones --------------------------------------------------------------------------------


def test_daily_data_in_a_zone_with_daylight_saving_is_published_in_that_zone(workspace, tmp_path):
    from fusioncast.flows.cli import run

    frame = base_frame()  # daylight saving time starts on 2023-03-26 in Berlin
    data = write(
        frame.assign(date=frame["date"].dt.tz_localize("Europe/Berlin")), tmp_path / "input.parquet"
    )
    outcome = run(["forecast", "--data", str(data), "--workdir", workspace.workdir])
    forecasts = pd.read_parquet(outcome["forecasts_path"])
    baseline = workspace.baseline
    for column in (F.FORECAST_ORIGIN, F.TARGET_TIMESTAMP):
        expected = baseline[column].dt.tz_localize("Europe/Berlin")
        pd.testing.assert_series_equal(forecasts[column], expected, check_dtype=False)
        assert str(forecasts[column].dt.tz) == "Europe/Berlin"
    pd.testing.assert_series_equal(forecasts[F.FORECAST], baseline[F.FORECAST])


def test_hourly_data_across_the_end_of_daylight_saving_continues_in_its_zone(
    workspace, tmp_path, tiny_model_settings
):
    from fusioncast.flows.cli import run

    # 2023-10-29 in Berlin: 02:00 comes twice; the last step is the second one (02:00+01:00)
    last = pd.Timestamp("2023-10-29 01:00", tz="UTC").tz_convert("Europe/Berlin")
    stamps = pd.date_range(end=last, periods=DAYS, freq="h")
    frame = base_frame().assign(date=np.tile(stamps, len(SERIES)))
    data = write(frame, tmp_path / "input.parquet")
    hourly = {**DEMO_CONTRACT.model_dump(mode="json"), "freq": None}  # inferred
    params = {
        "model": tiny_model_settings,
        "training": TRAINING,
        "promotion": PROMOTION,
        "contract": hourly,
    }
    args = ["--data", str(data), "--workdir", str(tmp_path / "out")]
    outcome = run(["retrain", *args, "--params", str(params_file(tmp_path, params))])
    forecasts = pd.read_parquet(outcome["forecasts_path"])
    assert len(forecasts) == len(SERIES) * HORIZON
    first = forecasts[forecasts[F.SERIES_ID] == SERIES[0]]
    assert (first[F.FORECAST_ORIGIN] == last).all()
    assert [str(t) for t in first[F.TARGET_TIMESTAMP]] == [
        f"2023-10-29 {hour:02d}:00:00+01:00" for hour in range(3, 3 + HORIZON)
    ]
    notes = [entry for text in forecasts[F.EXPLANATION] for entry in json.loads(text)]
    assert notes and {pd.Timestamp(n["timestamp"]) for n in notes} <= set(stamps)
    assert all(n["timestamp"].endswith(("+01:00", "+02:00")) for n in notes)


# -- quarantine and retrain --------------------------------------------------------------------


def test_quarantine_publishes_the_remaining_series(workspace, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from fusioncast.flows.cli import run

    frame = base_frame()
    frame.loc[in_series(frame, "S01-dairy", [50]), "units_sold"] = np.inf
    frame.loc[in_series(frame, "S02-bakery", [DAYS - 1]), "price"] = -np.inf
    data = write(frame, tmp_path / "input.parquet")
    args = forecast_args(workspace, data, tmp_path, {"policy": "quarantine"})
    outcome = run(args)

    forecasts = pd.read_parquet(outcome["forecasts_path"])
    # S01-dairy lost a middle step (a gap: the whole series is set aside); S02-bakery its last
    # step, so it is forecast from the step before.
    assert sorted(forecasts[F.SERIES_ID].unique()) == ["S01-bakery", "S02-bakery", "S02-dairy"]
    origin = forecasts.groupby(F.SERIES_ID)[F.FORECAST_ORIGIN].first()
    assert origin["S02-bakery"] == LAST_DAY - pd.Timedelta(days=1)
    assert origin["S02-dairy"] == LAST_DAY

    report_dir = Path(workspace.workdir) / "reports" / outcome["run_id"]
    quarantined = pd.read_parquet(report_dir / "quarantine.parquet")
    assert len(quarantined) == DAYS + 1
    by_rule = quarantined.groupby([QUARANTINE_RULE, QUARANTINE_COLUMN, "series_id"]).size()
    assert by_rule.to_dict() == {
        ("finite", "price", "S02-bakery"): 1,
        ("finite", "units_sold", "S01-dairy"): 1,
        ("frequency_gaps", "date", "S01-dairy"): DAYS - 1,
    }
    assert (
        quarantined.loc[quarantined[QUARANTINE_RULE] == "finite", "units_sold"].isin([np.inf]).sum()
        == 1
    )
    report = json.loads((report_dir / REPORT_FILE).read_text())
    assert report["n_quarantined"] == DAYS + 1 and report["policy"] == "quarantine"
    assert (report_dir / "data_docs" / "index.html").is_file()

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(outcome["run_id"])])
            )
        )
    by_key = {a.key: a for a in artifacts}
    table = by_key["validation-summary"].data
    table = json.loads(table) if isinstance(table, str) else table
    rows = {(r["rule"], r["column"]): r for r in table}
    assert rows[("finite", "units_sold")]["failing_count"] == 1
    assert rows[("finite", "units_sold")]["status"] == "quarantined"
    summary = by_key["run-summary"].data
    assert f"{DAYS + 1} ({report_dir / 'quarantine.parquet'})" in summary
    assert str(report_dir / "data_docs" / "index.html") in summary


def test_quarantine_publishes_the_series_within_the_model_scale(workspace, tmp_path, caplog):
    from fusioncast.flows.cli import run

    data = target_in_other_units(base_frame(), tmp_path / "input.parquet")
    models, _ = workspace.digests()
    outcome = run(forecast_args(workspace, data, tmp_path, {"policy": "quarantine"}))
    forecasts = pd.read_parquet(outcome["forecasts_path"])
    assert sorted(forecasts[F.SERIES_ID].unique()) == ["S01-bakery", "S01-dairy", "S02-dairy"]
    assert np.isfinite(forecasts[[F.FORECAST, "p10", "p50", "p90"]].to_numpy()).all()
    assert workspace.digests()[0] == models
    assert any(
        "series set aside (quarantine policy): rule 'within_scale'" in r.getMessage()
        and "S02-bakery" in r.getMessage()
        for r in caplog.records
    )


def test_retrain_on_bad_data_registers_nothing(workspace, tmp_path, capfd, tiny_model_settings):
    from fusioncast.flows.cli import main

    data = nan_target(base_frame(), tmp_path / "input.parquet")
    params = params_file(
        tmp_path, {"model": tiny_model_settings, "training": TRAINING, "promotion": PROMOTION}
    )
    models, forecasts = workspace.digests()
    capfd.readouterr()
    status = main(
        ["retrain", "--data", str(data), "--workdir", workspace.workdir, "--params", str(params)]
    )
    err = capfd.readouterr().err
    assert status == 2 and "rule 'not_null' failed on column 'units_sold'" in err
    assert "Traceback" not in err
    assert workspace.digests() == (models, forecasts)
