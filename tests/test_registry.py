import json
import os
import time

import numpy as np
import pandas as pd
import pytest

from fusioncast.demo import DEMO_CONTRACT
from fusioncast.errors import ModelStateError
from fusioncast.forecast import Forecaster
from fusioncast.model import build_model
from fusioncast.registry import ModelRegistry
from fusioncast.split import split_by_time
from fusioncast.state import prepare
from fusioncast.windows import forecast_origins

#: The files of a version directory: versions written by earlier releases must keep loading.
VERSION_FILES = {
    "model.keras",
    "contract.json",
    "scaler.json",
    "encoder.json",
    "tokenizers.json",
    "spec.json",
    "training.json",
    "metrics.parquet",
}


@pytest.fixture
def forecaster(demo_frame, small_model_config):
    boundaries = split_by_time(demo_frame, DEMO_CONTRACT)
    state, _ = prepare(demo_frame, DEMO_CONTRACT, boundaries, small_model_config)
    return Forecaster(build_model(state.spec), state)


def test_register_load_round_trip(tmp_path, forecaster, demo_frame):
    registry = ModelRegistry(tmp_path)
    metrics = pd.DataFrame({"model": ["fusioncast"], "mse": [1.0], "n_windows": [1]})
    version = registry.register(
        forecaster,
        parameters={"a": 1},
        data_fingerprint="abc",
        training={"best_epoch": 1},
        metrics=metrics,
    )
    assert registry.versions() == [version] and registry.champion() is None
    manifest = json.loads((tmp_path / version / "manifest.json").read_text())
    assert set(manifest["files"]) == VERSION_FILES
    assert {p.name for p in (tmp_path / version).iterdir()} == VERSION_FILES | {"manifest.json"}
    registry.promote(version, reason="first")
    loaded = registry.load()
    assert isinstance(loaded, Forecaster) and loaded.version == version
    assert registry.verify(version)["data_fingerprint"] == "abc"
    arrays = loaded.state.arrays(demo_frame)
    origins = forecast_origins(arrays, 21)
    np.testing.assert_array_equal(
        loaded.predict_windows(arrays, origins), forecaster.predict_windows(arrays, origins)
    )
    assert loaded.state.tokenizers["note"] == forecaster.state.tokenizers["note"]
    assert loaded.spec == forecaster.spec and loaded.contract == forecaster.contract


def test_a_file_that_no_longer_matches_its_manifest_is_refused(tmp_path, forecaster):
    registry = ModelRegistry(tmp_path)
    version = registry.register(forecaster, parameters={}, data_fingerprint="abc")
    registry.promote(version)
    scaler_path = tmp_path / version / "scaler.json"
    payload = json.loads(scaler_path.read_text())
    payload["columns"].reverse()
    scaler_path.write_text(json.dumps(payload))
    with pytest.raises(ModelStateError, match="scaler.json does not match its manifest"):
        registry.load()


def test_incomplete_versions_are_invisible_and_unknown_versions_refused(tmp_path, forecaster):
    registry = ModelRegistry(tmp_path)
    (tmp_path / ".staging-20260101T000000Z-aaaaaa").mkdir(parents=True)
    (tmp_path / "20260101T000000Z-bbbbbb").mkdir()  # no manifest: never completed
    assert registry.versions() == []
    with pytest.raises(ModelStateError, match="no champion"):
        registry.load()
    with pytest.raises(ModelStateError, match="unknown model version"):
        registry.promote("20260101T000000Z-bbbbbb")


def test_rollback_goes_back_through_earlier_champions(tmp_path, forecaster):
    registry = ModelRegistry(tmp_path)
    a, b, c = (
        registry.register(forecaster, parameters={}, data_fingerprint=str(i)) for i in range(3)
    )
    with pytest.raises(ModelStateError, match="no earlier champion"):
        registry.rollback()
    for version in (a, b, c):
        registry.promote(version, reason=f"promote {version}")
    assert [h["model_version"] for h in registry.champion_history()] == [a, b]
    assert registry.rollback() == b and registry.champion() == b
    assert registry.rollback() == a and registry.champion() == a
    with pytest.raises(ModelStateError, match="no earlier champion"):
        registry.rollback()
    table = registry.describe()
    assert table.set_index("model_version")["champion"].to_dict() == {a: True, b: False, c: False}


def test_the_registry_lock_excludes_a_second_holder(tmp_path):
    def take_briefly() -> None:
        with ModelRegistry(tmp_path).lock(timeout_s=0.3):
            pass

    with ModelRegistry(tmp_path).lock(), pytest.raises(ModelStateError, match="stayed locked"):
        take_briefly()
    take_briefly()  # released


@pytest.mark.parametrize(
    "content, found",
    [
        (b'{"version": 1, "model_version": "2026', "not valid JSON"),
        (b"\xff\xfe garbage", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, found list"),
        (b'{"version": 1, "history": []}', "does not name a champion"),
    ],
)
def test_an_unreadable_pointer_is_named_and_promote_replaces_it(
    tmp_path, forecaster, content, found
):
    registry = ModelRegistry(tmp_path)
    version = registry.register(forecaster, parameters={}, data_fingerprint="abc")
    pointer = tmp_path / "champion.json"
    pointer.write_bytes(content)
    for read in (registry.champion, registry.load, registry.rollback):
        with pytest.raises(ModelStateError, match="models promote VERSION") as error:
            read()
        assert f"rule 'state_json' failed on {pointer}: {found}" in str(error.value)
    assert registry.describe()[["champion", "status"]].values.tolist() == [[False, "ok"]]
    kept = registry.promote(version, reason="repair")
    assert kept.read_bytes() == content and kept.name.startswith("champion.json.damaged-")
    assert registry.check_champion() == version and registry.champion_history() == []


def test_rollback_refuses_a_damaged_earlier_champion_and_says_what_to_run(tmp_path, forecaster):
    registry = ModelRegistry(tmp_path)
    a, b = (registry.register(forecaster, parameters={}, data_fingerprint=str(i)) for i in "ab")
    registry.promote(a)
    registry.promote(b)
    (tmp_path / a / "spec.json").unlink()
    with pytest.raises(ModelStateError, match="models promote VERSION") as error:
        registry.rollback()
    assert f"cannot roll back: model version {a}: file spec.json is missing" in str(error.value)
    assert registry.champion() == b
    assert registry.describe().set_index("model_version")["status"].to_dict() == {
        a: "damaged: file spec.json is missing",
        b: "ok",
    }


def test_register_removes_unfinished_versions_a_killed_run_left_an_hour_ago(tmp_path, forecaster):
    registry = ModelRegistry(tmp_path)
    old, young = tmp_path / ".staging-old", tmp_path / ".staging-young"
    for folder in (old, young):
        folder.mkdir()
        (folder / "model.keras").write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    for path in (old / "model.keras", old):
        os.utime(path, (two_hours_ago, two_hours_ago))
    os.utime(young, (two_hours_ago, two_hours_ago))  # its file is still being written
    killed_pointer_write = tmp_path / ".champion.json.0123abcd.tmp"
    killed_pointer_write.write_text("{")
    os.utime(killed_pointer_write, (two_hours_ago, two_hours_ago))
    assert registry.unfinished() == [".staging-old", ".staging-young"]
    version = registry.register(forecaster, parameters={}, data_fingerprint="abc")
    assert registry.unfinished() == [".staging-young"]
    assert registry.versions() == [version] and not killed_pointer_write.exists()
