"""Where a flow's fan-out runs: Prefect's process pool, or a Dask cluster through prefect-dask.

The flows submit the same tasks whatever the runner; ``task_runner`` in their parameters picks it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from prefect import Task
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner
from prefect.utilities.callables import get_call_parameters

from fusioncast.clusters import unreachable
from fusioncast.config import TaskRunnerConfig

R = TypeVar("R")


def fan_out(runner: TaskRunner, task: Task[..., R], calls: Sequence[tuple[Any, ...]]) -> list[R]:
    """Run ``task`` once per tuple of arguments in ``calls``, all at once on ``runner`` (see
    :func:`started`); their results in the order of ``calls`` (the first failure raises)."""
    futures = [
        runner.submit(task, get_call_parameters(task.fn, arguments, {})) for arguments in calls
    ]
    return [future.result() for future in futures]


@contextlib.contextmanager
def started(config: TaskRunnerConfig) -> Iterator[TaskRunner]:
    """The task runner ``config`` names, started (connected to its cluster, or the cluster
    started) for the body and stopped after it. A flow starts it first, so that a cluster it
    cannot reach stops the run before anything is written.

    Raises:
        ConfigError: the Dask scheduler cannot be reached (within Dask's
            ``distributed.comm.timeouts.connect``), or the cluster cannot start.
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(_api_for_workers())
        runner = _runner(config)
        try:
            stack.enter_context(runner)
            if config.kind != "process":
                runner.client  # noqa: B018  (connects, or starts the cluster, now)
        except (OSError, TimeoutError) as error:
            raise unreachable(config, error) from None
        yield runner


def _runner(config: TaskRunnerConfig) -> TaskRunner:
    if config.kind == "process":
        return ProcessPoolTaskRunner(max_workers=config.workers)
    from prefect_dask import DaskTaskRunner

    if config.kind == "dask":
        return DaskTaskRunner(address=config.address)
    # The local cluster's scheduler runs in this process. When it closes, it may still be
    # writing to a worker's closing comm, which distributed reports at INFO with a traceback
    # (dask/distributed#7192): noise on a run that succeeded. A worker lost during a run is
    # still reported: its nanny warns, and its tasks run again or fail.
    logging.getLogger("distributed.batched").setLevel(logging.WARNING)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": config.workers,
            "threads_per_worker": 1,  # one TensorFlow fit per process, as the process pool
            "processes": True,
            "host": "127.0.0.1",
            "dashboard_address": None,
        },
    )


@contextlib.contextmanager
def _api_for_workers() -> Iterator[None]:
    """A run on Prefect's temporary server names it in the settings it hands its tasks, so that
    the task runs of worker processes on this machine report to it (instead of each worker
    starting a temporary server of its own). With ``PREFECT_API_URL`` set, nothing changes:
    Dask workers on other machines need a server they can reach, named in their own
    environment too."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = SubprocessASGIServer()
    if PREFECT_API_URL.value() or not server.running:
        yield
        return
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield
