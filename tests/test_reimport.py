"""A committed study's CSVs put back into a store give the report the same rows: re-rendering the
quickstart's committed report from them reproduces its tables and findings, so figures and findings
can be rewritten by newer code without re-running a probe (and a committed report that no longer
matches the report code is caught here)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from orchestrator.reimport import invocations, main, reimport
from orchestrator.report import write_report
from orchestrator.scope import Scope
from orchestrator.spec import load_spec
from orchestrator.store import Store

REPO = Path(__file__).resolve().parents[1]
STUDY = REPO / "results" / "reference" / "quickstart"


def _sections(text: str) -> dict[str, str]:
    """Report sections by heading, without the lines that name files or paths."""
    parts = {}
    for block in text.split("\n## ")[1:]:
        head, _, body = block.partition("\n")
        parts[head] = body
    return parts


def test_reimported_rows_equal_the_committed_csv_values(tmp_path):
    counts = reimport(STUDY, tmp_path)
    store = Store(tmp_path)
    for table in ("cells", "probes"):
        committed = pd.read_csv(STUDY / f"quickstart-{table}.csv")
        loaded = store.load(table, "quickstart")
        assert counts[table] == len(committed) == len(loaded)
        key = "cell_id" if table == "cells" else "probe_id"
        loaded = loaded.set_index(key).sort_index()
        committed = committed.astype({key: str}).set_index(key).sort_index()
        for column in ("num_facts", "seed", "accuracy"):
            if column in committed:
                pd.testing.assert_series_equal(loaded[column].astype(float), committed[column].astype(float),
                                               check_names=False)
    assert counts["invocations"] == len(invocations(STUDY / "quickstart.md")) >= 1


def test_the_report_written_again_from_the_csvs_matches_the_committed_one(tmp_path):
    shutil.copy(REPO / "sweeps" / "quickstart.yaml", tmp_path / "quickstart.yaml")
    reimport(STUDY, tmp_path / "results")
    spec = load_spec(tmp_path / "quickstart.yaml", [f"storage.root={tmp_path / 'results'}"])
    _, md, _ = write_report(Scope.of_spec(spec))
    again, committed = _sections(md.read_text()), _sections((STUDY / "quickstart.md").read_text())
    assert again.keys() == committed.keys()
    for head in again:
        assert again[head] == committed[head], f"section {head!r} differs: run `make reference-reports`"


def test_a_folder_that_is_not_a_study_is_refused_in_one_line(tmp_path, capsys):
    assert main([str(tmp_path), "--root", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0] and not (tmp_path / "results").exists()
