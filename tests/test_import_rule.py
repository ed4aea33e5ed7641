"""The two halves stay independent: the orchestrator never imports the science (``factmlp``), and the
science imports the orchestrator only through its contract: ``orchestrator.experiment`` (the kind's
declaration), ``orchestrator.search``, ``orchestrator.statistics`` and ``orchestrator.badfile``. Read
from the source (every import statement, at module level or inside a function), so a lazy import
counts as much as any other. The no-op test kind loads without torch."""
from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONTRACT = {"orchestrator.experiment", "orchestrator.search", "orchestrator.statistics", "orchestrator.badfile"}


def imported(path: Path, package: str | None = None) -> set[str]:
    """Every module an ``import`` or ``from ... import`` of the file names (relative ones resolved
    within ``package``, by default the file's own)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1]) if package is None else package
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)  # `from orchestrator import figures`
    return out


@functools.cache
def modules(package: str) -> dict[str, set[str]]:
    """Module name -> what it imports, for every file of ``package``."""
    return {".".join(p.relative_to(REPO).with_suffix("").parts): imported(p)
            for p in sorted((REPO / package).rglob("*.py"))}


def of(names: set[str], package: str) -> set[str]:
    return {n for n in names if n == package or n.startswith(package + ".")}


def orchestrator_modules() -> set[str]:
    return {".".join(p.relative_to(REPO).with_suffix("").parts) for p in (REPO / "orchestrator").glob("*.py")}


def outside_contract(names: set[str]) -> set[str]:
    """The orchestrator modules among ``names`` that are not in the contract (``from orchestrator
    import experiment`` names the module ``orchestrator.experiment``; a name imported from a contract
    module is part of it)."""
    known = orchestrator_modules()
    found = {n for n in of(names, "orchestrator") if n in known}
    return found - CONTRACT


def test_imports_inside_functions_and_relative_ones_count(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("def f():\n    from factmlp.scaling import fit\n\n"
                      "def g():\n    from . import figures\n    import factmlp.train\n")
    names = imported(source, package="orchestrator")
    assert {"factmlp.scaling", "orchestrator.figures", "factmlp.train"} <= names
    assert outside_contract(names) == {"orchestrator.figures"} and of(names, "factmlp")


def test_no_orchestrator_module_imports_the_science():
    found = {module: sorted(of(names, "factmlp")) for module, names in modules("orchestrator").items()
             if of(names, "factmlp")}
    assert found == {}, "the orchestrator learns of kinds only through orchestrator/registry.py's entry points"


def test_the_science_imports_only_the_orchestrators_contract():
    found = {module: sorted(outside_contract(names)) for module, names in modules("factmlp").items()
             if outside_contract(names)}
    assert found == {}, f"allowed from orchestrator: {', '.join(sorted(CONTRACT))}"


def test_the_contract_imports_nothing_else():
    assert CONTRACT <= orchestrator_modules()
    every = modules("orchestrator")
    found = {module: sorted(outside_contract(every[module]) | of(every[module], "factmlp")) for module in CONTRACT}
    assert found == {module: [] for module in CONTRACT}


def test_the_no_op_kind_loads_without_torch():
    """The synthetic kind (orchestration benchmarks, fault tests) needs neither torch nor a method."""
    check = "import sys, factmlp.experiments.synthetic; sys.exit('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr or "factmlp.experiments.synthetic imports torch"
