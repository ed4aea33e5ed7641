"""One driver per sweep: a second `run` or `mlflow-sync` of a running sweep stops at once with one line
naming the holder; a lock whose holder died (kill -9) is taken over; and two real `run`s started
together leave every cell in Parquet and in MLflow exactly once."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.lock import SweepLock
from orchestrator.store import Store
from orchestrator.tracking import CELL_TAG, KIND_TAG, default_uri

SYNTHETIC = """
name: {name}
experiment: synthetic
fixed: {{num_probes: 2, sleep: {sleep}}}
grid: {{seed: [0, 1]}}
packing: {{probes_per_task: 1}}
storage: {{root: '{root}'}}
"""
HOLD = """
import sys, time
from orchestrator.lock import SweepLock
with SweepLock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(600)
"""
REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def sweep(tmp_path: Path, name: str, sleep: float = 0.0) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SYNTHETIC.format(name=name, sleep=sleep, root=tmp_path / "results"))
    return path


@pytest.mark.parametrize("command", ["run", "mlflow-sync"])
def test_a_held_sweep_refuses_a_second_driver(tmp_path, capsys, command):
    path = sweep(tmp_path, "held")
    with SweepLock(tmp_path / "results", "held"):
        code = main([command, str(path)])
    out, err = capsys.readouterr()
    assert code == 1 and out == "", (code, out, err)
    assert re.fullmatch(rf"factsweep: error: sweep 'held' is being run by pid {os.getpid()} on host "
                        rf"{re.escape(socket.gethostname())} since [0-9: -]+ \(lock \S+\); .*\n", err), err
    assert Store(tmp_path / "results").load("probes", "held").empty, "the second driver ran probes"
    assert not (tmp_path / "results" / "mlflow.db").exists(), "the second driver touched MLflow"


def test_a_lock_left_by_a_killed_driver_is_taken_over(ray_session, tmp_path, capsys):
    path = sweep(tmp_path, "stale")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "results"), "stale"], env=ENV,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["run", str(path)]) == 1
        assert f"pid {holder.pid} on host" in capsys.readouterr().err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / "results" / "locks" / "stale.lock").exists(), "kill -9 leaves the lock file behind"
    assert main(["run", str(path)]) == 0
    assert "2/2 cells done, 4 probes run" in capsys.readouterr().out
    assert not (tmp_path / "results" / "locks" / "stale.lock").exists(), "a finished run removes its lock file"


@pytest.mark.slow
def test_two_runs_of_one_sweep_at_once(tmp_path):
    """Two real `factsweep run` of one sweep, started together on a fresh results folder: one runs it,
    the other exits 1 at once naming the first; MLflow and Parquet hold every cell once."""
    path = sweep(tmp_path, "twice", sleep=0.3)
    env = {k: v for k, v in ENV.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    runs = [subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(path)], env=env, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
            for _ in range(2)]
    try:
        results = [(r.pid, r.wait(timeout=240), *r.communicate()) for r in runs]
    finally:
        for r in runs:
            if r.poll() is None:
                os.killpg(r.pid, signal.SIGKILL)
    assert sorted(code for _, code, _, _ in results) == [0, 1], results
    (winner, _, done, _), (_, _, out, err) = sorted(results, key=lambda r: r[1])
    assert out == "" and len(err.splitlines()) == 1, err
    assert f"is being run by pid {winner} on host {socket.gethostname()}" in err, err
    assert "2/2 cells done, 4 probes run (0 failed)" in done
    cells = Store(tmp_path / "results").load("cells", "twice")
    probes = Store(tmp_path / "results").load("probes", "twice")
    assert len(cells) == 2 and len(probes) == 4
    client = MlflowClient(default_uri(tmp_path / "results"))
    runs = client.search_runs([client.get_experiment_by_name("twice").experiment_id],
                              filter_string=f"tags.`{KIND_TAG}` = 'cell'")
    assert sorted(r.data.tags[CELL_TAG] for r in runs) == sorted(cells["cell_id"])
    print(f"\ntwo runs at once: {err.strip()}")
