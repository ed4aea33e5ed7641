"""One driver per sweep: a second `run` or `mlflow-sync` of a running sweep stops at once with one line
naming the holder; a lock whose holder died (kill -9) is taken over; and two real `run`s started
together leave every cell in Parquet and in MLflow exactly once, through a Ctrl-C and a resume."""
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

from orchestrator.cli import main
from orchestrator.lock import SweepLock
from orchestrator.store import Store
from orchestrator.tracking import CELL_TAG, KIND_TAG, default_uri

SYNTHETIC = """
name: {name}
experiment: synthetic
fixed: {{num_probes: {probes}, sleep: {sleep}}}
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


def sweep(tmp_path: Path, name: str, sleep: float = 0.0, probes: int = 2) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SYNTHETIC.format(name=name, sleep=sleep, probes=probes, root=tmp_path / "results"))
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
    assert Store(tmp_path / "results").load("probes", "held", missing_ok=True).empty, "the second driver ran probes"
    assert not (tmp_path / "results" / "mlflow.db").exists(), "the second driver touched MLflow"


def test_a_lock_left_by_a_killed_driver_is_taken_over(tmp_path, capsys):
    path = sweep(tmp_path, "stale")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "results"), "stale"], env=ENV,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["run", str(path), "--inline"]) == 1
        assert f"pid {holder.pid} on host" in capsys.readouterr().err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / "results" / "locks" / "stale.lock").exists(), "kill -9 leaves the lock file behind"
    assert main(["run", str(path), "--inline"]) == 0
    assert "2/2 cells done, 4 probes run" in capsys.readouterr().out
    assert not (tmp_path / "results" / "locks" / "stale.lock").exists(), "a finished run removes its lock file"


@pytest.mark.slow
def test_two_runs_at_once_then_ctrl_c_then_resume(ray_session, tmp_path, capsys):
    """Two real `factsweep run` of one sweep, started together on a fresh results folder: one runs it, the
    other exits 1 at once naming the first. Ctrl-C (SIGINT to the process group, as a terminal sends it)
    stops the first part-way with one line; `run` again finishes; Parquet and MLflow hold every cell once."""
    path = sweep(tmp_path, "twice", sleep=0.25, probes=6)
    env = {k: v for k, v in ENV.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"} | {"PYTHONUNBUFFERED": "1"}
    # As from a terminal: SIGINT handled even when this test runs in a background job (which ignores it).
    runs = [subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(path)], env=env, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
            for _ in range(2)]
    store = Store(tmp_path / "results")
    try:
        while all(r.poll() is None for r in runs):
            time.sleep(0.05)
        refused = next(r for r in runs if r.poll() is not None)
        winner = next(r for r in runs if r is not refused)
        out, err = refused.communicate()
        assert refused.returncode == 1 and out == "" and len(err.splitlines()) == 1, (refused.returncode, out, err)
        assert f"is being run by pid {winner.pid} on host {socket.gethostname()}" in err, err
        while len(store.load("probes", "twice", missing_ok=True)) < 2 and winner.poll() is None:
            time.sleep(0.05)
        os.killpg(winner.pid, signal.SIGINT)
        out, stopped = winner.communicate(timeout=60)
    finally:
        for r in runs:
            if r.poll() is None:
                os.killpg(r.pid, signal.SIGKILL)
                r.wait()
    recorded = len(store.load("probes", "twice"))
    assert winner.returncode == 130 and "Traceback" not in out + stopped, (winner.returncode, out, stopped)
    assert 2 <= recorded < 12
    assert re.fullmatch(rf"factsweep: interrupted: {recorded} probes recorded, [01] of 2 cells of sweep twice done; "
                        rf"`factsweep run {re.escape(str(path))}` again resumes from there\n", stopped), stopped
    assert main(["run", str(path)]) == 0
    assert f"2/2 cells done, {12 - recorded} probes run (0 failed)" in capsys.readouterr().out
    cells, probes = store.load("cells", "twice"), store.load("probes", "twice")
    assert len(cells) == 2 and len(probes) == 12
    client = MlflowClient(default_uri(tmp_path / "results"))
    experiment = client.get_experiment_by_name("twice").experiment_id
    runs = client.search_runs([experiment], filter_string=f"tags.`{KIND_TAG}` = 'cell'")
    assert sorted(r.data.tags[CELL_TAG] for r in runs) == sorted(cells["cell_id"])
    sweep_runs = client.search_runs([experiment], filter_string=f"tags.`{KIND_TAG}` = 'sweep'")
    assert [r.info.status for r in sweep_runs] == ["FINISHED"]  # KILLED at Ctrl-C, reused by the resume
    invocations = store.load("invocations", "twice")
    assert sorted(invocations["state"]) == ["finished", "interrupted"]  # the refused run never started
    print(f"\ntwo runs at once: {err.strip()}\nctrl-c: {stopped.strip()}")


def test_each_holder_of_a_folder_lock_gets_the_next_epoch(tmp_path):
    """The epoch every row carries (newest row wins by it, not by a host's clock) grows with each holder."""
    epochs = []
    for _ in range(3):
        with SweepLock(tmp_path, "s") as lock:
            epochs.append(lock.epoch)
    assert epochs == [1, 2, 3] and (tmp_path / "locks" / "s.epoch").read_text() == "3\n"


def test_move_aside_waits_for_no_driver_but_refuses_a_held_sweep(tmp_path, capsys):
    """`extra-cells --move-aside` rewrites the sweep's tables: while a driver holds the sweep it exits 1
    with the holder's line and moves nothing (a concurrent append would be lost); once free it moves."""
    path = sweep(tmp_path, "aside")
    store = Store(tmp_path / "results")
    store.append("cells", "aside", [{"cell_id": "0123456789abcdef", "experiment": "synthetic", "seed": 9,
                                     "num_probes": 2}])
    with SweepLock(tmp_path / "results", "aside"):
        code = main(["extra-cells", str(path), "--move-aside"])
    out, err = capsys.readouterr()
    assert code == 1 and len(err.splitlines()) == 1, (code, out, err)
    assert f"sweep 'aside' is being run by pid {os.getpid()}" in err, err
    assert len(store.load("cells", "aside")) == 1 and not (tmp_path / "results" / "set_aside").exists()
    assert main(["extra-cells", str(path), "--move-aside"]) == 0
    assert "moved 1 cell rows" in capsys.readouterr().out
    assert store.load("cells", "aside", missing_ok=True).empty


@pytest.mark.parametrize("content", [b'{"pid": "1\\nTraceback (most recent call last):", "host": "h", "since": "x"}',
                                     b'{"pid": 1, "host": "\\u001b[31mred", "since": "x"}', b"[" * 5000,
                                     b'{"pid": [1], "host": {}, "since": null}', b"\xff\xfe not json"])
def test_a_hostile_lock_file_is_never_printed_as_it_is(tmp_path, capsys, content):
    """The holder's line is built from the lock file's schema (an integer pid, printable host and time),
    never from its raw text: another program's file is one line, never a traceback or a terminal escape."""
    path = sweep(tmp_path, "held")
    with SweepLock(tmp_path / "results", "held") as lock:
        os.pwrite(lock._fd, content, 0)  # what the file holds when another program wrote it
        os.ftruncate(lock._fd, len(content))
        assert main(["run", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is being run by another process" in err and "\x1b" not in err, err


@pytest.mark.parametrize("body", [b"[" * 5000, b"not json", b"[1]", b'{"epoch": "x"}', b'{"ttl": true}',
                                  b'{"pid": "1\\n2"}'])
def test_a_damaged_lease_is_a_bad_file(body):
    from orchestrator.badfile import BadFile
    from orchestrator.lease import lease_body
    with pytest.raises(BadFile) as raised:
        lease_body("s3://b/locks/x.lease", body)
    assert str(raised.value).startswith("s3://b/locks/x.lease: ") and "\n" not in str(raised.value)


def test_a_lease_factsweep_wrote_passes_its_check():
    from orchestrator.lease import lease_body
    body = b'{"epoch": 3, "ttl": 60.0, "pid": 42, "host": "h", "since": "2026-12-05 05:00:00", "released": false}'
    assert lease_body("s3://b/l", body)["epoch"] == 3
