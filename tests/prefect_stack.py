"""A throwaway production-like Prefect stack for the deployment and UI tests.

``scripts/prefect-local.sh`` (what ``make prefect-local`` runs) starts ``prefect server`` on a fresh
PostgreSQL database, registers the deployments of ``deployments/prefect.yaml`` with
``scripts/deploy.sh`` (and the failure-notification automation) and starts a process worker. One
stack and one finished ``retrain`` run serve the whole test session; the processes are killed and
the database is dropped when the session ends, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
PG_HOST = os.environ.get("FUSIONCAST_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("FUSIONCAST_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("FUSIONCAST_TEST_PG_USER", "postgres")
PG_PASSWORD = os.environ.get("FUSIONCAST_TEST_PG_PASSWORD", "")
TIMEZONE = "Europe/Paris"  # not the default, to show the schedules' time zone is configurable
STARTUP_TIMEOUT_S = 240
RUN_TIMEOUT_S = 480

# Small enough for a 2-core CI machine: 4 series, tiny model, 2 short epochs.
TINY_MODEL = {
    "lookback": 21,
    "horizon": 5,
    "numeric_units": 8,
    "text_units": 8,
    "text_embedding_dim": 8,
    "hidden_units": 16,
    "max_text_tokens": 24,
    "min_token_count": 1,
}
TINY_TRAINING = {"epochs": 2, "batch_size": 64, "patience": 2, "steps_per_epoch": 4}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _postgres(sql: str | None = None) -> None:
    import asyncpg

    connection = await asyncpg.connect(
        host=PG_HOST,
        port=PG_PORT,
        user=PG_USER,
        password=PG_PASSWORD or None,
        database="postgres",
        timeout=5,
    )
    try:
        if sql:
            await connection.execute(sql)
    finally:
        await connection.close()


def postgres_unreachable() -> str | None:
    """Why no test database can be made on the PostgreSQL server, or None when one can."""
    try:
        asyncio.run(_postgres())
    except Exception as error:  # any failure to connect means: skip
        return (
            f"no PostgreSQL reachable at {PG_USER}@{PG_HOST}:{PG_PORT} "
            f"({type(error).__name__}: {error})"
        )
    return None


class _NotificationSink:
    """An HTTP endpoint on 127.0.0.1 that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    received.append({"path": self.path, **json.loads(body or b"{}")})
                except ValueError:
                    received.append({"path": self.path, "raw": body.decode("utf-8", "replace")})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _stat(stat: Path) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, session, ..."""
    return stat.read_text().rsplit(")", 1)[1].split()


def _processes_of(pid: int) -> list[int]:
    """Every live process below ``pid`` or in the session it leads (Linux /proc)."""
    children: dict[int, list[int]] = {}
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = _stat(stat)
        except OSError:
            continue
        child = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(child)
        if int(fields[3]) == pid and child != pid:
            found.add(child)
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return sorted(found)


def _alive(pid: int) -> bool:
    try:
        return _stat(Path(f"/proc/{pid}/stat"))[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


class PrefectStack:
    """Prefect server (PostgreSQL) + deployments + worker, started by scripts/prefect-local.sh."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fusioncast-stack-"))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        self.database = f"fusioncast_test_{uuid.uuid4().hex[:10]}"
        self.database_created = False
        self.log_path = self.root / "stack.log"
        self.process: subprocess.Popen | None = None
        self.sink: _NotificationSink | None = None
        self.data_path = self.root / "data"
        self.workdir = self.root / "out"
        # Locked like production: the API and the UI refuse requests without this auth string.
        self.auth_string = f"fusioncast-ops:{secrets.token_urlsafe(18)}"
        # A secret that must never be written anywhere: the runs' bucket credentials (one from the
        # environment, one from a Secret block) and the token of the failure webhook's URL.
        self.sentinel = f"sentinel{secrets.token_hex(12)}"
        self.secret_block = "fusioncast-bucket-secret"
        self._runs: dict[str, Any] = {}

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        from fusioncast.demo import write_demo_dataset

        asyncio.run(_postgres(f'CREATE DATABASE "{self.database}"'))
        self.database_created = True
        write_demo_dataset(self.data_path, n_stores=2, n_categories=2, n_days=240, seed=1)
        self.sink = _NotificationSink()
        password = f":{PG_PASSWORD}" if PG_PASSWORD else ""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.root / "prefect-home"),
            PREFECT_SERVER_API_HOST="127.0.0.1",
            PREFECT_SERVER_API_PORT=str(self.port),
            PREFECT_SERVER_DATABASE_CONNECTION_URL=(
                f"postgresql+asyncpg://{PG_USER}{password}@{PG_HOST}:{PG_PORT}/{self.database}"
            ),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_LOGGING_LEVEL="WARNING",
            PREFECT_SERVER_API_AUTH_STRING=self.auth_string,
            PREFECT_WORKER_QUERY_SECONDS="2",
            PREFECT_CLI_COLORS="false",
            PREFECT_CLI_WRAP_LINES="false",
            FUSIONCAST_BIN=str(Path(sys.executable).parent),
            FUSIONCAST_PROJECT_DIR=str(REPO),
            FUSIONCAST_TIMEZONE=TIMEZONE,
            FUSIONCAST_NOTIFY_URL=f"{self.sink.url}?token={self.sentinel}",
            FUSIONCAST_NOTIFY_FLOWS="retrain",
            FUSIONCAST_SECRET_ENV=f"AWS_SECRET_ACCESS_KEY={self.secret_block}",
            AWS_ACCESS_KEY_ID=self.sentinel,
            TF_CPP_MIN_LOG_LEVEL="2",
            COLUMNS="200",
        )
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(REPO / "scripts" / "prefect-local.sh")],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while "prefect-local: ready" not in self.log():
            if self.process.poll() is not None:
                raise RuntimeError(f"scripts/prefect-local.sh exited early:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"stack not ready after {STARTUP_TIMEOUT_S} s:\n{self.log()[-4000:]}"
                )
            time.sleep(0.5)
        # What an operator does once in the UI (Blocks > + > Secret): the worker resolves the
        # pool's reference to it when each run starts (FUSIONCAST_SECRET_ENV, deployments/pool.py).
        from prefect.blocks.system import Secret

        with _api(self.api_url, self.auth_string):
            Secret(value=self.sentinel).save(self.secret_block)

    def stop(self) -> None:
        """Kill the script, the server, the worker and any flow run; drop the database.

        Idempotent: the session's cleanup calls it again after an early release."""
        if self.process is not None and self.process.poll() is None:
            pids = [self.process.pid, *_processes_of(self.process.pid)]
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
                self.process.poll()
                time.sleep(0.2)
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        if self.sink is not None:
            self.sink.close()
            self.sink = None
        if self.database_created:
            asyncio.run(_postgres(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
            self.database_created = False
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- API ---------------------------------------------------------------------------------------

    def client(self):
        from prefect.client.orchestration import SyncPrefectClient

        return SyncPrefectClient(self.api_url, auth_string=self.auth_string)

    def retrain_parameters(self, **changes: Any) -> dict[str, Any]:
        """What the UI's run form sends: the flow's whole ``parameters`` model, as JSON."""
        from fusioncast.parameters import RetrainParameters

        parameters = RetrainParameters(
            data_path=str(self.data_path),
            workspace={"root": str(self.workdir)},
            model=TINY_MODEL,
            training=TINY_TRAINING,
            # Two short epochs need not beat the last value nor the statistical peers; the first
            # model is promoted anyway.
            promotion={"require_beating_last_value": False, "best_baseline_margin": None},
        ).model_dump(mode="json")
        parameters.update(changes)
        return {"parameters": parameters}

    def run_deployment(self, name: str, parameters: dict[str, Any]):
        """Create a run the way the UI's Run button does (POST /deployments/{id}/create_flow_run)
        and wait for its final state."""
        with self.client() as client:
            deployment = client.read_deployment_by_name(name)
            run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while not (run := client.read_flow_run(run.id)).state.is_final():
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"run {run.name} still {run.state.name} after {RUN_TIMEOUT_S} s\n"
                        f"{self.log()[-4000:]}"
                    )
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"the stack stopped:\n{self.log()[-4000:]}")
                time.sleep(1)
        return run

    def retrain_run(self):
        """The session's one successful ``retrain`` run (tiny settings), started on first use."""
        if "retrain" not in self._runs:
            self._runs["retrain"] = self.run_deployment(
                "retrain/retrain-weekly", self.retrain_parameters()
            )
        return self._runs["retrain"]

    def failed_retrain_run(self):
        """A ``retrain`` run that fails (its data path does not exist), started on first use."""
        if "failed" not in self._runs:
            self.retrain_run()  # one at a time: the deployment's concurrency limit is 1
            self._runs["failed"] = self.run_deployment(
                "retrain/retrain-weekly",
                self.retrain_parameters(data_path=str(self.root / "no-such-data")),
            )
        return self._runs["failed"]

    def flow_run_logs(self, run_id) -> list[str]:
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

        messages, offset = [], 0
        with self.client() as client:
            while True:
                page = client.read_logs(
                    log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])),
                    offset=offset,
                    limit=200,
                )
                messages += [log.message for log in page]
                if len(page) < 200:
                    return messages
                offset += 200


