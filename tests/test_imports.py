"""Every factmlp module imports on its own and in any order, no import cycle hides in a function-level
import, and no module pulls in the orchestration stack (ray, mlflow, pyarrow, omegaconf, duckdb).

Each import runs in a fresh process: a forked child of an interpreter that has loaded only the heavy
third-party libraries (numpy, scipy, torch) and nothing of factmlp, so a child costs milliseconds
instead of a torch import, yet starts with no factmlp module loaded.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # forks a fresh interpreter per import order: not in make test-fast


ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("ray", "mlflow", "pyarrow", "omegaconf", "duckdb")

SCRIPT = """
import importlib, multiprocessing, random, sys
import numpy, scipy.linalg, scipy.optimize, scipy.stats, torch  # loaded once; factmlp only in the children


FORBIDDEN = {forbidden!r}


def load(names):
    for name in names:
        importlib.import_module(name)
    bad = [m for m in FORBIDDEN if m in sys.modules]
    if bad:
        sys.exit(f"{{names}} imported {{bad}}")


modules = sys.argv[1:]
orders = [[m] for m in modules] + [sorted(modules), sorted(modules, reverse=True)]
orders += [random.Random(seed).sample(modules, len(modules)) for seed in range(3)]
assert not [m for m in sys.modules if m.split(".")[0] == "factmlp"]
failed = []
for names in orders:
    child = multiprocessing.get_context("fork").Process(target=load, args=(names,))
    child.start()
    child.join()
    if child.exitcode:
        failed.append(names if len(names) == 1 else f"the order {{names}}")
print("FAILED", failed) if failed else print("OK", len(orders))
sys.exit(1 if failed else 0)
"""


def modules() -> list[str]:
    paths = sorted((ROOT / "factmlp").rglob("*.py"))
    names = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in paths]
    return [n.removesuffix(".__init__") for n in names]


def test_every_module_imports_alone_and_in_any_order():
    names = modules()
    assert {"factmlp.factsets", "factmlp.embeddings.cache", "factmlp.experiments.capacity"} <= set(names)
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(forbidden=FORBIDDEN), *names], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    assert done.stdout.strip() == f"OK {len(names) + 5}"


def imports_of(name: str, known: set[str]) -> set[str]:
    """The factmlp modules that module ``name`` imports anywhere in its code (lazy imports included)."""
    path = ROOT / Path(*name.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                    for a in node.names}
    return {m for m in out if m in known and m != name}


def test_the_import_graph_has_no_cycle():
    """A cycle closed by an import inside a function (as factsets ↔ llm ↔ tables once was) counts too."""
    names = set(modules())
    graph = {name: imports_of(name, names) for name in names}
    done: set[str] = set()

    def visit(path: list[str]) -> None:
        for nxt in sorted(graph[path[-1]]):
            assert nxt not in path, "import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt])
            if nxt not in done:
                visit(path + [nxt])
        done.add(path[-1])

    for name in sorted(names):
        visit([name])
    assert graph["factmlp.factsets"] == set()  # the fact-set core depends on nothing of the package
