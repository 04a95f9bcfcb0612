"""Every command against broken environments: missing, unreadable, read-only and full.

Each case runs the real command line against a real trained workspace (or a copy of it on a real
file system: a read-only or a full ``tmpfs`` mount) and asserts what a user depends on: exit status
2, one line that says what to fix (the path and the cause, or the rule), no traceback, and nothing
under ``models/`` or ``forecasts/`` changed. Mounting needs root (as the CI runs); elsewhere the
read-only and full cases are skipped, saying why.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from disks import fill, remount_read_only, tmpfs, tree_digest

from fusioncast.demo import write_demo_dataset
from fusioncast.registry import ModelRegistry

pytestmark = pytest.mark.slow

TRAINING = {"epochs": 1, "batch_size": 64, "steps_per_epoch": 2, "patience": 1}
# A model trained for seconds need not come near the statistical peers to be published.
PROMOTION = {"best_baseline_margin": None}
READ_ONLY_CAUSE = "Read-only file system"
FULL_CAUSE = "No space left on device"


@dataclass
class Trained:
    root: Path
    data: Path
    workdir: Path
    params: Path


@pytest.fixture(scope="module")
def trained(prefect_server, tmp_path_factory, tiny_model_settings) -> Trained:
    """A workspace with two registered versions and a champion history (so rollback has work)."""
    from fusioncast.flows.cli import main

    root = tmp_path_factory.mktemp("environments")
    data = write_demo_dataset(root / "data.parquet", n_stores=1, n_categories=2, n_days=100)
    params = root / "params.json"  # what every command of the tests reads
    params.write_text(json.dumps({"model": tiny_model_settings, "training": TRAINING}))
    first_run = root / "first.json"
    first_run.write_text(
        json.dumps({"model": tiny_model_settings, "training": TRAINING, "promotion": PROMOTION})
    )
    workdir = root / "out"
    args = ["--data", str(data), "--workdir", str(workdir), "--params", str(first_run)]
    assert main(["retrain", *args]) == 0
    registry = ModelRegistry(workdir / "models")
    first = registry.champion()
    # A second complete version (an identical copy under its own name) made champion: the pointer
    # then has a previous champion to roll back to.
    second = f"{first[:-6]}zzzzzz"
    shutil.copytree(registry.root / first, registry.root / second)
    registry.promote(second, reason="second champion")
    return Trained(root, data, workdir, params)


def _state(workdir: Path) -> tuple[dict[str, str], dict[str, str]]:
    return tree_digest(workdir / "models"), tree_digest(workdir / "forecasts")


def _run(argv: list[str], capfd) -> tuple[int, str]:
    from fusioncast.flows.cli import main

    capfd.readouterr()
    status = main(argv)
    captured = capfd.readouterr()
    return status, captured.out + captured.err


def _error_line(output: str) -> str:
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("fusioncast: ")]
    assert len(lines) == 1, output
    return lines[0]


def _commands(t: Trained, workdir: Path, data: Path) -> dict[str, list[str]]:
    """Each command, pointed at ``workdir`` and ``data``."""
    with_data = ["--data", str(data), "--workdir", str(workdir), "--params", str(t.params)]
    version = ModelRegistry(t.workdir / "models").versions()[0]
    return {
        "retrain": ["retrain", *with_data],
        "forecast": ["forecast", "--data", str(data), "--workdir", str(workdir)],
        "backtest": ["backtest", *with_data, "--folds", "2"],
        "quickstart": ["quickstart", *with_data],
        "models list": ["models", "list", "--workdir", str(workdir)],
        "models promote": ["models", "promote", version, "--workdir", str(workdir)],
        "models rollback": ["models", "rollback", "--workdir", str(workdir)],
        "demo": ["demo", "--out", str(workdir / "demo"), "--days", "60"],
    }


def _assert_refused(t: Trained, argv: list[str], capfd, *expected: str) -> str:
    before = _state(t.workdir)
    status, output = _run(argv, capfd)
    line = _error_line(output)
    assert status == 2, output
    for text in expected:
        assert text in line, line
    assert _state(t.workdir) == before
    return line


# -- missing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["retrain", "forecast", "backtest"])
def test_missing_data_is_named(command, trained, tmp_path, capfd):
    data = tmp_path / "no-such-data.parquet"
    argv = _commands(trained, trained.workdir, data)[command]
    _assert_refused(trained, argv, capfd, str(data))


@pytest.mark.parametrize(
    "command", ["forecast", "models list", "models promote", "models rollback"]
)
def test_a_missing_workspace_is_named(command, trained, tmp_path, capfd):
    workdir = tmp_path / "no-such-workspace"
    argv = _commands(trained, workdir, trained.data)[command]
    _assert_refused(trained, argv, capfd, str(workdir))
    assert not workdir.exists()


# -- unreadable ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["retrain", "forecast", "backtest"])
def test_data_that_is_not_parquet_is_a_rule(command, trained, tmp_path, capfd):
    data = tmp_path / "data.parquet"
    data.write_text("series_id,date,units_sold\nS01,2023-01-01,3\n")  # a CSV under a Parquet name
    argv = _commands(trained, trained.workdir, data)[command]
    _assert_refused(trained, argv, capfd, "rule 'parquet_readable'")


@pytest.mark.parametrize(
    "command",
    ["retrain", "forecast", "backtest", "quickstart", "models promote", "models rollback", "demo"],
)
def test_a_workspace_that_is_a_file_is_named(command, trained, tmp_path, capfd):
    workdir = tmp_path / "a-file"
    workdir.write_text("not a directory")
    data = workdir / "data" if command == "quickstart" else trained.data
    argv = _commands(trained, workdir, data)[command]
    _assert_refused(trained, argv, capfd, str(workdir))
    assert workdir.read_text() == "not a directory"


# -- read-only and full ----------------------------------------------------------------------------


@pytest.fixture(params=["read_only", "full"])
def unwritable(request, trained, tmp_path) -> Iterator[tuple[str, Path]]:
    """A copy of the trained workspace on a file system that is read-only, or has no space left."""
    with tmpfs(tmp_path / "mnt", "64m") as mountpoint:
        shutil.copytree(trained.workdir, mountpoint / "out")
        if request.param == "read_only":
            remount_read_only(mountpoint)
        else:
            fill(mountpoint)
        yield request.param, mountpoint


WRITERS = ["retrain", "forecast", "backtest", "quickstart", "models promote", "models rollback"]
CAUSES = {"read_only": READ_ONLY_CAUSE, "full": FULL_CAUSE}


@pytest.mark.parametrize("command", [*WRITERS, "demo"])
def test_a_workspace_that_cannot_be_written_is_named_with_its_cause(
    command, trained, unwritable, capfd
):
    environment, mountpoint = unwritable
    workdir = mountpoint / "out"
    data = workdir / "data" if command == "quickstart" else trained.data
    before = _state(workdir)
    argv = _commands(trained, workdir, data)[command]
    line = _assert_refused(trained, argv, capfd, str(mountpoint), CAUSES[environment])
    assert line.startswith("fusioncast: error: cannot ")
    assert _state(workdir) == before


def test_models_list_reads_a_workspace_it_cannot_write(trained, unwritable, capfd):
    """Listing only reads: it works on a read-only or full disk."""
    _, mountpoint = unwritable
    status, output = _run(["models", "list", "--workdir", str(mountpoint / "out")], capfd)
    assert status == 0, output
    versions = ModelRegistry(trained.workdir / "models").versions()
    assert all(version in output for version in versions)
    assert "Traceback" not in output
