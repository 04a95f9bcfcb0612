"""The command line's own cost: ``--help``, an argument error, and ``forecast`` on the demo against
the same forecast at the library level plus the start of Prefect's temporary server.

In a temporary directory: the demo dataset (default size) and a champion of the default model
trained for a few steps (``fusioncast retrain``; its accuracy does not matter here). Then, each
``--repeats`` times in fresh processes (medians printed):

- ``fusioncast --help`` and ``fusioncast forecast --no-such-option`` (an argument error);
- ``fusioncast forecast`` on the demo (the forecast flow under the temporary server, with the
  ``PREFECT_HOME`` the retrain created, as a second run of ``make forecast`` has);
- the library: a Python process that loads the champion, validates the demo, predicts and
  publishes (:mod:`fusioncast` only, no Prefect);
- the temporary server: a Python process that imports Prefect, starts its temporary server
  (``SubprocessASGIServer``, what a flow run without ``PREFECT_API_URL`` starts) and stops it.

Target (issue 17): ``--help`` under 2 s; ``forecast`` at most the library's time plus the server's.

    python benchmarks/cli.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
LIBRARY = """
import sys
import pandas as pd
from fusioncast.parameters import Workspace
from fusioncast.publish import publish_forecasts
from fusioncast.registry import ModelRegistry
from fusioncast.validation import validate_dataset

data, workdir = sys.argv[1], sys.argv[2]
workspace = Workspace(root=workdir)
forecaster = ModelRegistry(workspace.models).load(None, workspace.path)
frame, report = validate_dataset(
    data, forecaster.contract, min_length=forecaster.config.lookback,
    report_dir=workspace.reports("library"),
)
out = forecaster.predict(
    frame, freq=report.freq, run_id="library", created_at=pd.Timestamp.now(tz="UTC"),
    timezone=report.timezone,
)
publish_forecasts(out, workspace.forecasts, run_id="library")
"""
SERVER = """
from prefect.server.api.server import SubprocessASGIServer
server = SubprocessASGIServer()
server.start(timeout=120)
server.stop()
"""


def timed(command: list[str], env: dict[str, str], expect: int = 0) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != expect:
        sys.exit(f"{' '.join(command[:3])}... exited {done.returncode}:\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cli = str(BIN / "fusioncast")
    with tempfile.TemporaryDirectory(prefix="fusioncast-cli-") as tmp:
        root = Path(tmp)
        env = {
            **os.environ,
            "PREFECT_HOME": str(root / "prefect-home"),
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        env.pop("PREFECT_API_URL", None)
        data, workdir = str(root / "demo"), str(root / "out")
        params = root / "params.json"
        params.write_text(
            json.dumps(
                {
                    "training": {"epochs": 1, "steps_per_epoch": 5},
                    "promotion": {"best_baseline_margin": None},
                }
            )
        )
        timed([cli, "demo", "--out", data], env)
        seconds = timed(
            [cli, "retrain", "--data", data, "--workdir", workdir, "--params", str(params)], env
        )
        print(f"set-up: demo data and a champion in {seconds:.0f} s", flush=True)
        commands = {
            "fusioncast --help": ([cli, "--help"], 0),
            "argument error": ([cli, "forecast", "--no-such-option"], 2),
            "fusioncast forecast": ([cli, "forecast", "--data", data, "--workdir", workdir], 0),
            "library forecast": ([sys.executable, "-c", LIBRARY, data, workdir], 0),
            "temporary server start": ([sys.executable, "-c", SERVER], 0),
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):  # interleaved: the machine's load falls on each alike
            for name, (command, code) in commands.items():
                times[name].append(timed(command, env, code))
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n| command | median s ({args.repeats} runs) | runs |")
    print("|---|---|---|")
    for name, values in times.items():
        runs = ", ".join(f"{v:.1f}" for v in values)
        print(f"| {name} | {median[name]:.2f} | {runs} |")
    bound = median["library forecast"] + median["temporary server start"]
    print(
        f"\nTargets (issue 17): --help {median['fusioncast --help']:.2f} s (target < 2 s); "
        f"forecast {median['fusioncast forecast']:.1f} s against library + server "
        f"{bound:.1f} s = {median['fusioncast forecast'] / bound:.2f}x (target <= 1)"
    )
    print(f"{os.cpu_count()} CPU(s); python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
