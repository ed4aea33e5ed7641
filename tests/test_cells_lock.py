"""Drivers lock the cells they run, not the sweep's name. Before, a second `run` of other seeds of one
sweep was refused ("a second driver would run the same probes", which was false). Now two real drivers
of disjoint seeds run at the same time and both finish (neither closes the other's invocation or sweep
run); a driver whose cells overlap a running one is refused in one line naming the shared cells and the
other driver; commands that rewrite the whole sweep still wait for no driver."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cells_lock import CellsLock
from orchestrator.cli import main
from orchestrator.store import Store
from orchestrator.tracking import KIND_TAG, SCOPE_TAG
from sweep_files import synthetic_sweep

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1",
       "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _driver(path: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(path), *overrides, "--inline"],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_probes(store: Store, sweep: str, driver: subprocess.Popen, n: int = 1) -> None:
    while len(store.load("probes", sweep, missing_ok=True)) < n and driver.poll() is None:
        time.sleep(0.05)
    assert driver.poll() is None, driver.communicate()


def _stop(*drivers: subprocess.Popen) -> None:
    for d in drivers:
        if d.poll() is None:
            os.killpg(d.pid, signal.SIGKILL)
            d.wait()


@pytest.mark.slow
def test_two_drivers_of_disjoint_seeds_run_at_the_same_time(tmp_path, shared_tracking):
    """The first driver (seed 0) has far more probes than it is given time for; the second (seed 1) starts
    once the first has recorded a probe and runs to its end while the first still runs; then the first is
    stopped as Ctrl-C does. Each keeps its own invocation and sweep run: the second closed neither."""
    path = synthetic_sweep(tmp_path / "split.yaml", "split", tmp_path / "results", probes=4, sleep=0.25,
                           probes_per_task=1)
    store = Store(tmp_path / "results")
    first = _driver(path, "grid.seed=[0]", "fixed.num_probes=400", "fixed.rounds=200", shared_tracking)
    second = None
    try:
        _wait_for_probes(store, "split", first)
        second, began = _driver(path, "grid.seed=[1]", shared_tracking), time.time()
        out, err = second.communicate(timeout=300)
        assert first.poll() is None, ("the first driver ended before the second did: they did not run together",
                                      first.communicate()[0][-300:], out[-300:], err, time.time() - began)
        os.killpg(first.pid, signal.SIGINT)
        _, stopped = first.communicate(timeout=60)
    finally:
        _stop(first, *([second] if second else []))
    assert second.returncode == 0 and "1/1 cells done, 4 probes run (0 failed)" in out, (second.returncode, out, err)
    assert first.returncode == 130 and stopped.startswith("factsweep: interrupted: "), (first.returncode, stopped)
    probes = store.load("probes", "split")
    assert (probes["seed"] == 1).sum() == 4 and (probes["seed"] == 0).sum() >= 1
    states = store.load("invocations", "split").set_index("overrides")["state"].to_dict()
    assert sorted(states.values()) == ["finished", "interrupted"], states  # not 'killed' by the other driver
    client = MlflowClient(shared_tracking.split("=", 1)[1])
    experiment = client.get_experiment_by_name("split").experiment_id
    sweep_runs = client.search_runs([experiment], filter_string=f"tags.`{KIND_TAG}` = 'sweep'")
    assert sorted(r.info.status for r in sweep_runs) == ["FINISHED", "KILLED"]  # one per scope
    assert len({r.data.tags[SCOPE_TAG] for r in sweep_runs}) == 2
    assert len(client.search_runs([experiment], filter_string=f"tags.`{KIND_TAG}` = 'cell'")) == 1
    assert not list((tmp_path / "results" / "locks" / "split").rglob("*.lock")), "a driver left a lock behind"


@pytest.mark.slow
def test_a_driver_of_overlapping_cells_is_refused_naming_the_cells_and_the_driver(tmp_path, capsys, shared_tracking):
    path = synthetic_sweep(tmp_path / "overlap.yaml", "overlap", tmp_path / "results", probes=16, sleep=0.5,
                           probes_per_task=1)
    store = Store(tmp_path / "results")
    first = _driver(path, "fixed.rounds=16", shared_tracking)  # seeds 0 and 1, a probe recorded at a time
    try:
        _wait_for_probes(store, "overlap", first)
        code = main(["run", str(path), "grid.seed=[1, 2]", "fixed.rounds=16", shared_tracking, "--inline"])
        out, err = capsys.readouterr()
        assert first.poll() is None, ("the first driver ended before the second was refused: nothing was tested", code, out, err)
        first.communicate(timeout=120)
    finally:
        _stop(first)
    assert code == 1 and out == "" and len(err.splitlines()) == 1, (code, out, err)
    assert re.fullmatch(rf"factsweep: error: sweep 'overlap' is being run by pid {first.pid} on host "
                        rf"{re.escape(socket.gethostname())} since [0-9: -]+ on 1 of these cells \(seed=1\) "
                        r"\(locks under \S+\); wait .*\n", err), err
    assert first.returncode == 0
    probes = store.load("probes", "overlap")
    assert sorted(set(probes["seed"])) == [0, 1], "the refused driver ran probes"
    assert list(store.load("invocations", "overlap")["state"]) == ["finished"]


def test_commands_that_rewrite_the_sweep_wait_for_no_driver_of_its_cells(tmp_path, capsys):
    """`extra-cells --move-aside` and `mlflow-sync` hold the whole sweep: refused while a driver holds some
    of its cells, naming it; and a driver is refused while one of them holds the sweep."""
    path = synthetic_sweep(tmp_path / "whole.yaml", "whole", tmp_path / "results")
    with CellsLock(tmp_path / "results", "whole", {"0123456789abcdef": "seed=7"}):
        for command in (["extra-cells", str(path), "--move-aside"], ["mlflow-sync", str(path)]):
            assert main(command) == 1
            err = capsys.readouterr().err
            assert len(err.splitlines()) == 1 and f"is being run by pid {os.getpid()} on host" in err, err
    from orchestrator.lock import SweepLock
    with SweepLock(tmp_path / "results", "whole"):
        with pytest.raises(Exception, match=rf"sweep 'whole' is being run by pid {os.getpid()}.*rewrites"):
            CellsLock(tmp_path / "results", "whole", {"0123456789abcdef": "seed=7"}).__enter__()
    with CellsLock(tmp_path / "results", "whole", {"a" * 16: "seed=0"}) as first, \
            CellsLock(tmp_path / "results", "whole", {"b" * 16: "seed=1"}) as second:
        assert second.epoch == first.epoch + 1  # each driver its own epoch, drawn under a lock
    assert not (tmp_path / "results" / "locks" / "whole.lock").exists(), "the last driver out removes the name's file"
