"""What a researcher reads covers exactly the sweep file: its cells by id, its replicates aggregated,
the invocations that made them, and a clear error instead of an empty frame."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from orchestrator.cli import main
from orchestrator.identity import cell_id, probe_id
from orchestrator.report import write_report
from orchestrator.runner import run_sweep
from orchestrator.scope import Scope
from orchestrator.spec import load_spec
from orchestrator.store import Store, UnknownResults, load

SEEDS = "seeds: [0, 1, 2]\n"
OTHER = ["fixed.gd_epochs=50", "grid.method=[gd]", "grid.num_facts=[8]"]


@pytest.mark.slow  # three sweeps through the CLI: not in make test-fast
def test_a_file_covers_only_its_cells_and_the_others_can_be_listed_and_set_aside(ray_session, tiny_sweep, capsys):
    path = tiny_sweep("mixed", SEEDS)
    assert main(["run", str(path)]) == 0
    plain = capsys.readouterr().out
    assert main(["run", str(path), *OTHER]) == 0  # same name, other cells (different epochs)
    capsys.readouterr()
    assert main(["run", str(path)]) == 0  # the plain file again: nothing to run
    again = capsys.readouterr().out
    table = lambda out: [line for line in out.splitlines() if line.strip().startswith(("gd ", "hebbian_whitened "))]
    assert table(again) == table(plain) and len(table(plain)) == 4  # 2 methods x 2 F, over 3 seeds each
    assert "3 other cell(s) recorded under the name 'mixed' are not in this file" in again

    spec = load_spec(path)
    store = Store(spec.results_root)
    assert len(store.load("cells", "mixed")) == 15  # 12 of the file + 3 of the override invocation
    _, md, summary = write_report(Scope.of_spec(spec), n_boot=50)
    assert len(summary) == 4 and set(summary["n"]) == {3}
    assert summary["params 95% CI"].str.startswith("[").all()
    text = md.read_text()
    assert "Covers the 12 cells of" in text and "3 other cell(s)" in text
    fits = store.load("fits", "mixed")
    assert fits["cell_ids"].map(len).max() <= 6  # a fit sees one method's 2 F x 3 seeds, never the others

    assert main(["extra-cells", str(path)]) == 0
    listing = capsys.readouterr().out
    assert "gd_epochs" in listing.splitlines()[0] and listing.count(" 50 ") == 3
    others = Scope.of_spec(spec).others(store)
    assert len(others) == 3 and set(others["gd_epochs"]) == {50}
    assert main(["extra-cells", str(path), "--move-aside"]) == 0
    assert "moved 3 cell rows" in capsys.readouterr().out
    assert len(store.load("cells", "mixed")) == 12 and len(Scope.of_spec(spec).others(store)) == 0
    aside = Store(store.root / "set_aside").load("cells", "mixed")
    assert set(aside["cell_id"]) == set(others["cell_id"])  # moved, not deleted
    assert main(["extra-cells", str(path), *OTHER]) == 0  # seen from the override, the file's 12 are the extra ones
    assert "12 cell(s) recorded under this name are not defined" in capsys.readouterr().out


def test_every_row_names_the_invocation_and_code_that_made_it(tiny_sweep, shared_tracking):
    path = tiny_sweep("made", "")
    spec = load_spec(path, ["grid.num_facts=[8]", shared_tracking])
    run_sweep(spec, progress=False, executor="inline")
    con = Store(spec.results_root).connect()
    rows = con.execute("select c.cell_id, i.overrides, i.code_version, i.state, i.host, i.file_sha256 "
                       "from cells c join invocations i using (invocation_id)").df()
    assert len(rows) == 2 and (rows["state"] == "finished").all()
    assert json.loads(rows["overrides"].iloc[0]) == ["grid.num_facts=[8]", shared_tracking]
    assert len(rows["file_sha256"].iloc[0]) == 64
    probes = con.execute("select count(*) from probes where invocation_id is null or code_version is null").fetchone()
    assert probes[0] == 0


def test_a_non_monotone_search_is_flagged_in_the_report(tiny_sweep, shared_tracking):
    """Probes recorded as failing at 9, storing at 10 and 11, failing at 12, storing from 13: the search
    is done from its records, and the report marks the cell with both widths."""
    path = tiny_sweep("flicker", "")
    spec = load_spec(path, ["grid.method=[hebbian_whitened]", "grid.num_facts=[16]", shared_tracking])
    (config,) = spec.cells
    cid = cell_id("capacity", config)
    outcome = {9: False, 10: True, 11: True, 12: False, 13: True, 14: True, 15: True}
    rows = [{"cell_id": cid, "probe_id": probe_id(cid, {"width": w}), "experiment": "capacity", **config,
             "width": w, "params": 3 * 8 * w, "accuracy": 1.0 if ok else 0.9, "success": ok, "margin_min": 0.1,
             "rho": 0.5, "coherence": 0.5, "status": "ok", "error": None} for w, ok in outcome.items()]
    Store(spec.results_root).append("probes", "flicker", rows)
    report = run_sweep(spec, progress=False)  # nothing to run: the cell is finished from its records
    assert report.probes_run == 0 and report.cells_done == 1
    cell = Store(spec.results_root).load("cells", "flicker").iloc[0]
    assert cell["min_width"] == 10 and cell["stable_width"] == 13 and not cell["monotone"]
    _, md, _ = write_report(Scope.of_spec(spec), n_boot=20)
    text = md.read_text()
    assert "† non-monotone: stores at 10, fails above; every probed width from 13 stores" in text
    assert "stored at a width and failed at a wider one in 1 of 1 cells" in text


def test_unknown_tables_and_sweeps_are_errors_with_a_suggestion(tmp_path, capsys):
    root = tmp_path / "results"
    Store(root).append("cells", "quickstart", [{"cell_id": "c", "experiment": "capacity"}])
    Store(root).append("probes", "quickstart", [{"probe_id": "p", "cell_id": "c", "experiment": "capacity"}])
    with pytest.raises(UnknownResults, match="no table 'cell' .*did you mean 'cells'"):
        load("cell", root=root)
    with pytest.raises(UnknownResults, match="no sweep 'quickstrat' .*did you mean 'quickstart'"):
        load("cells", "quickstrat", root=root)
    with pytest.raises(UnknownResults, match="nothing is recorded there"):
        load("cells", root=tmp_path / "elsewhere")
    assert isinstance(load("cells", "quickstart", root=root), pd.DataFrame)
    assert main(["fit", "quickstart", "--root", str(root), "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--bootstrap: got 0; allowed: an integer in [1, 100000]" in err
    assert main(["report", "quickstrat", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'quickstart'" in err and "Traceback" not in err
