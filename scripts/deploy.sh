#!/usr/bin/env bash
# Register fusioncast's deployments (deployments/prefect.yaml) on the Prefect server in
# PREFECT_API_URL: creates the `fusioncast` process work pool if it is missing, then deploys
# `retrain/retrain-weekly`, `forecast/forecast-daily` and `backtest/backtest`. With FUSIONCAST_NOTIFY_URL or
# FUSIONCAST_NOTIFY_BLOCK set, it also registers the failure-notification automation
# (deployments/automations.py).
#
# Environment: FUSIONCAST_TIMEZONE (time zone of both crons, default UTC), FUSIONCAST_PROJECT_DIR
# (the checkout the worker runs flows from, default this one: set it when the worker's checkout is
# elsewhere), FUSIONCAST_BIN (directory holding the prefect and python executables, default
# .venv/bin), FUSIONCAST_SECRET_ENV (VARIABLE=secret-block pairs: the runs' credentials, from
# Prefect Secret blocks, deployments/pool.py). With a server auth string, PREFECT_API_AUTH_STRING.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${FUSIONCAST_BIN:-$ROOT/.venv/bin}"
export FUSIONCAST_TIMEZONE="${FUSIONCAST_TIMEZONE:-UTC}"
export FUSIONCAST_PROJECT_DIR="${FUSIONCAST_PROJECT_DIR:-$ROOT}"
export PREFECT_SERVER_ANALYTICS_ENABLED="${PREFECT_SERVER_ANALYTICS_ENABLED:-false}"

if ! "$BIN/prefect" config view 2>/dev/null | grep -q '^PREFECT_API_URL='; then
  echo "deploy.sh: PREFECT_API_URL is not set: point it at the Prefect server's API" >&2
  echo "           (e.g. export PREFECT_API_URL=http://127.0.0.1:4200/api)" >&2
  exit 2
fi

cd "$ROOT"
if ! "$BIN/prefect" work-pool inspect fusioncast >/dev/null 2>&1; then
  "$BIN/prefect" work-pool create fusioncast --type process
fi
if [ -n "${FUSIONCAST_SECRET_ENV:-}" ]; then
  "$BIN/python" deployments/pool.py
fi
"$BIN/prefect" --no-prompt deploy --all --prefect-file deployments/prefect.yaml

if [ -n "${FUSIONCAST_NOTIFY_URL:-}${FUSIONCAST_NOTIFY_BLOCK:-}" ]; then
  "$BIN/python" deployments/automations.py
fi
