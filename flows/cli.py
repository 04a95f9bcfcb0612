"""Command line: ``fusioncast demo | retrain | forecast | quickstart | backtest | models``.

Errors a user can cause (bad data, bad parameters, missing model) print one clear line and exit
with status 2; they never show a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# Offline-friendly defaults; a user's own environment wins.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Prefect's temporary server gets 20 s to start by default: too short on a loaded machine or with
# two runs starting at once (seen: "Timed out while attempting to connect to ephemeral Prefect API
# server").
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from pydantic import ValidationError  # noqa: E402

from fusioncast.errors import FusioncastError, WorkspaceError  # noqa: E402


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
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--data", default="data/demo", help="input Parquet file or directory")
        command.add_argument(
            "--workdir", default="fusioncast-output", help="models, forecasts, reports"
        )
        command.add_argument("--params", type=Path, help="JSON file of the flow's parameters")
        if name != "forecast":
            command.add_argument("--epochs", type=int, help="override training.epochs")
        if name == "backtest":
            command.add_argument("--folds", type=int, help="override backtest.n_folds")
        else:
            command.add_argument("--model-version", help="registry version (default: champion)")
    models = commands.add_parser("models", help="list, promote or roll back registry versions")
    actions = models.add_subparsers(dest="action", required=True)
    for action, help_text in (
        ("list", "every version with its test MSE and status (ok or damaged); * = champion"),
        ("promote", "make a version the champion (bypasses the promotion gate)"),
        ("rollback", "make the previous champion the champion again"),
    ):
        sub = actions.add_parser(action, help=help_text)
        sub.add_argument(
            "--workdir", default="fusioncast-output", help="models, forecasts, reports"
        )
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
    from fusioncast.parameters import Workspace
    from fusioncast.registry import ModelRegistry

    registry = ModelRegistry(Workspace(root=args.workdir).models)
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
    with registry.lock():
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

    payload = json.loads(args.params.read_text()) if args.params else {}
    payload.setdefault("data_path", args.data)
    payload.setdefault("workspace", {"root": args.workdir})
    if args.epochs is not None:
        payload.setdefault("training", {})["epochs"] = args.epochs
    if getattr(args, "folds", None) is not None:
        payload.setdefault("backtest", {})["n_folds"] = args.folds
    return (kind or RetrainParameters).model_validate(payload)


def _forecast_parameters(args: argparse.Namespace):
    from fusioncast.parameters import ForecastParameters

    payload = json.loads(args.params.read_text()) if args.params else {}
    payload.setdefault("data_path", args.data)
    payload.setdefault("workspace", {"root": args.workdir})
    if args.model_version:
        payload["model_version"] = args.model_version
    return ForecastParameters.model_validate(payload)


def run(argv: list[str] | None = None) -> dict[str, str]:
    args = _parser().parse_args(argv)
    if args.command == "models":
        return _models(args)
    if args.command in ("demo", "quickstart"):
        from fusioncast.demo import write_demo_dataset

        if args.command == "demo":
            path = write_demo_dataset(
                args.out,
                seed=args.seed,
                n_stores=args.stores,
                n_categories=args.categories,
                n_days=args.days,
            )
            print(f"demo dataset written to {path}")
            return {"data_path": str(path)}
        print(f"demo dataset written to {write_demo_dataset(args.data)}")
    if args.command == "backtest":
        from flows.backtest import backtest
        from fusioncast.parameters import BacktestParameters

        outcome = backtest(_retrain_parameters(args, BacktestParameters))
        print(f"backtest metrics written to {outcome['metrics_path']}")
        return outcome
    if args.command in ("retrain", "quickstart"):
        parameters = _retrain_parameters(args)
        from flows.retrain import retrain

        outcome = retrain(parameters)
    else:
        parameters = _forecast_parameters(args)
        from flows.forecast import forecast_flow

        outcome = forecast_flow(parameters)
    print(f"model version: {outcome['model_version']}")
    if outcome.get("promotion"):
        print(f"promotion gate: {outcome['promotion']}")
    if outcome.get("forecasts_path"):
        print(f"forecasts written to {outcome['forecasts_path']}")
    return outcome


def main(argv: list[str] | None = None) -> int:
    try:
        run(argv)
    except FusioncastError as error:
        print(f"fusioncast: error: {error}", file=sys.stderr)
        return 2
    except ValidationError as error:
        print(f"fusioncast: invalid parameters: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a missing, read-only or full disk: the path and the cause
        print(f"fusioncast: error: {WorkspaceError.from_os_error(error)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
