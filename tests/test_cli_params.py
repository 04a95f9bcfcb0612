"""The ``--params`` file and the command line's flags: bad files are one clear line, and a flag
never loses silently to the file (nor the file to a flag)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fusioncast.demo import write_demo_dataset


def _error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("fusioncast: ")]
    assert len(lines) == 1, err
    return lines[0]


BAD_FILES = {
    "invalid_json": (b'{"training": {"epochs": 3,}}', "is not valid JSON"),
    "empty": (b"", "is empty; it must hold a JSON object"),
    "only_whitespace": (b" \n", "is empty; it must hold a JSON object"),
    "json_list": (b'[{"training": {}}]', "holds a JSON array; it must hold an object"),
    "json_string": (b'"retrain"', "holds a JSON string; it must hold an object"),
    "latin1": ('{"data_path": "caf\u00e9"}'.encode("latin-1"), "is not UTF-8 text"),
}


@pytest.mark.parametrize("command", ["retrain", "forecast", "backtest", "select", "quickstart"])
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_params_file_is_one_line_naming_the_file(case, command, tmp_path, capfd):
    from fusioncast.flows.cli import main

    content, message = BAD_FILES[case]
    params = tmp_path / "params.json"
    params.write_bytes(content)
    workdir = tmp_path / "out"
    status = main([command, "--workdir", str(workdir), "--params", str(params)])
    line = _error_line(capfd.readouterr().err)
    assert status == 2
    assert f"--params file {params} {message}" in line
    assert not workdir.exists()  # nothing written


def test_a_missing_params_file_is_named(tmp_path, capfd):
    from fusioncast.flows.cli import main

    params = tmp_path / "nowhere.json"
    assert main(["retrain", "--workdir", str(tmp_path / "out"), "--params", str(params)]) == 2
    assert f"--params file {params} does not exist" in _error_line(capfd.readouterr().err)


def test_a_params_file_with_a_byte_order_mark_is_read(tmp_path, capfd):
    """Editors on Windows save UTF-8 with a BOM: the file is read, not refused."""
    from fusioncast.flows.cli import main

    params = tmp_path / "params.json"
    params.write_bytes(b"\xef\xbb\xbf" + json.dumps({"validation": {"policy": "oops"}}).encode())
    assert main(["forecast", "--workdir", str(tmp_path / "out"), "--params", str(params)]) == 2
    # It got as far as checking the file's content: the BOM did not stop the JSON parser.
    assert "validation.policy" in _error_line(capfd.readouterr().err)


@pytest.mark.parametrize(
    ("flag", "value", "payload", "field"),
    [
        ("--workdir", "A", {"workspace": {"root": "B"}}, "workspace.root"),
        ("--data", "X", {"data_path": "Y"}, "data_path"),
        ("--epochs", "3", {"training": {"epochs": 5}}, "training.epochs"),
    ],
)
def test_a_flag_that_contradicts_the_params_file_is_refused(
    flag, value, payload, field, tmp_path, capfd, monkeypatch
):
    from fusioncast.flows.cli import main

    monkeypatch.chdir(tmp_path)
    params = tmp_path / "params.json"
    params.write_text(json.dumps(payload))
    assert main(["retrain", flag, value, "--params", str(params)]) == 2
    line = _error_line(capfd.readouterr().err)
    assert f"the command line gives {field} = " in line and f"but {params} sets" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.json"]  # nothing written


@pytest.mark.slow
@pytest.mark.parametrize("agree", [True, False])
def test_the_params_file_is_used_where_no_flag_contradicts_it(agree, tmp_path, prefect_server):
    """The forecast command reads the file's workspace when ``--workdir`` is left out or agrees;
    the error names the workspace it looked in. (A real process: it runs the flow, on the
    session's Prefect server.)"""
    from prefect.settings import PREFECT_API_URL

    data = write_demo_dataset(tmp_path / "data.parquet", n_stores=1, n_categories=1, n_days=30)
    from_file = tmp_path / "from-file"
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"workspace": {"root": str(from_file)}, "data_path": str(data)}))
    flags = ["--workdir", str(from_file)] if agree else []
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"))
    env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    done = subprocess.run(
        [sys.executable, "-m", "fusioncast.flows.cli", "forecast", *flags, "--params", str(params)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    line = _error_line(done.stderr)
    assert f"no champion model in {Path(from_file) / 'models'}" in line


def test_model_version_is_a_forecast_flag_only(tmp_path, capfd):
    from fusioncast.flows.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["retrain", "--workdir", str(tmp_path), "--model-version", "v1"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --model-version" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--task-runner", "dask"], "task_runner: Value error, task_runner.address is required"),
        (["--dask-address", "tcp://127.0.0.1:8786"], "task_runner.address is required with"),
    ],
    ids=["dask_without_address", "address_without_dask"],
)
@pytest.mark.parametrize("command", ["backtest", "select", "forecast"])
def test_a_task_runner_without_its_address_is_refused_before_any_run(
    command, flags, message, tmp_path, capfd
):
    from fusioncast.flows.cli import main

    workdir = tmp_path / "out"
    status = main([command, "--workdir", str(workdir), *flags])
    line = _error_line(capfd.readouterr().err)
    assert status == 2
    assert line.startswith("fusioncast: invalid parameters:") and message in line, line
    assert not workdir.exists()


def test_forecast_shards_are_counted_from_one(tmp_path, capfd):
    from fusioncast.flows.cli import main

    workdir = tmp_path / "out"
    status = main(["forecast", "--workdir", str(workdir), "--shards", "0"])
    line = _error_line(capfd.readouterr().err)
    assert status == 2 and "shards: Input should be greater than or equal to 1" in line, line
    assert not workdir.exists()
