"""Prefect tasks: thin wrappers that add retries, logs and artifacts around ``fusioncast``.

Importing this package makes Prefect's run logs drop the traceback of a run that failed on
something the user must fix (bad data or parameters, a workspace that cannot be written): the log
keeps the one-line message, as the run's state does, without the stack of the pipeline.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import task as prefect_task
from prefect.cache_policies import NO_CACHE

from fusioncast.errors import FusioncastError

#: Failures that are the user's or the environment's to fix, not crashes of the pipeline.
USER_FACING_ERRORS = (FusioncastError, OSError)


class _WithoutTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, USER_FACING_ERRORS):
            record.exc_info, record.exc_text = None, None
        return True


for _name in ("prefect.task_runs", "prefect.flow_runs"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _WithoutTraceback) for f in _logger.filters):
        _logger.addFilter(_WithoutTraceback())


def task(*args: Any, **kwargs: Any) -> Any:
    """``prefect.task`` without Prefect's default cache policy.

    That policy hashes every input of every call to key a cache that no run here reads (each run
    recomputes from its data): a validated frame is pickled and hashed each time it is handed to
    a task (0.9 s at 4 M rows, about ten times that and a copy of the frame in memory at 40 M).
    """
    kwargs.setdefault("cache_policy", NO_CACHE)
    return prefect_task(*args, **kwargs)
