"""The generated documents match the code: docs/sweep-spec.md lists every experiment's parameters
exactly as the code declares them, and `make docs` (orchestrator/generated_docs.py) rewrites a stale
one in place."""
import shutil
from pathlib import Path

from orchestrator import generated_docs

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "docs" / "sweep-spec.md"


def test_parameter_tables_in_the_sweep_spec_match_the_code():
    assert SPEC.read_text() == generated_docs.with_parameter_tables(SPEC.read_text()), (
        "docs/sweep-spec.md is out of date: regenerate it with `make docs`")


def test_make_docs_rewrites_a_stale_table_and_leaves_current_documents_alone(tmp_path):
    (tmp_path / "docs").mkdir()
    for name in ("sweep-spec.md", "schema.md"):
        shutil.copy(ROOT / "docs" / name, tmp_path / "docs" / name)
    assert generated_docs.write(tmp_path) == []
    stale = tmp_path / "docs" / "sweep-spec.md"
    stale.write_text(stale.read_text().replace("| `num_facts` | int |", "| `num_facts` | float |"))
    assert generated_docs.write(tmp_path) == [stale]
    assert stale.read_text() == SPEC.read_text()
