"""A damaged registry and a disk that refuses writes, through the real command line.

A model is trained once per module on tiny demo data, a second version registered beside it and
promoted (so the pointer has a history). Each test damages its own copy of that workspace and runs
``fusioncast`` on it:

- damage to the registry (a truncated pointer, a corrupt file, a pointer naming a removed version)
  is shown by ``models list`` version by version, and the registry commands repair it;
- a command that cannot go on exits with status 2 and one line naming the file and what to do,
  without a traceback, and leaves ``models/`` and ``forecasts/`` byte-for-byte as they were.

Read-only and full disks are real: a small tmpfs is mounted over the workspace (or one folder of
it), which needs the permission to mount (root); without it those tests are skipped.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from disks import fill, remount_read_only, tmpfs, tree_digest

from fusioncast.demo import generate_demo_frame
from fusioncast.registry import ModelRegistry
from fusioncast.storage import sha256

pytestmark = pytest.mark.slow

TRAINING = {"epochs": 1, "batch_size": 64, "steps_per_epoch": 2, "patience": 1}
# A model trained for seconds need not come near the statistical peers to be published.
PROMOTION = {"best_baseline_margin": None}


@dataclass
class Trained:
    root: Path
    data: Path
    params: Path
    first: str  # trained by `retrain`, with its metrics; the earlier champion
    second: str  # the champion (no metrics)


@dataclass
class Copy:
    """One test's own copy of the trained workspace."""

    out: Path
    trained: Trained

    @property
    def models(self) -> Path:
        return self.out / "models"

    @property
    def pointer(self) -> Path:
        return self.models / "champion.json"

    def digests(self) -> tuple[dict[str, str], dict[str, str]]:
        return tree_digest(self.models), tree_digest(self.out / "forecasts")

    def args(self, command: str, *more: str) -> list[str]:
        if command in ("forecast", "retrain"):
            data = ["--data", str(self.trained.data)]
            params = ["--params", str(self.trained.params)] if command == "retrain" else []
            return [command, *data, *params, "--workdir", str(self.out), *more]
        return ["models", command, *more, "--workdir", str(self.out)]


@pytest.fixture(scope="module")
def trained(prefect_server, tmp_path_factory, tiny_model_settings) -> Trained:
    from fusioncast.flows.cli import main

    root = tmp_path_factory.mktemp("damaged")
    data = root / "data.parquet"
    frame = generate_demo_frame(n_stores=2, n_categories=2, n_days=120, seed=1)
    frame.to_parquet(data, index=False)
    params = root / "params.json"
    params.write_text(
        json.dumps({"model": tiny_model_settings, "training": TRAINING, "promotion": PROMOTION})
    )
    out = root / "out"
    args = ["--data", str(data), "--params", str(params), "--workdir", str(out)]
    assert main(["retrain", *args]) == 0
    registry = ModelRegistry(out / "models")
    first = registry.check_champion()
    second = registry.register(registry.load(), parameters={}, data_fingerprint="0" * 64)
    registry.promote(second, reason="second")
    return Trained(root, data, params, first, second)


@pytest.fixture
def copy(trained, tmp_path) -> Copy:
    shutil.copytree(trained.root / "out", tmp_path / "out")
    return Copy(tmp_path / "out", trained)


def fusioncast(capfd, args: list[str]) -> tuple[int, str, str]:
    from fusioncast.flows.cli import main

    capfd.readouterr()
    status = main(args)
    out, err = capfd.readouterr()
    return status, out, err


