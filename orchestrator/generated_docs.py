"""The documents generated from the code, rewritten by one command (``make docs``): the parameter
tables of docs/sweep-spec.md (between its ``generated`` markers) and the column dictionary
docs/schema.md. A new construction, option or experiment kind changes them; tests/test_docs.py and
tests/test_schema_docs.py fail until they are regenerated.
"""
from __future__ import annotations

import sys
from pathlib import Path

from orchestrator import schema
from orchestrator.atomic import write_atomic
from orchestrator.experiment import parameter_table
from orchestrator.registry import every

BEGIN, END = "<!-- generated: begin -->", "<!-- generated: end -->"


def parameter_tables() -> str:
    """Every registered experiment's parameter table, in registry order."""
    return "\n\n".join(map(parameter_table, every().values()))


def with_parameter_tables(text: str) -> str:
    """docs/sweep-spec.md's text with the block between the markers generated again."""
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return f"{head}{BEGIN}\n{parameter_tables()}\n{END}{tail}"


def write(root: Path) -> list[Path]:
    """Rewrite both documents under ``root`` (each whole or not at all); the paths that changed."""
    spec = root / "docs" / "sweep-spec.md"
    wanted = {spec: with_parameter_tables(spec.read_text()), root / "docs" / "schema.md": schema.markdown()}
    changed = [path for path, text in wanted.items() if not path.exists() or path.read_text() != text]
    for path in changed:
        write_atomic(path, lambda tmp, text=wanted[path]: Path(tmp).write_text(text))
    return changed


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print(f"rewrote {path}")
