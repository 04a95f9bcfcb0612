"""Command line: ``fusioncast demo | retrain | forecast | quickstart | backtest | select | models``.

Errors a user can cause (bad data, bad parameters, missing model) print one clear line and exit
with status 2; they never show a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

# Offline-friendly defaults; a user's own environment wins.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Prefect's temporary server gets 20 s to start by default: too short on a loaded machine or with
# two runs starting at once (seen: "Timed out while attempting to connect to ephemeral Prefect API
# server").
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from pydantic import ValidationError  # noqa: E402

from fusioncast.errors import ConfigError, FusioncastError, WorkspaceError  # noqa: E402

DEFAULT_DATA = "data/demo"
DEFAULT_WORKDIR = "fusioncast-output"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fusioncast", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="write the demo dataset")
    demo.add_argument("--out", default="data/demo", help="output directory or .parquet file")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--stores", type=int, default=4)
    demo.add_argument("--categories", type=int, default=6)
    demo.add_argument("--days", type=int, default=760)

    for name, help_text in (
        ("retrain", "train, evaluate, register and publish forecasts"),
        ("forecast", "forecast with the registered champion (no training)"),
        ("quickstart", "write the demo dataset, then retrain on it"),
        ("backtest", "replay past forecast origins (rolling-origin evaluation), concurrently"),
        ("select", "choose settings (a preset or the defaults) on past origins before the test"),
    ):
        # No defaults here: a flag left out takes the --params file's value, else the default of
        # the parameters model; a flag that contradicts the file is refused (_merge).
        command = commands.add_parser(name, help=help_text)
        command.add_argument(
            "--data", help=f"input Parquet file or directory (default: {DEFAULT_DATA})"
        )
        command.add_argument(
            "--workdir", help=f"models, forecasts, reports (default: {DEFAULT_WORKDIR})"
        )
        command.add_argument("--params", type=Path, help="JSON file of the flow's parameters")
        if name != "forecast":
            command.add_argument("--epochs", type=int, help="override training.epochs")
        if name in ("backtest", "select"):
            command.add_argument("--folds", type=int, help="override backtest.n_folds")
        if name == "forecast":
            command.add_argument(
                "--shards", type=int, help="groups of series predicted on the task runner"
            )
        if name in ("backtest", "select", "forecast"):
            fanned = "shards" if name == "forecast" else "folds"
            command.add_argument(
                "--task-runner",
                choices=["process", "dask", "dask-local"],
                help=f"where the {fanned} run (override task_runner.kind; default: process)",
            )
            command.add_argument(
                "--dask-address",
                help="the Dask scheduler, e.g. tcp://10.0.0.5:8786 (task_runner.address)",
            )
        if name == "select":
            command.add_argument(
                "--candidates",
                type=_names,
                help="comma-separated presets and 'default' to compare (override candidates)",
            )
        if name == "forecast":
            command.add_argument("--model-version", help="registry version (default: champion)")
    models = commands.add_parser("models", help="list, promote or roll back registry versions")
    actions = models.add_subparsers(dest="action", required=True)
    for action, help_text in (
        ("list", "every version with its test MSE and status (ok or damaged); * = champion"),
        ("promote", "make a version the champion (bypasses the promotion gate)"),
        ("rollback", "make the previous champion the champion again"),
    ):
        sub = actions.add_parser(action, help=help_text)
        sub.add_argument("--workdir", default=DEFAULT_WORKDIR, help="models, forecasts, reports")
        if action == "promote":
            sub.add_argument("version", help="registry version to promote")
        if action != "list":
            sub.add_argument("--reason", default=f"manual {action}", help="recorded with it")
    return parser


def _models(args: argparse.Namespace) -> dict[str, str]:
    """The registry commands: they read and swap the champion pointer only (no Prefect run).

    ``list`` shows damaged versions and unfinished registrations too, and exits with status 2
    when the champion pointer is unusable (``forecast`` would fail), after the listing.
    """
    from fusioncast.errors import ModelStateError
    from fusioncast.parameters import Workspace
    from fusioncast.registry import ModelRegistry
    from fusioncast.storage import failures_name

    registry = ModelRegistry(Workspace(root=args.workdir).models)
    with failures_name(registry.root, "read"):
        found = registry.root.is_dir()
    if not found:  # a mistyped --workdir, not an empty registry
        raise ModelStateError(
            f"no model registry at {registry.root}: run retrain with --workdir {args.workdir} "
            "first, or give the --workdir of an earlier retrain"
        )
    if args.action == "list":
        table = registry.describe()
        if table.empty:
            print(f"no model versions in {registry.root}")
        for row in table.itertuples():
            mark = "*" if row.champion else " "
            print(
                f"{mark} {row.model_version}  created {_text(row.created_at)[:19]}  "
                f"data {_text(row.data_fingerprint)}  test MSE {_number(row.test_mse)}  "
                f"last value {_number(row.last_value_mse)}  {row.status}"
            )
        for name in registry.unfinished():
            print(
                f"  {name}  unfinished: a registration in progress, or one a killed run left "
                "(the next retrain removes it once an hour old)"
            )
        return {"champion": registry.check_champion() or ""}
    if registry.remote:  # an object store has no lock: Prefect's, as the flows use
        from fusioncast.tasks.registry import decision_lock

        lock = decision_lock(registry.root)
    else:
        lock = registry.lock()
    with lock:
        if args.action == "promote":
            kept = registry.promote(args.version, reason=args.reason)
            if kept:
                print(
                    f"the unreadable champion pointer was kept as {kept}; the earlier champions "
                    "it listed are no longer available to rollback"
                )
            version = args.version
        else:
            version = registry.rollback(reason=args.reason)
    print(f"champion: {version}")
    return {"champion": version}


def _number(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.4f}"


def _text(value: object) -> str:
    """A manifest field, or n/a where the manifest could not be read (pandas holds it as NaN)."""
    return value if isinstance(value, str) and value else "n/a"


def _retrain_parameters(args: argparse.Namespace, kind=None):
    from fusioncast.parameters import RetrainParameters

    flags = {("training", "epochs"): args.epochs}
    if getattr(args, "folds", None) is not None:
        flags[("backtest", "n_folds")] = args.folds
    flags[("task_runner", "kind")] = getattr(args, "task_runner", None)
    flags[("task_runner", "address")] = getattr(args, "dask_address", None)
    if getattr(args, "candidates", None) is not None:
        flags[("candidates",)] = args.candidates
    return (kind or RetrainParameters).model_validate(_payload(args, flags))


def _names(text: str) -> list[str]:
    """``a,b`` as ``["a", "b"]`` (blanks around a name dropped)."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _forecast_parameters(args: argparse.Namespace):
    from fusioncast.parameters import ForecastParameters

    flags = {
        ("model_version",): args.model_version,
        ("shards",): args.shards,
        ("task_runner", "kind"): args.task_runner,
        ("task_runner", "address"): args.dask_address,
    }
    return ForecastParameters.model_validate(_payload(args, flags))


