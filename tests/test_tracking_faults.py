"""MLflow is a view: whatever state its store is in, a sweep runs to the end with one warning line, and
MLflow never holds a cell twice. Real sqlite databases, real Ray, real Parquet."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.store import Store
from orchestrator.scope import Scope
from orchestrator.spec import load_spec
from orchestrator.tracking import CELL_TAG, KIND_TAG, SCOPE_TAG, SWEEP_TAG, Tracker, default_uri
from sweep_files import synthetic_sweep

REPO = Path(__file__).resolve().parents[1]


def sweep(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    synthetic_sweep(path, name, tmp_path / "results")
    return path


def runs_of(root: Path, name: str, kind: str) -> list:
    client = MlflowClient(default_uri(root))
    experiment = client.get_experiment_by_name(name)
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`{KIND_TAG}` = '{kind}'")


def run_and_warn_once(path: Path, caplog, capsys) -> str:
    """`factsweep run` completes the sweep; the only thing MLflow costs is one warning line."""
    with caplog.at_level(logging.WARNING):
        assert main(["run", str(path), "--inline"]) == 0
    out, err = capsys.readouterr()
    assert "2/2 cells done, 4 probes run (0 failed)" in out and "Traceback" not in err
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0], warnings
    assert len(Store(path.parent / "results").load("cells", path.stem)) == 2
    return warnings[0]


def test_corrupt_database_warns_once_and_the_sweep_completes(tmp_path, caplog, capsys):
    path = sweep(tmp_path, "corrupt")
    database = tmp_path / "results" / "mlflow.db"
    database.parent.mkdir()
    database.write_bytes(b"not a database, whatever MLflow hoped " * 500)
    warning = run_and_warn_once(path, caplog, capsys)
    assert f"MLflow database {database} cannot be used" in warning and "file is not a database" in warning
    assert "move the file aside and run `factsweep mlflow-sync`" in warning
    database.rename(tmp_path / "mlflow.db.broken")  # as the warning says
    assert main(["mlflow-sync", str(path)]) == 0
    assert len(runs_of(tmp_path / "results", "corrupt", "cell")) == 2


def test_a_cell_is_never_logged_twice(tmp_path):
    """Even when a second caller has not seen the first run (it listed the logged cells before)."""
    root = tmp_path / "results"
    cell = {"cell_id": "0123456789abcdef", "config": {"seed": 0}, "summary": {"num_ok": 2}, "run_name": "c"}
    first, second = (Tracker(default_uri(root), "twice", root) for _ in range(2))
    assert first.logged_cells() == set() and second.logged_cells() == set()
    first.log_cell("twice", cell, Store(root).load("probes", "twice", missing_ok=True))
    second.log_cell("twice", cell, Store(root).load("probes", "twice", missing_ok=True))
    assert [r.data.tags[CELL_TAG] for r in runs_of(root, "twice", "cell")] == ["0123456789abcdef"]
    assert not first.failed and not second.failed


def test_next_run_closes_a_sweep_run_a_killed_driver_left_running(tmp_path, capsys):
    """The sweep run is reused by every invocation of its scope; one a killed driver left RUNNING is closed KILLED
    by the next run (the sweep's lock proves it stale), whether that run has work or not."""
    path = sweep(tmp_path, "orphans")
    root = tmp_path / "results"
    assert main(["run", str(path), "--inline"]) == 0
    mine = Tracker(default_uri(root), "orphans", root)
    mine.client.update_run(mine.sweep_run(), status="RUNNING")  # what a driver killed mid-sweep leaves
    unrelated = Tracker(default_uri(root), "orphans", root, "another-sweep")  # another sweep, same experiment
    unrelated.client.update_run(unrelated.sweep_run(), status="RUNNING")
    assert main(["run", str(path), "--inline"]) == 0  # nothing to run, but the stale run is closed
    states = {r.data.tags[SWEEP_TAG]: r.info.status for r in runs_of(root, "orphans", "sweep")}
    assert states == {"orphans": "KILLED", "another-sweep": "RUNNING"}, states
    assert main(["run", str(path), "fixed.num_probes=3", "--inline"]) == 0  # other cells: a sweep run of their own scope
    scoped = Scope.of_spec(load_spec(path, ["fixed.num_probes=3"])).report_name
    states = {r.data.tags.get(SCOPE_TAG, r.data.tags[SWEEP_TAG]): r.info.status for r in runs_of(root, "orphans", "sweep")}
    assert scoped.startswith("orphans@") and states == {"orphans": "KILLED", scoped: "FINISHED",
                                                        "another-sweep": "RUNNING"}, states


CREATE = """
import sys, time
from pathlib import Path
from orchestrator.tracking import Tracker, default_uri
root, go = Path(sys.argv[1]), Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.01)
tracker = Tracker(default_uri(root), sys.argv[3], root)
tracker.sweep_run()
tracker.finish()
sys.exit(1 if tracker.failed else 0)
"""


@pytest.mark.slow
def test_two_first_runs_create_the_database_together(tmp_path):
    """Two drivers (of different sweeps, so no lock keeps them apart) open a fresh results folder's
    MLflow database at the same instant: both log, neither sees `duplicate column name`."""
    root, go = tmp_path / "results", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    drivers = [subprocess.Popen([sys.executable, "-c", CREATE, str(root), str(go), name], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for name in ("a", "b")]
    try:
        assert [d.stdout.readline().strip() for d in drivers] == ["ready", "ready"]  # both imported MLflow
        go.touch()
        outputs = [(d.wait(timeout=120), d.communicate()[0]) for d in drivers]
    finally:
        for d in drivers:
            if d.poll() is None:
                d.kill()
                d.wait()
    assert [code for code, _ in outputs] == [0, 0], outputs
    assert all(out == "" for _, out in outputs), outputs
    assert sorted(p.name for p in root.iterdir()) == ["mlflow.db"], "a temporary database was left behind"
    client = MlflowClient(default_uri(root))
    assert sorted(e.name for e in client.search_experiments()) == ["a", "b"]  # and no empty "Default" (retired on creation)


def test_two_sweeps_sharing_an_experiment_each_log_every_cell(tmp_path, capsys):
    """`tracking.experiment: shared` in two sweeps whose cells are the same configurations (so the same
    cell ids): each sweep's cells are its own runs. (Before: the second sweep's cells were taken as logged.)"""
    for name in ("first", "second"):
        assert main(["run", str(sweep(tmp_path, name)), "tracking.experiment=shared", "--inline"]) == 0
    capsys.readouterr()
    by_sweep = {}
    for run in runs_of(tmp_path / "results", "shared", "cell"):
        by_sweep.setdefault(run.data.tags[SWEEP_TAG], []).append(run.data.tags[CELL_TAG])
    cells = sorted(Store(tmp_path / "results").load("cells", "first")["cell_id"])
    assert {k: sorted(v) for k, v in by_sweep.items()} == {"first": cells, "second": cells}, by_sweep


def test_an_experiment_deleted_in_the_ui_is_restored(tmp_path, caplog, capsys):
    """Deleting the sweep's experiment in the MLflow UI does not disable tracking for good: the next run
    restores it and logs its cells, with no warning. (Before: a warning on every run, nothing logged.)"""
    path = sweep(tmp_path, "deleted")
    assert main(["run", str(path), "--inline"]) == 0
    client = MlflowClient(default_uri(tmp_path / "results"))
    client.delete_experiment(client.get_experiment_by_name("deleted").experiment_id)
    with caplog.at_level(logging.WARNING):
        assert main(["run", str(path), "fixed.num_probes=3", "--inline"]) == 0
        assert main(["mlflow-sync", str(path)]) == 0
    capsys.readouterr()
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert client.get_experiment_by_name("deleted").lifecycle_stage == "active"
    logged = {r.data.tags[CELL_TAG] for r in runs_of(tmp_path / "results", "deleted", "cell")}
    assert set(Store(tmp_path / "results").load("cells", "deleted")["cell_id"]) <= logged
