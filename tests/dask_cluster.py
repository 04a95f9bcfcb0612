"""A real Dask cluster for the tests: a scheduler and two single-thread workers on 127.0.0.1,
each its own process (``dask scheduler`` / ``dask worker``), started and stopped by the test."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tiny_pipeline import child_env


@dataclass
class DaskCluster:
    address: str
    workers: list[subprocess.Popen]  # each a session of its own: the nanny and its worker
    logs: list[Path]


@contextlib.contextmanager
def dask_cluster_in(root: Path) -> Iterator[DaskCluster]:
    """A real Dask scheduler and two single-thread workers on 127.0.0.1, separate processes
    started and stopped here."""
    from distributed import Client

    dask = str(Path(sys.executable).parent / "dask")
    scheduler_file = root / "scheduler.json"
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
        + ["--scheduler-file", str(scheduler_file)],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "scheduler.log", "w"),  # noqa: SIM115  (closed with the process)
    )
    workers: list[subprocess.Popen] = []
    logs = [root / "worker-1.log", root / "worker-2.log"]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, (root / "scheduler.log").read_text()
            time.sleep(0.2)
        time.sleep(0.5)  # written whole, but give it its moment
        for number, log in enumerate(logs, 1):
            workers.append(
                subprocess.Popen(
                    [dask, "worker", "--scheduler-file", str(scheduler_file), "--no-dashboard"]
                    + ["--nworkers", "1", "--nthreads", "1", "--host", "127.0.0.1"]
                    + ["--name", f"worker-{number}"],
                    stdout=subprocess.DEVNULL,
                    stderr=open(log, "w"),  # noqa: SIM115
                    env=child_env(),
                    start_new_session=True,
                )
            )
        address = json.loads(scheduler_file.read_text())["address"]
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield DaskCluster(address, workers, logs)
    finally:
        for process in [*workers, scheduler]:
            process.terminate()
        for process in [*workers, scheduler]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def folds_run_by_each(cluster: DaskCluster) -> list[list[str]]:
    """The backtest folds each worker finished, from the workers' logs."""
    finished = re.compile(r"Task run '(backtest-fold-\d)' - Finished in state Completed")
    return [sorted(finished.findall(log.read_text())) for log in cluster.logs]


def scheduler_state(cluster: DaskCluster) -> str:
    """What the scheduler holds (workers, each task's state and where it runs) and the end of
    each worker's log: printed by a test whose run does not finish, so that its failure says
    where the work stopped."""
    from distributed import Client

    def tasks(dask_scheduler) -> dict:
        return {
            str(key): (task.state, str(task.processing_on), task.suspicious)
            for key, task in dask_scheduler.tasks.items()
        }

    with Client(cluster.address, timeout=20) as client:
        workers = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
        lines = [f"workers: {workers}", f"tasks: {client.run_on_scheduler(tasks)}"]
    for log in cluster.logs:
        lines += [f"--- end of {log.name}", *log.read_text().splitlines()[-15:]]
    return "\n".join(lines)
