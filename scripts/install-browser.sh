#!/usr/bin/env bash
# Install what the browser check of the Prefect UI (tests/test_ui.py) needs: Debian's `chromium`
# package and the `playwright-core` npm package (in tests/ui/node_modules) that drives it.
# Idempotent: returns at once when both are there. Exit status 3 when they cannot be installed
# (no root, no apt-get, no npm or no network); the browser test then skips with this message.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CHROMIUM="${FUSIONCAST_CHROMIUM:-/usr/bin/chromium}"

if [ ! -x "$CHROMIUM" ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: $CHROMIUM is missing and there is no apt-get to install it" >&2
    exit 3
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-browser: $CHROMIUM is missing; installing Debian's chromium needs root" \
      "(run: sudo apt-get install chromium)" >&2
    exit 3
  fi
  echo "install-browser: installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    if ! apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
      echo "install-browser: apt-get could not install chromium (no network?)" >&2
      exit 3
    fi
  fi
fi

if [ ! -f "$ROOT/tests/ui/node_modules/playwright-core/package.json" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "install-browser: npm is missing (install Node.js 18+ and npm)" >&2
    exit 3
  fi
  echo "install-browser: installing playwright-core into tests/ui/node_modules" >&2
  if ! npm ci --prefix "$ROOT/tests/ui" --no-audit --no-fund --loglevel=error >/dev/null; then
    echo "install-browser: npm could not install playwright-core (no network?)" >&2
    exit 3
  fi
fi
echo "$CHROMIUM"
