"""Reports and MLflow sweep runs belong to a scope (the file plus overrides). Before, every invocation of
one name wrote `reports/<name>.md` and reused one sweep run: a 1-cell try-out replaced the whole file's
report and left a stale figure beside it. Now overrides that change the cell set write
`<name>@<8 hex of the scope id>.md` and get their own sweep run; the plain file keeps `<name>.md`; a
figure the scope's new report no longer draws is removed, and no other report's file is touched."""
from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.scope import Scope, cell_set_id
from orchestrator.spec import load_spec
from orchestrator.tracking import KIND_TAG, SCOPE_TAG

HEBBIAN = """
name: rs
experiment: capacity
fixed: {{geometry: spherical, method: hebbian_whitened, d: 8}}
grid: {{num_facts: [8, 16, 32]}}
search: {{low: 1, high: 64, strategy: kary, arity: 3}}
storage: {{root: '{root}'}}
"""


@pytest.mark.slow
def test_an_overridden_run_writes_its_own_report_and_sweep_run(tmp_path, capsys):
    path = tmp_path / "rs.yaml"
    path.write_text(HEBBIAN.format(root=tmp_path / "results"))
    reports = tmp_path / "results" / "reports"
    assert main(["run", str(path), "--inline"]) == 0
    whole = (reports / "rs.md").read_text()
    assert "Covers the 3 cells of" in whole

    one = ["grid.num_facts=[8]"]
    scope = Scope.of_spec(load_spec(path, one))
    assert scope.report_name == f"rs@{cell_set_id(scope.cell_ids)[:8]}" and len(scope.cell_ids) == 1
    assert Scope.of_spec(load_spec(path, [f"storage.root={tmp_path / 'results'}"])).report_name == "rs"  # same cells
    assert main(["run", str(path), *one, "--inline"]) == 0
    out = capsys.readouterr().out
    assert (reports / "rs.md").read_text() == whole, "the 1-cell run replaced the whole file's report"
    scoped = reports / f"{scope.report_name}.md"
    assert f"report: {scoped}" in out and "Covers the 1 cells of" in scoped.read_text()
    assert (reports / f"{scope.report_name}-cells.csv").read_text().count("\n") == 2  # header and its one cell

    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("rs").experiment_id
    runs = client.search_runs([experiment], filter_string=f"tags.`{KIND_TAG}` = 'sweep'")
    assert sorted((r.info.run_name, r.data.tags[SCOPE_TAG]) for r in runs) == [
        ("rs", "rs"), (scope.report_name, scope.report_name)]
    artifacts = {r.info.run_name: [a.path for a in client.list_artifacts(r.info.run_id, "report")] for r in runs}
    assert "report/rs.md" in artifacts["rs"] and f"report/{scope.report_name}.md" in artifacts[scope.report_name]


@pytest.mark.slow
def test_a_new_report_removes_the_figures_its_scope_no_longer_draws(tmp_path, capsys):
    path = tmp_path / "rs.yaml"
    path.write_text(HEBBIAN.format(root=tmp_path / "results"))
    assert main(["run", str(path), "--inline"]) == 0
    reports = tmp_path / "results" / "reports"
    drawn = sorted(p.name for p in reports.glob("rs-*.png"))
    assert "rs-accuracy_vs_width.png" in drawn
    # What an earlier report of this scope left: a figure this sweep cannot draw (ρ does not vary here);
    # beside it, files of other reports whose names start alike.
    stale = [reports / "rs-params_vs_inverse_rho.png", reports / "rs-params_vs_inverse_rho.pdf"]
    others = [reports / "rs-2-params_vs_inverse_rho.png", reports / "rs@0123abcd-params_vs_inverse_rho.png",
              reports / "rs-notes.png"]
    for p in stale + others:
        p.write_bytes(b"old")
    capsys.readouterr()
    assert main(["report", str(path)]) == 0
    assert not any(p.exists() for p in stale), "a figure the new report does not show was left beside it"
    assert all(p.read_bytes() == b"old" for p in others), "another report's file was removed"
    assert sorted(p.name for p in reports.glob("rs-*.png")) == sorted(drawn + ["rs-2-params_vs_inverse_rho.png",
                                                                             "rs-notes.png"])
    assert "params_vs_inverse_rho" not in (reports / "rs.md").read_text()
