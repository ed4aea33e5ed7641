"""The column dictionary: docs/schema.md is generated from the code, and documents what is written."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from orchestrator import schema
from orchestrator.cli import main
from orchestrator.provenance import new_invocation
from orchestrator.spec import load_spec

REPO = Path(__file__).resolve().parents[1]


def test_docs_schema_md_is_the_generated_one():
    assert (REPO / "docs" / "schema.md").read_text() == schema.markdown(), (
        "docs/schema.md is stale: python -m orchestrator.schema > docs/schema.md")


def test_every_column_an_invocation_writes_is_documented():
    row = new_invocation(load_spec(REPO / "sweeps" / "quickstart.yaml"), command="run", address=None)
    assert set(row) - set(schema.TABLES["invocations"]) == set()


def test_every_non_result_column_of_the_reference_tables_is_documented():
    """Cells and probes of every study: the table's own columns and every experiment parameter."""
    for table in ("cells", "probes"):
        words = schema.meanings(table)
        for path in REPO.glob(f"results/reference/*/*-{table}.csv"):
            columns = pd.read_csv(path, nrows=1).columns
            assert {"cell_id", "experiment", "recorded_at"} <= set(columns) & set(words)
            assert all(words[c] for c in columns if c in words)


def test_query_describe_prints_the_dictionary_with_recorded_types(tmp_path, capsys):
    from orchestrator.store import Store
    Store(tmp_path).append("fits", "s", [{"fit_id": "f", "law": "power", "power_slope": 0.9}])
    assert main(["query", "--describe", "fits", "--root", str(tmp_path), "--csv"]) == 0
    frame = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    row = frame.set_index("column").loc["power_slope"]
    assert row["type"] == "DOUBLE" and "power law's s" in row["meaning"]
    assert frame.set_index("column").loc["recorded_at", "type"].startswith("TIMESTAMP")


def test_query_describe_refuses_an_unknown_table_in_one_line():
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "query", "--describe", "cellz"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "allowed: cells, fits, fits_current, invocations, probes" in out.stderr
