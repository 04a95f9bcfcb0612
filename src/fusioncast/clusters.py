"""Whether a Dask scheduler can be reached: one check and one error, for the command line (before
Prefect starts) and for the flows (when they start their task runner, ``flows/runners.py``)."""

from __future__ import annotations

from fusioncast.config import TaskRunnerConfig
from fusioncast.errors import ConfigError


def check_scheduler(config: TaskRunnerConfig) -> None:
    """Raise :func:`unreachable`'s error when the Dask scheduler ``config`` names cannot be
    reached within Dask's ``distributed.comm.timeouts.connect``: one connection, opened and
    closed. Other runners pass."""
    if config.kind != "dask":
        return
    import asyncio

    import dask
    from distributed.comm import connect

    async def probe() -> None:
        timeout = dask.config.get("distributed.comm.timeouts.connect")
        comm = await connect(config.address, timeout=timeout)
        await comm.close()

    try:
        asyncio.run(probe())
    except (OSError, TimeoutError) as error:
        raise unreachable(config, error) from None


def unreachable(config: TaskRunnerConfig, error: Exception) -> ConfigError:
    """The error of a run whose Dask scheduler (or local cluster) cannot be reached."""
    where = f"the Dask scheduler at {config.address}" if config.address else "Dask"
    return ConfigError(f"task_runner {config.kind}: cannot reach {where}: {error}")
