"""The Prefect UI, seen by a headless Chromium: the login prompt of the locked server, the
`retrain` deployment, its run form refusing an
out-of-range value, and the finished run's page with its `test-metrics` and `run-summary`
artifacts.

The browser is Debian's `chromium`, driven by `playwright-core` (tests/ui/check.mjs); both are
installed by scripts/install-browser.sh. Screenshots land in build/ui-screenshots/ (or
$FUSIONCAST_SCREENSHOTS), printed at the end of the test session. The Prefect stack and its
finished `retrain` run are the ones tests/test_deployments.py uses (tests/prefect_stack.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from prefect_stack import REPO, release_if_unused, shared_stack

pytestmark = pytest.mark.slow

UI_CHECK = REPO / "tests" / "ui"
SCREENSHOTS = Path(os.environ.get("FUSIONCAST_SCREENSHOTS") or REPO / "build" / "ui-screenshots")
STEPS = [
    "login",
    "deployments",
    "retrain-deployment",
    "run-form-refuses-bad-value",
    "flow-run",
    "run-artifacts",
    "metrics-artifact",
    "run-summary-artifact",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    """Install Chromium and playwright-core if they are missing (fast when present)."""
    if shutil.which("node") is None:
        pytest.skip("the browser check needs Node.js (node) on PATH")
    try:
        installed = subprocess.run(
            [str(REPO / "scripts" / "install-browser.sh")],
            capture_output=True,
            text=True,
            timeout=900,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("installing Chromium and playwright-core took over 15 minutes")
    if installed.returncode != 0:
        reason = installed.stderr.strip().splitlines()[-1:] or ["no reason given"]
        pytest.skip(f"no headless browser: {reason[0]}")
    return installed.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def stack(chromium, request):
    yield shared_stack(request)
    release_if_unused(request)


def _manual_runs(stack) -> list:
    with stack.client() as client:
        deployment = client.read_deployment_by_name("retrain/retrain-weekly")
        runs = client.read_flow_runs(limit=200)
    return [r for r in runs if r.deployment_id == deployment.id and not r.auto_scheduled]


def test_prefect_ui_shows_the_retrain_deployment_and_the_runs_metrics_artifact(
    chromium, stack, record_property
):
    run = stack.retrain_run()
    assert run.state.is_completed(), f"{run.state!r}\n{stack.log()[-4000:]}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    record_property("screenshots", str(SCREENSHOTS))
    runs_before = _manual_runs(stack)

    checked = subprocess.run(
        ["node", "check.mjs", stack.url, str(run.id), run.name, str(SCREENSHOTS)],
        cwd=UI_CHECK,
        env={**os.environ, "CHROMIUM": chromium, "PREFECT_AUTH_STRING": stack.auth_string},
        capture_output=True,
        text=True,
        timeout=300,
    )
    steps = [json.loads(line) for line in checked.stdout.splitlines() if line.startswith("{")]
    assert checked.returncode == 0, f"{checked.stdout}\n{checked.stderr[-3000:]}"
    assert [s["step"] for s in steps] == STEPS
    found = {s["step"]: s["found"] for s in steps}
    assert found["login"] == ["Authentication failed.", "retrain-weekly"]  # the UI's prompt
    assert "parameters.training.epochs" in found["run-form-refuses-bad-value"]
    assert found["flow-run"][1].startswith("epoch 1/")
    assert found["run-artifacts"] == "test-metrics"
    assert all(Path(s["screenshot"]).stat().st_size > 10_000 for s in steps)
    # The refused form created no run.
    assert {r.id for r in _manual_runs(stack)} == {r.id for r in runs_before}
