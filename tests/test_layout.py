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


MAX_MODULE_LINES = 450


def test_no_module_of_the_package_is_longer_than_one_concern():
    """A module past ~450 lines is probably two: split it by concern."""
    long = {
        str(p.relative_to(SRC)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def _imports_of(module: str, blocked: tuple[str, ...] = ()) -> set[str]:
    """The modules loaded by importing ``module`` in a fresh interpreter, with ``blocked``
    top-level packages made unimportable."""
    import json
    import subprocess
    import sys

    script = f"""
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is blocked")
sys.meta_path.insert(0, Block())
import {module}
print(json.dumps(sorted(sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.splitlines()[-1]))


HEAVY = ("keras", "tensorflow", "great_expectations", "jax", "torch")


def test_parameters_and_configs_import_no_model_or_validation_engine():
    """The run's parameters (Prefect UI forms, the CLI's argument checks) load without Keras,
    TensorFlow or GX: they are leaves."""
    for module in ("fusioncast.config", "fusioncast.parameters", "fusioncast.presets"):
        loaded = _imports_of(module, blocked=HEAVY)
        assert not {m.split(".")[0] for m in loaded} & set(HEAVY), module


def test_prediction_imports_no_training_code():
    loaded = _imports_of("fusioncast.forecast")
    assert "fusioncast.predict" in loaded
    assert "fusioncast.training" not in loaded


def _module_graph() -> dict[str, set[str]]:
    import ast

    def name_of(path: Path) -> str:
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {name_of(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):  # lazy imports count too
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    found.add(child if child in modules else node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_no_import_cycles_in_the_package():
    graph = _module_graph()
    assert "fusioncast.training" in graph["fusioncast.backtest"]  # the graph sees imports
    cycles, state, stack = [], {}, []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for dependency in sorted(graph[module]):
            if state.get(dependency) == "open":
                cycles.append(stack[stack.index(dependency) :] + [dependency])
            elif dependency not in state:
                visit(dependency)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == []


def test_every_package_directory_is_installed():
    """pyproject lists the packages explicitly (flows and tasks install under fusioncast.*)."""
    import tomllib

    listed = set(
        tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"][
            "packages"
        ]
    )
    on_disk = {".".join(p.parent.relative_to(SRC.parent).parts) for p in SRC.rglob("__init__.py")}
    assert on_disk <= listed
    assert {"fusioncast.flows", "fusioncast.tasks"} <= listed
