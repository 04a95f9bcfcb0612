"""House rules that keep the computing code orchestrator-free."""

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "fusioncast"


def test_no_module_of_the_package_imports_prefect():
    pattern = re.compile(r"^\s*(from|import)\s+prefect\b", re.MULTILINE)
    offenders = [p.name for p in SRC.rglob("*.py") if pattern.search(p.read_text())]
    assert list(SRC.rglob("*.py")), "package sources not found"
    assert offenders == []


def test_no_pickle_anywhere_in_the_package():
    pattern = re.compile(r"\b(pickle|joblib|dill|cloudpickle)\b")
    assert [p.name for p in SRC.rglob("*.py") if pattern.search(p.read_text())] == []