@contextlib.contextmanager
def _api(url: str, auth_string: str):
    """Prefect's client-side settings pointing at a server (for block methods, which take none)."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: url, PREFECT_API_AUTH_STRING: auth_string}):
        yield


_STACK: dict[str, Any] = {}
STACK_USERS = ("test_deployments.py", "test_ui.py")


def shared_stack(request: pytest.FixtureRequest) -> PrefectStack:
    """The session's stack: started on first use, stopped when the test session ends.

    Skips when no PostgreSQL is reachable; a stack that failed to start fails every test that
    needs it (it is not retried).
    """
    if "stack" in _STACK:
        return _STACK["stack"]
    if "error" in _STACK:
        pytest.fail(f"the Prefect stack did not start: {_STACK['error']}")
    if "skip" not in _STACK:
        _STACK["skip"] = postgres_unreachable()
    if _STACK["skip"]:
        pytest.skip(_STACK["skip"])
    stack = PrefectStack()
    request.config.add_cleanup(stack.stop)
    try:
        stack.start()
    except Exception as error:
        _STACK["error"] = error
        raise
    _STACK["stack"] = stack
    return stack


def release_if_unused(request: pytest.FixtureRequest) -> None:
    """Stop the stack now when no later test of the session needs it, so that its server and
    worker do not compete for the CPUs with the rest of the suite. Call at module teardown."""
    items = request.session.items
    positions = [i for i, item in enumerate(items) if item.path == request.path]
    later = items[max(positions) + 1 :] if positions else []
    if not any(item.path.name in STACK_USERS for item in later):
        stack = _STACK.pop("stack", None)
        if stack is not None:
            stack.stop()
