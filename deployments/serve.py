"""Serve the retrain and forecast flows from one process, on cron schedules, and the backtest flow
to start by hand (no pool, no worker).

The single-machine alternative to deployments/prefect.yaml: the same deployment names, schedules and
concurrency limits, but the flows run inside this process. Use one or the other on a server, not
both (serving replaces the worker-based deployments of the same name). Run it from the repository
root against a real Prefect server (``PREFECT_API_URL`` set; the temporary server cannot schedule):

    PREFECT_API_URL=http://127.0.0.1:4200/api FUSIONCAST_TIMEZONE=Europe/Paris make serve

Environment: ``FUSIONCAST_TIMEZONE`` (default UTC), ``FUSIONCAST_RETRAIN_CRON`` (default
``0 3 * * 1``, Mondays 03:00), ``FUSIONCAST_FORECAST_CRON`` (default ``0 5 * * *``, daily 05:00).
Parameters default to the demo data under the working directory; override them per run from the
Prefect UI's run form (values outside their bounds are refused before a run starts).
"""

from __future__ import annotations

import os

from prefect import serve
from prefect.schedules import Cron

from fusioncast.flows.backtest import backtest
from fusioncast.flows.forecast import forecast_flow
from fusioncast.flows.retrain import retrain

RETRAIN_CRON = "0 3 * * 1"
FORECAST_CRON = "0 5 * * *"


def deployments():
    """The deployments, as ``prefect.serve`` takes them."""
    timezone = os.environ.get("FUSIONCAST_TIMEZONE", "UTC")
    return [
        retrain.to_deployment(
            name="retrain-weekly",
            schedule=Cron(
                os.environ.get("FUSIONCAST_RETRAIN_CRON", RETRAIN_CRON), timezone=timezone
            ),
            concurrency_limit=1,
            tags=["fusioncast", "retrain"],
        ),
        forecast_flow.to_deployment(
            name="forecast-daily",
            schedule=Cron(
                os.environ.get("FUSIONCAST_FORECAST_CRON", FORECAST_CRON), timezone=timezone
            ),
            concurrency_limit=1,
            tags=["fusioncast", "forecast"],
        ),
        backtest.to_deployment(
            name="backtest", concurrency_limit=1, tags=["fusioncast", "backtest"]
        ),
    ]


def main() -> None:
    serve(*deployments())


if __name__ == "__main__":
    main()
