"""Results written by older versions of factsweep, read by this one (docs/reliability.md, guarantee 12).

``tests/fixtures/compat/<commit>/`` holds the Parquet tables of one tiny capacity sweep (2 cells: gd and
hebbian_whitened, d 8, 16 facts), run with that commit's own code from its worktree; ``compat.yaml`` beside
them is the sweep file as that version spelled it. caee7aa wrote result schema 2 (this code's) under cell
ids that options added since have changed; fdc9a8f wrote schema 1, whose columns meant something else.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from orchestrator.cli import main
from orchestrator.store import Store

FIXTURES = Path(__file__).parent / "fixtures" / "compat"
# The same sweep in today's spelling (gd's options nested; fdc9a8f wrote `epochs` and `lr` at the top).
TODAY = """name: compat
experiment: capacity
fixed:
  geometry: spherical
  seed: 0
  gd: {{epochs: 200, lr: 0.01}}
grid:
  method: [gd, hebbian_whitened]
  d: [8]
  num_facts: [16]
search: {{param: width, low: 1, high: 32, strategy: kary, arity: 3, threshold: 1.0}}
resources: {{num_cpus: 1}}
packing: {{probes_per_task: 4}}
storage: {{root: '{root}'}}
"""


def copied(commit: str, tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "results"
    shutil.copytree(FIXTURES / commit, root, ignore=shutil.ignore_patterns("*.yaml"))
    sweep = tmp_path / "compat.yaml"
    sweep.write_text(TODAY.format(root=root))
    return root, sweep


def raw_rows(root: Path, table: str) -> int:
    return sum(pq.read_metadata(p).num_rows for p in (root / table).rglob("*.parquet"))


def snapshot(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.parametrize("commit", ["caee7aa", "fdc9a8f"])
def test_every_row_of_an_older_version_is_read(commit, tmp_path, capsys):
    root, _ = copied(commit, tmp_path)
    store = Store(root)
    for table in ("probes", "cells"):
        assert len(store.load(table, "compat")) == raw_rows(root, table) > 0
    assert not (root / "quarantine").exists()
    assert main(["status", "compat", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"cells done 2, cells with probes 2, probes ok {raw_rows(root, 'probes')}, probes failed 0" in out


@pytest.mark.slow  # two inline runs of the fixture sweep
def test_cells_whose_ids_an_added_option_changed_are_adopted_not_run_again(tmp_path, capsys):
    root, sweep = copied("caee7aa", tmp_path)
    old_cells = Store(root).load("cells", "compat").set_index("method")
    assert main(["plan", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "compat: 2 cells: 0 done, 2 to run" in out and "`factsweep run" in out and "adopts them" in out
    assert main(["run", str(sweep), "--inline"]) == 0
    out = capsys.readouterr().out
    assert "adopted 2 cell(s) and 19 probe(s)" in out and "compat: 2/2 cells done, 0 probes run" in out
    cells = Store(root).load("cells", "compat").set_index("method")
    assert len(cells) == 2 and set(cells["adopted_from"]) == set(old_cells["cell_id"])
    assert cells["min_width"].to_dict() == old_cells["min_width"].to_dict()  # the old answers, not new runs
    aside = Store(root / "set_aside").load("cells", "compat")  # the old rows: moved, never deleted
    assert set(aside["cell_id"]) == set(old_cells["cell_id"])
    assert main(["run", str(sweep), "--inline"]) == 0  # a second resume: nothing to adopt, nothing to run
    out = capsys.readouterr().out
    assert "adopted" not in out and "0 probes run" in out and "other cell(s)" not in out


def test_plan_and_extra_cells_show_the_cells_an_added_option_renamed(tmp_path, capsys):
    """What docs/contributing.md tells a contributor who adds an option: `plan` counts the cells whose
    ids it changed and `extra-cells` lists them by their old ids, before anything is written."""
    root, sweep = copied("caee7aa", tmp_path)
    old = set(Store(root).load("cells", "compat")["cell_id"])
    before = snapshot(tmp_path)
    assert main(["plan", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert ("2 cell(s) recorded by an older factsweep under other cell ids are these cells with the options added "
            f"since at their defaults: `factsweep run {sweep}` adopts them (nothing re-run)") in out
    assert main(["extra-cells", str(sweep)]) == 0
    listed = capsys.readouterr().out
    assert all(cid in listed for cid in old) and "2 cell(s) recorded under this name are not defined by" in listed
    assert snapshot(tmp_path) == before  # looking writes nothing


def test_an_older_result_schema_is_refused_in_one_line_until_set_aside(tmp_path, capsys):
    root, sweep = copied("fdc9a8f", tmp_path)
    before = snapshot(tmp_path)
    for command in ("plan", "run"):
        assert main([command, str(sweep), "--inline"] if command == "run" else [command, str(sweep)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert "holds 2 cell(s) recorded under result schema 1 (this code writes 2" in err
        assert f"`factsweep extra-cells {sweep} --move-aside`" in err
    assert snapshot(tmp_path) == before  # nothing written
    assert main(["extra-cells", str(sweep), "--move-aside"]) == 0
    capsys.readouterr()
    assert main(["plan", str(sweep)]) == 0
    assert "compat: 2 cells: 0 done, 2 to run" in capsys.readouterr().out