def _payload(args: argparse.Namespace, flags: dict[tuple[str, ...], object]) -> dict:
    """The flow's parameters: the ``--params`` file with the command line's flags merged in."""
    payload = read_params_file(args.params) if args.params else {}
    flags = {("data_path",): args.data, ("workspace", "root"): args.workdir, **flags}
    for path, value in flags.items():
        if value is not None:
            _merge(payload, path, value, args.params)
    payload.setdefault("data_path", DEFAULT_DATA)
    payload.setdefault("workspace", {}).setdefault("root", DEFAULT_WORKDIR)
    return payload


def _merge(payload: dict, path: tuple[str, ...], value: object, source: Path | None) -> None:
    """Set ``payload[path] = value``, refusing a value the ``--params`` file sets otherwise."""
    *parents, leaf = path
    node = payload
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            return  # pydantic names the malformed field
    if leaf in node and node[leaf] != value:
        name = ".".join(path)
        raise ConfigError(
            f"the command line gives {name} = {value!r} but {source} sets {node[leaf]!r}; "
            "give it in one place"
        )
    node[leaf] = value


_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def read_params_file(path: Path) -> dict:
    """The JSON object in ``path`` (a UTF-8 byte-order mark is allowed), or a ``ConfigError``
    naming the file and what is wrong with it."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"--params file {path} does not exist") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"--params file {path} is not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise WorkspaceError.from_os_error(error, "read") from None
    if not text.strip():
        raise ConfigError(f"--params file {path} is empty; it must hold a JSON object")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"--params file {path} is not valid JSON: {error.msg} at line {error.lineno} "
            f"column {error.colno}"
        ) from None
    if not isinstance(payload, dict):
        raise ConfigError(
            f"--params file {path} holds a JSON {_JSON_KINDS.get(type(payload), 'value')}; "
            'it must hold an object such as {"training": {"epochs": 5}}'
        )
    return payload


def run(argv: list[str] | None = None) -> dict[str, str]:
    args = _parser().parse_args(argv)
    if args.command == "models":
        return _models(args)
    if args.command == "demo":
        from fusioncast.demo import write_demo_dataset

        path = write_demo_dataset(
            args.out,
            seed=args.seed,
            n_stores=args.stores,
            n_categories=args.categories,
            n_days=args.days,
        )
        print(f"demo dataset written to {path}")
        return {"data_path": str(path)}
    if args.command == "backtest":
        from fusioncast.parameters import BacktestParameters

        parameters = _retrain_parameters(args, BacktestParameters)
        with _prefect_server(parameters):
            from fusioncast.flows.backtest import backtest

        outcome = backtest(parameters)
        print(f"backtest metrics written to {outcome['metrics_path']}")
        return outcome
    if args.command == "select":
        from fusioncast.parameters import SelectParameters

        parameters = _retrain_parameters(args, SelectParameters)  # checked before Prefect loads
        with _prefect_server(parameters):
            from fusioncast.flows.selection import select

        outcome = select(parameters)
        print(
            f"selected: {outcome['chosen']} (mean fold MSE {outcome['mean_mse']}; "
            f"best baseline {outcome['best_baseline']} {outcome['best_baseline_mse']})"
        )
        print(f"selection written to {outcome['table']} and {outcome['report']}")
        return outcome
    if args.command in ("retrain", "quickstart"):
        parameters = _retrain_parameters(args)
        if args.command == "quickstart":
            from fusioncast.demo import write_demo_dataset

            print(f"demo dataset written to {write_demo_dataset(parameters.data_path)}")
        with _prefect_server(parameters):
            from fusioncast.flows.retrain import retrain

        outcome = retrain(parameters)
    else:
        parameters = _forecast_parameters(args)
        with _prefect_server(parameters):
            from fusioncast.flows.forecast import forecast_flow

        outcome = forecast_flow(parameters)
    if outcome.get("worker"):
        print(outcome["worker"])
        return outcome
    print(f"model version: {outcome['model_version']}")
    if outcome.get("promotion"):
        print(f"promotion gate: {outcome['promotion']}")
    if outcome.get("knowable_limit"):
        print(f"knowable limit: {outcome['knowable_limit']}")
    if outcome.get("forecasts_path"):
        print(f"forecasts written to {outcome['forecasts_path']}")
    return outcome


@contextmanager
def _prefect_server(parameters) -> Iterator[None]:
    """While the body imports the flow's modules: check that the run's workspace (its object
    store: one request) and its Dask scheduler, if it names one, answer; then check that the
    server ``PREFECT_API_URL`` names answers and accepts this client's credentials
    (``PREFECT_API_AUTH_STRING``), or, when none is named, start Prefect's temporary server. A
    wrong endpoint, bucket, credentials, scheduler or server is one clear error before any
    import or work.

    The run would start the temporary server on its first call to the API, after those imports;
    starting it here overlaps its seconds of start-up with theirs. A failed start is left to the
    run, which starts it again and reports the error.
    """
    from fusioncast.storage import check_reachable

    check_reachable(parameters.workspace.root)
    if hasattr(parameters, "task_runner"):
        from fusioncast.clusters import check_scheduler  # Prefect-free: its start stays quiet

        check_scheduler(parameters.task_runner)
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value():
        _check_server(PREFECT_API_URL.value())
        yield
        return
    if not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        yield
        return
    background = threading.Thread(target=_start_quietly, args=(SubprocessASGIServer(),))
    background.start()
    try:
        yield
    finally:
        background.join()


def _check_server(url: str) -> None:
    """Raise ``ConfigError`` naming why the Prefect server at ``url`` cannot be used."""
    import httpx
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            client.api_version()  # an authenticated endpoint
    except httpx.HTTPStatusError as error:
        status = error.response.status_code
        why = (
            "refused this client's credentials: set PREFECT_API_AUTH_STRING to the server's auth "
            "string (PREFECT_SERVER_API_AUTH_STRING)"
            if status == 401
            else "answered an error"
        )
        raise ConfigError(
            f"the Prefect server at {url} (PREFECT_API_URL) {why} (HTTP {status})"
        ) from None
    except httpx.HTTPError as error:
        raise ConfigError(
            f"cannot reach the Prefect server at {url} (PREFECT_API_URL): "
            f"{type(error).__name__}: {error}"
        ) from None


def _start_quietly(server) -> None:
    with suppress(Exception):  # the run's own start raises it
        server.start()


def _one_line(error: ValidationError) -> str:
    """Every field pydantic refused, on one line: ``field.path: reason (got value)``."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "parameters"
        got = item.get("input")
        shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
        parts.append(f"{where}: {item['msg']}{shown}")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    try:
        run(argv)
    except FusioncastError as error:
        print(f"fusioncast: error: {error}", file=sys.stderr)
        return 2
    except ValidationError as error:
        print(f"fusioncast: invalid parameters: {_one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # a missing, read-only or full disk: the path and the cause
        print(f"fusioncast: error: {WorkspaceError.from_os_error(error)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
