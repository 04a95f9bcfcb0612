#!/usr/bin/env bash
# One machine, everything Prefect: a Prefect server with its UI, the deployments of
# deployments/prefect.yaml, and a process worker that runs them from this checkout.
# Runs in the foreground; Ctrl-C (or SIGTERM) stops the worker and the server.
#
# Environment (all optional):
#   PREFECT_SERVER_API_HOST / PREFECT_SERVER_API_PORT   where the server listens (127.0.0.1:4200)
#   PREFECT_SERVER_DATABASE_CONNECTION_URL              the server's database; unset: SQLite under
#       PREFECT_HOME. Production: postgresql+asyncpg://USER:PASSWORD@HOST:5432/DATABASE
#   PREFECT_HOME                                        Prefect's local state (~/.prefect)
#   FUSIONCAST_TIMEZONE                                 time zone of the cron schedules (UTC)
#   FUSIONCAST_PROJECT_DIR                              checkout the worker runs flows from (this one)
#   FUSIONCAST_NOTIFY_URL / FUSIONCAST_NOTIFY_BLOCK     register the failure notification
#   FUSIONCAST_SECRET_ENV                               runs' credentials from Secret blocks (pool.py)
#   PREFECT_SERVER_API_AUTH_STRING                      "user:password" for the UI and the API; the
#       worker and the scripts get it as PREFECT_API_AUTH_STRING. Set it beyond a laptop
#       (docs/security.md)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${FUSIONCAST_BIN:-$ROOT/.venv/bin}"
HOST="${PREFECT_SERVER_API_HOST:-127.0.0.1}"
PORT="${PREFECT_SERVER_API_PORT:-4200}"
export PREFECT_API_URL="http://$HOST:$PORT/api"
export PREFECT_UI_API_URL="${PREFECT_UI_API_URL:-$PREFECT_API_URL}"
# With a server auth string, the worker, the deploy scripts and the CLI send the same one.
if [ -n "${PREFECT_SERVER_API_AUTH_STRING:-}" ]; then
  export PREFECT_API_AUTH_STRING="${PREFECT_API_AUTH_STRING:-$PREFECT_SERVER_API_AUTH_STRING}"
  AUTH="on: log in to the UI, and set PREFECT_API_AUTH_STRING for clients, with the server's auth string"
else
  AUTH="off (anyone who reaches $HOST:$PORT can use the API): set PREFECT_SERVER_API_AUTH_STRING beyond a laptop"
fi
export PREFECT_SERVER_ANALYTICS_ENABLED="${PREFECT_SERVER_ANALYTICS_ENABLED:-false}"
export FUSIONCAST_PROJECT_DIR="${FUSIONCAST_PROJECT_DIR:-$ROOT}"
export FUSIONCAST_TIMEZONE="${FUSIONCAST_TIMEZONE:-UTC}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

children=()
stop() {
  trap - EXIT INT TERM
  if [ "${#children[@]}" -gt 0 ]; then
    echo "prefect-local: stopping worker and server" >&2
    kill -TERM "${children[@]}" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "${children[@]}" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "${children[@]}" 2>/dev/null || true
  fi
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "prefect-local: starting the Prefect server on $HOST:$PORT" >&2
"$BIN/prefect" server start --host "$HOST" --port "$PORT" &
children+=("$!")
"$BIN/prefect" server status --wait --timeout "${FUSIONCAST_SERVER_TIMEOUT:-120}" >/dev/null

"$ROOT/scripts/deploy.sh"

echo "prefect-local: starting a worker on the 'fusioncast' process work pool" >&2
"$BIN/prefect" worker start --pool fusioncast --type process &
children+=("$!")

cat >&2 <<MSG
prefect-local: ready
  Prefect UI:   http://$HOST:$PORT
  API:          $PREFECT_API_URL
  API auth:     $AUTH
  deployments:  retrain/retrain-weekly (weekly), forecast/forecast-daily (daily), backtest/backtest (by hand); crons in $FUSIONCAST_TIMEZONE
  run one now:  PREFECT_API_URL=$PREFECT_API_URL $BIN/prefect deployment run retrain/retrain-weekly
                (or the Run button of the deployment in the UI)
Ctrl-C stops the worker and the server.
MSG

# Stop everything as soon as either the server or the worker ends.
wait -n
