"""A batch system's stop signals end a driver as Ctrl-C does: SIGTERM (scancel, preemption, the time limit)
and SIGUSR1 (SLURM's pre-timeout --signal) each leave one line, exit 130 and a sweep that the next run
(a requeued job) resumes without redoing anything."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.runner import run_sweep
from orchestrator.spec import load_spec
from orchestrator.store import Store
from sweep_files import synthetic_sweep

pytestmark = pytest.mark.slow  # real CLI processes and signals

REPO = Path(__file__).resolve().parents[2]


def test_sigterm_and_sigusr1_stop_like_ctrl_c_and_the_rerun_resumes(tmp_path, shared_tracking, capsys):
    """SIGTERM to a real `factsweep run`, then SIGUSR1 to a run in this process (a timer thread sends it
    once a probe is recorded): each stops as Ctrl-C does; a third run finishes only what is left."""
    path = tmp_path / "stopped.yaml"
    synthetic_sweep(path, "stopped", tmp_path / "results", probes=4, sleep=0.4, probes_per_task=1)
    store = Store(tmp_path / "results")
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    driver = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(path), shared_tracking,
                               "--inline"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while store.load("probes", "stopped", missing_ok=True).empty and driver.poll() is None:
        time.sleep(0.05)
    driver.send_signal(signal.SIGTERM)
    out, err = driver.communicate(timeout=60)
    assert driver.returncode == 130 and "Traceback" not in err, (driver.returncode, err)
    assert re.fullmatch(r"factsweep: interrupted: \d+ probes recorded, [01] of 2 cells of sweep stopped done; "
                        rf"`{re.escape(shlex.join(['factsweep', 'run', str(path), shared_tracking, '--inline']))}` "
                        r"again resumes from there\n", err), err

    before = len(store.load("probes", "stopped"))

    def pre_timeout_signal():
        while len(store.load("probes", "stopped")) <= before:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGUSR1)
    sender = threading.Thread(target=pre_timeout_signal, daemon=True)
    sender.start()
    spec = load_spec(path, [shared_tracking])
    with pytest.raises(KeyboardInterrupt, match="SIGUSR1"):
        run_sweep(spec, progress=False, executor="inline")
    sender.join(timeout=10)
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL, "the driver's handler outlived the run"
    recorded = len(store.load("probes", "stopped"))
    assert sorted(store.load("invocations", "stopped")["state"]) == ["interrupted", "interrupted"]
    assert main(["run", str(path), shared_tracking, "--inline"]) == 0
    assert f"2/2 cells done, {8 - recorded} probes run (0 failed)" in capsys.readouterr().out


STUBS = {  # SLURM's commands and the venv's, as far as slurm.sbatch uses them; each call is logged
    "scontrol": 'if [ "$1" = show ]; then printf "node1\\nnode2\\n"; else echo "scontrol $*" >> "$STUB_LOG"; fi',
    "srun": 'echo "srun $*" >> "$STUB_LOG"',
    "ray": "exit 0",
    "python": "echo 2",
    "factsweep": ('echo "factsweep $*" >> "$STUB_LOG"; trap \'echo "driver got TERM" >> "$STUB_LOG"; kill $s; exit 130\' TERM\n'
                  'sleep 60 & s=$!; echo started >> "$STUB_LOG"; wait $s'),
}


def test_slurm_template_stops_the_driver_before_the_time_limit_and_requeues(tmp_path):
    """slurm.sbatch with SLURM's commands and the driver stubbed: SIGUSR1 (what --signal=B:USR1@300 sends)
    reaches the driver as SIGTERM (a background job's SIGINT is ignored), and the job is requeued."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for name, body in STUBS.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FACTSWEEP_BIN": str(bin_dir),
           "STUB_LOG": str(log), "SLURM_SUBMIT_DIR": str(tmp_path), "SLURM_JOB_ID": "4242",
           "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_CPUS_PER_TASK": "8"}
    job = subprocess.Popen(["bash", str(REPO / "slurm.sbatch"), "sweeps/quickstart.yaml", "profile=paper"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    deadline = time.time() + 30
    while not (log.exists() and "started" in log.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    job.send_signal(signal.SIGUSR1)
    out, _ = job.communicate(timeout=30)
    calls = log.read_text()
    assert job.returncode == 130, out
    assert "factsweep run sweeps/quickstart.yaml profile=paper --address" in calls and "driver got TERM" in calls
    assert "scontrol requeue 4242" in calls and "requeueing job 4242 to resume" in out, (calls, out)
    assert calls.count("srun ") == 2  # the head and one worker
