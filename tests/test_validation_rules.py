"""The rule declarations of fusioncast.validation.rules: the README table is made from them, every
rule validation raises or reports is declared, and every declared forecast-time rule is raised
where the forecast is made."""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd

from fusioncast.contract import DataContract
from fusioncast.validation import validate_frame
from fusioncast.validation.rules import BY_NAME, readme_table, stage

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "fusioncast"


def readme_rules_table() -> str:
    lines = (ROOT / "README.md").read_text().splitlines()
    section = lines.index("### Validation")
    start = next(i for i in range(section, len(lines)) if lines[i].startswith("| rule |"))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    return "\n".join(lines[start:end])


def test_the_readme_table_of_rules_is_made_from_the_declarations():
    # A rule declared without its README row (or a row edited by hand) fails here: print the
    # table with `python -m fusioncast.validation` and paste it into README.md.
    assert readme_rules_table() == readme_table()


def raised_rule_names(folder: Path) -> set[str]:
    """Rule names given as literals to ``DataValidationError(...)`` in the modules of ``folder``."""
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            called = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            first = node.args[0]
            if called == "DataValidationError" and isinstance(first, ast.Constant):
                names.add(first.value)
    return names


def test_every_rule_validation_raises_or_reports_is_declared():
    raised = raised_rule_names(SRC / "validation")
    assert {"parquet_files", "parquet_schema", "regular_frequency"} <= raised
    assert raised - set(BY_NAME) == set()
    frame = pd.DataFrame(
        {
            "series_id": ["a"] * 3,
            "timestamp": pd.date_range("2024-01-01", periods=3, freq="D"),
            "target": [1.0, 2.0, 3.0],
            "note": ["x", None, "y"],
        }
    )
    _, report = validate_frame(frame, DataContract(text=("note",)))
    assert {r.rule for r in report.results} - set(BY_NAME) == set()
    forecast_time = {rule.name for rule in stage("forecast")}
    assert forecast_time == {"within_scale", "forecast_finite"}
    assert forecast_time <= raised_rule_names(SRC)
