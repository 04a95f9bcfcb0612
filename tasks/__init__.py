"""Prefect tasks: thin wrappers that add retries, logs and artifacts around ``fusioncast``.

Importing this package makes Prefect's run logs drop the traceback of a run that failed on
something the user must fix (bad data or parameters, a workspace that cannot be written): the log
keeps the one-line message, as the run's state does, without the stack of the pipeline.
"""

from __future__ import annotations

import logging

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
