"""A driver stopped by SIGTERM (`kill`) or SIGHUP (a closed terminal) under Ray ends as Ctrl-C does: one
line, exit 130, the invocation 'interrupted' and the sweep run KILLED. (Before: SIGTERM exited 134 with
Ray's C++ stack dump, SIGHUP left the invocation 'running' and the MLflow run RUNNING.) An invocation a
driver that died unannounced (kill -9) left 'running' is closed 'killed' by the next run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.provenance import new_invocation
from orchestrator.spec import load_spec
from orchestrator.store import Store
from orchestrator.tracking import KIND_TAG, default_uri
from sweep_files import synthetic_sweep

REPO = Path(__file__).resolve().parents[1]


def sweep(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    synthetic_sweep(path, name, tmp_path / "results", probes=6, sleep=0.3, probes_per_task=1)
    return path


def test_an_invocation_left_running_by_a_dead_driver_is_closed_by_the_next_run(tmp_path, capsys, shared_tracking):
    path = sweep(tmp_path, "stale")
    store = Store(tmp_path / "results")
    dead = new_invocation(load_spec(path), command="run", address=None)  # what a kill -9 leaves
    store.append("invocations", "stale", [dead])
    assert main(["run", str(path), "fixed.sleep=0", shared_tracking, "--inline"]) == 0
    capsys.readouterr()
    states = store.load("invocations", "stale").set_index("invocation_id")["state"].to_dict()
    assert states.pop(dead["invocation_id"]) == "killed" and list(states.values()) == ["finished"], states


def test_sighup_stops_a_run_like_ctrl_c(tmp_path, capsys, shared_tracking):
    """A closed terminal: SIGHUP to this process (a timer thread sends it once a probe is recorded)."""
    path = sweep(tmp_path, "hangup")
    store = Store(tmp_path / "results")

    def hang_up():
        while len(store.load("probes", "hangup", missing_ok=True)) < 2:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGHUP)
    threading.Thread(target=hang_up, daemon=True).start()
    started = time.monotonic()
    assert main(["run", str(path), shared_tracking, "--inline"]) == 130
    assert time.monotonic() - started < 15, "closing the sweep run waited out sqlite's busy timeout"
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("factsweep: interrupted: "), err
    assert list(store.load("invocations", "hangup")["state"]) == ["interrupted"]
    client = MlflowClient(shared_tracking.split("=", 1)[1])
    runs = client.search_runs([client.get_experiment_by_name("hangup").experiment_id],
                              filter_string=f"tags.`{KIND_TAG}` = 'sweep'")
    assert [r.info.status for r in runs] == ["KILLED"]


def test_a_stop_signal_waits_for_an_mlflow_write_to_end():
    """A signal that arrives while MLflow's sqlite store is written (an interrupted transaction kept the
    database locked: closing the sweep run then waited 20 s and failed, leaving it RUNNING) is raised
    when the write ends."""
    from orchestrator.interrupts import uninterrupted
    from orchestrator.runner import stop_signals_as_ctrl_c
    steps = []
    with stop_signals_as_ctrl_c(), pytest.raises(KeyboardInterrupt, match="SIGHUP"):
        with uninterrupted():
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.2)  # the handler has run by now
            steps.append("write ended")
        steps.append("after the block")
    assert steps == ["write ended"]


@pytest.mark.slow  # a real `factsweep run`, joining the session's Ray
@pytest.mark.parametrize("signum", ["SIGTERM"])
def test_sigterm_or_sighup_under_ray_stop_like_ctrl_c(ray_session, tmp_path, signum):
    path = sweep(tmp_path, signum.lower())
    store = Store(tmp_path / "results")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "PYTHONUNBUFFERED": "1"}
    address = ray_session.get_runtime_context().gcs_address
    driver = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(path), "--address", address],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(store.load("probes", path.stem, missing_ok=True)) < 2 and driver.poll() is None:
            assert time.monotonic() < deadline, "no probe recorded within 120 s"
            time.sleep(0.1)
        driver.send_signal(getattr(signal, signum))
        out, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 130, (driver.returncode, err[-2000:])
    assert len(err.splitlines()) == 1 and err.startswith("factsweep: interrupted: "), err[-2000:]
    assert list(store.load("invocations", path.stem)["state"]) == ["interrupted"]
    client = MlflowClient(default_uri(tmp_path / "results"))
    experiment = client.get_experiment_by_name(path.stem).experiment_id
    runs = client.search_runs([experiment], filter_string=f"tags.`{KIND_TAG}` = 'sweep'")
    assert [r.info.status for r in runs] == ["KILLED"]


def test_sigterm_from_the_first_moment_stops_like_ctrl_c_and_the_resume_redoes_nothing(tmp_path, capsys,
                                                                                     shared_tracking):
    """SIGTERM sent as soon as the sweep's lock exists (while the run plans, before any executor; before,
    handlers were installed only once Ray was up and such a signal ended the process silently): one line,
    exit 130, invocation 'interrupted', no MLflow run RUNNING; the resume runs exactly the probes not
    recorded."""
    path = sweep(tmp_path, "early")
    store, lock = Store(tmp_path / "results"), tmp_path / "results" / "locks" / "early.lock"

    def terminate():
        while not lock.exists():
            time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=terminate, daemon=True).start()
    assert main(["run", str(path), shared_tracking, "--inline"]) == 130
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("factsweep: interrupted: ") and "Traceback" not in err, err
    recorded = len(store.load("probes", "early", missing_ok=True))
    invocations = store.load("invocations", "early", missing_ok=True)
    states = list(invocations["state"]) if len(invocations) else []  # none when it landed before the row
    assert states in ([], ["interrupted"]), states
    client = MlflowClient(shared_tracking.split("=", 1)[1])
    experiment = client.get_experiment_by_name("early")
    if experiment is not None:
        assert "RUNNING" not in [r.info.status for r in client.search_runs([experiment.experiment_id])]
    assert main(["run", str(path), "fixed.sleep=0", shared_tracking, "--inline"]) == 0
    assert f"2/2 cells done, {12 - recorded} probes run" in capsys.readouterr().out
    assert len(store.load("probes", "early")) == 12