def error_line(err: str) -> str:
    """The one line the command line printed for the user; there is no traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("fusioncast: error:")]
    assert len(lines) == 1, err
    return lines[0]


def listed(out: str) -> dict[str, str]:
    """Each line of ``models list`` by its first word (the version, or the staging folder)."""
    return {line[2:].split()[0]: line for line in out.splitlines() if line.strip()}


# -- a damaged registry --------------------------------------------------------------------------


def test_a_truncated_pointer_is_reported_and_promote_repairs_it(copy, capfd):
    trained = copy.trained
    damaged = copy.pointer.read_bytes()[:40]
    copy.pointer.write_bytes(damaged)
    before = copy.digests()

    status, out, err = fusioncast(capfd, copy.args("list"))
    assert status == 2
    lines = listed(out)
    assert set(lines) == {trained.first, trained.second}
    assert all(line.startswith("  ") and line.endswith("  ok") for line in lines.values())
    line = error_line(err)
    assert f"{copy.pointer}: not valid JSON" in line
    assert "`fusioncast models promote VERSION`" in line

    status, _, err = fusioncast(capfd, copy.args("forecast"))
    assert status == 2
    line = error_line(err)
    assert str(copy.pointer) in line and "fusioncast models promote" in line

    status, _, err = fusioncast(capfd, copy.args("rollback"))
    assert status == 2
    line = error_line(err)
    assert line.startswith("fusioncast: error: cannot roll back:") and "models promote" in line
    assert copy.digests() == before

    status, out, err = fusioncast(capfd, copy.args("promote", trained.first))
    assert status == 0, err
    kept = list(copy.models.glob("champion.json.damaged-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == damaged
    assert f"kept as {kept[0]}" in out
    assert ModelRegistry(copy.models).check_champion() == trained.first

    status, out, _ = fusioncast(capfd, copy.args("list"))
    assert status == 0 and listed(out)[trained.first].startswith("* ")
    status, _, err = fusioncast(capfd, copy.args("forecast"))
    assert status == 0, err


def test_the_registry_uses_nothing_outside_its_folder(copy, capfd, tmp_path):
    """Versions named by a path, a version folder that links out, a pointer naming either, and a
    model file that links out (same bytes, so its hash matches): refused, nothing published."""
    trained = copy.trained
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(copy.models / trained.first, elsewhere / trained.first)
    linked = copy.models / "20300101T000000Z-linked"
    linked.symlink_to(elsewhere / trained.first, target_is_directory=True)
    relative = f"../../elsewhere/{trained.first}"
    before = copy.digests()

    for version, message in [
        (relative, f"model version {relative!r} is a path"),
        (str(elsewhere / trained.first), "is a path; a version is the name of a folder in"),
        (linked.name, f"model version {linked.name}: its folder is a link to {elsewhere}"),
    ]:
        status, _, err = fusioncast(capfd, copy.args("promote", version))
        assert status == 2 and message in error_line(err), err
    status, out, _ = fusioncast(capfd, copy.args("list"))
    assert "outside the registry" in listed(out)[linked.name]
    assert copy.digests() == before

    original = copy.pointer.read_bytes()
    pointer = json.loads(original)
    for version in (relative, str(elsewhere / trained.first), linked.name):
        copy.pointer.write_text(json.dumps(pointer | {"model_version": version}))
        status, _, err = fusioncast(capfd, copy.args("forecast"))
        assert status == 2 and str(copy.pointer) in error_line(err), err
    copy.pointer.write_bytes(original)
    assert copy.digests() == before

    [model_file] = [p for p in (copy.models / trained.second).iterdir() if p.suffix == ".keras"]
    outside_copy = elsewhere / model_file.name
    shutil.copyfile(model_file, outside_copy)
    model_file.unlink()
    model_file.symlink_to(outside_copy)
    before = copy.digests()
    status, _, err = fusioncast(capfd, copy.args("forecast"))
    line = error_line(err)
    assert status == 2 and f"file {model_file.name} is a link to {outside_copy}" in line, err
    assert copy.digests() == before


def test_damaged_versions_are_listed_as_such_and_cannot_be_promoted(copy, capfd):
    trained = copy.trained
    metrics = copy.models / trained.first / "metrics.parquet"
    metrics.write_bytes(metrics.read_bytes()[:100])
    unreadable_manifest = copy.models / "20200101T000000Z-aaaaaa"
    shutil.copytree(copy.models / trained.second, unreadable_manifest)
    (unreadable_manifest / "manifest.json").write_text('{"version": 1, "files": {')
    no_manifest = copy.models / "20200101T000000Z-bbbbbb"
    no_manifest.mkdir()
    (copy.models / ".staging-20200101T000000Z-cccccc").mkdir()
    before = copy.digests()

    status, out, err = fusioncast(capfd, copy.args("list"))
    assert status == 0, err  # the champion is sound: listing is all there is to do
    lines = listed(out)
    assert lines[trained.second].startswith("* ") and lines[trained.second].endswith("  ok")
    assert lines[trained.first].endswith(
        "damaged: file metrics.parquet does not match its manifest hash (modified or corrupt)"
    )
    assert lines[unreadable_manifest.name].endswith("damaged: manifest.json unreadable")
    assert "damaged: manifest.json missing" in lines[no_manifest.name]
    assert "unfinished" in lines[".staging-20200101T000000Z-cccccc"]

    for version in (trained.first, unreadable_manifest.name):
        status, _, err = fusioncast(capfd, copy.args("promote", version))
        assert status == 2
        assert f"model version {version}: " in error_line(err)
    assert copy.digests() == before

    # A metrics file that matches its manifest but cannot be read (written corrupt).
    manifest_path = copy.models / trained.first / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["metrics.parquet"] = sha256(metrics)
    manifest_path.write_text(json.dumps(manifest))
    status, out, _ = fusioncast(capfd, copy.args("list"))
    assert status == 0
    assert listed(out)[trained.first].endswith("damaged: metrics.parquet unreadable")


def test_a_pointer_naming_a_removed_version_stops_retrain_before_it_registers(copy, capfd):
    trained = copy.trained
    shutil.rmtree(copy.models / trained.second)
    before = copy.digests()
    reports = sorted((copy.out / "reports").iterdir())

    status, out, err = fusioncast(capfd, copy.args("list"))
    assert status == 2
    assert set(listed(out)) == {trained.first}
    line = error_line(err)
    assert f"names model version {trained.second}, which is not in {copy.models}" in line
    assert "`fusioncast models rollback`" in line

    status, _, err = fusioncast(capfd, copy.args("retrain"))
    assert status == 2
    assert f"names model version {trained.second}" in error_line(err)
    assert copy.digests() == before  # no version registered, nothing published
    assert sorted((copy.out / "reports").iterdir()) == reports  # stopped before validating

    status, _, err = fusioncast(capfd, copy.args("forecast"))
    assert status == 2 and f"names model version {trained.second}" in error_line(err)

    status, out, err = fusioncast(capfd, copy.args("rollback"))
    assert status == 0, err
    assert out.strip() == f"champion: {trained.first}"
    assert ModelRegistry(copy.models).check_champion() == trained.first


# -- disks that refuse writes --------------------------------------------------------------------


def assert_refused(capfd, copy: Copy, args: list[str], path: Path, cause: str) -> None:
    before = copy.digests()
    status, _, err = fusioncast(capfd, args)
    assert status == 2
    line = error_line(err)
    assert re.match(f"fusioncast: error: cannot (use|write) {re.escape(str(path))}", line), line
    assert line.endswith(f": {cause}")
    assert copy.digests() == before


def test_a_read_only_workspace_is_named_in_one_line(trained, tmp_path, capfd):
    with tmpfs(tmp_path / "ro", "64m") as mountpoint:
        shutil.copytree(trained.root / "out", mountpoint / "out")
        remount_read_only(mountpoint)
        copy = Copy(mountpoint / "out", trained)
        assert_refused(
            capfd, copy, copy.args("forecast"), copy.out / "reports", "Read-only file system"
        )
        before = copy.digests()
        status, _, err = fusioncast(capfd, copy.args("promote", trained.first))
        assert status == 2
        assert error_line(err).endswith(f"{copy.models / '.lock'}: Read-only file system")
        assert copy.digests() == before


def test_a_full_disk_while_publishing_is_named_in_one_line(copy, capfd):
    forecasts = copy.out / "forecasts"
    published = forecasts.with_name("published")
    forecasts.rename(published)
    with tmpfs(forecasts, "1m"):
        shutil.copytree(published, forecasts, dirs_exist_ok=True)
        fill(forecasts)
        assert_refused(capfd, copy, copy.args("forecast"), forecasts, "No space left on device")
        assert not list((forecasts / ".staging").glob("*.tmp"))


def test_a_full_disk_while_registering_is_named_in_one_line(copy, capfd):
    saved = copy.models.with_name("saved-models")
    copy.models.rename(saved)
    with tmpfs(copy.models, "4m"):
        shutil.copytree(saved, copy.models, dirs_exist_ok=True)
        fill(copy.models)
        args = copy.args("retrain")
        assert_refused(capfd, copy, args, copy.models / ".staging-", "No space left on device")
        assert not ModelRegistry(copy.models).unfinished()
