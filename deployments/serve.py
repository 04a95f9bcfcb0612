"""Serve the retrain and forecast flows from one process, on cron schedules.

Run against a real Prefect server (``PREFECT_API_URL`` set); the temporary server does not schedule.
Parameters default to the demo data; override them per run from the Prefect UI.
"""

from __future__ import annotations

import os

from prefect import serve
from prefect.schedules import Cron

from flows.forecast import forecast_flow
from flows.retrain import retrain


def main() -> None:
    timezone = os.environ.get("FUSIONCAST_TIMEZONE", "UTC")
    serve(
        retrain.to_deployment(
            name="retrain-weekly",
            schedule=Cron(
                os.environ.get("FUSIONCAST_RETRAIN_CRON", "0 3 * * 1"), timezone=timezone
            ),
            concurrency_limit=1,
        ),
        forecast_flow.to_deployment(
            name="forecast-daily",
            schedule=Cron(
                os.environ.get("FUSIONCAST_FORECAST_CRON", "0 5 * * *"), timezone=timezone
            ),
            concurrency_limit=1,
        ),
    )


if __name__ == "__main__":
    main()
