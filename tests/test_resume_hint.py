"""The line a stopped `run` prints is the command that resumes it: the file and every override (quoted for
a shell) and --inline. Before, it named only the file: following it ran the file's own cells (other seeds
here) and resumed nothing. A real run is interrupted as a terminal does (SIGINT to its process group)."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.store import Store
from sweep_files import synthetic_sweep

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_printed_resume_command_finishes_the_run_and_reruns_nothing(tmp_path, capsys, shared_tracking):
    folder = tmp_path / "my sweeps"  # a space in the path and in an override: both need quoting
    folder.mkdir()
    path = synthetic_sweep(folder / "hint.yaml", "hint", tmp_path / "results", probes=6, sleep=0.3, probes_per_task=1)
    overrides = ["grid.seed=[3, 4]", shared_tracking]
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    driver = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(path), *overrides, "--inline"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    store = Store(tmp_path / "results")
    try:
        while len(store.load("probes", "hint", missing_ok=True)) < 2 and driver.poll() is None:
            time.sleep(0.05)
        os.killpg(driver.pid, signal.SIGINT)
        _, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 130, err
    before = store.load("probes", "hint")
    hint = re.fullmatch(r"factsweep: interrupted: .*; `(.+)` again resumes from there\n", err)
    assert hint, err
    argv = shlex.split(hint.group(1))
    assert argv == ["factsweep", "run", str(path), *overrides, "--inline"], argv

    assert main(argv[1:]) == 0
    out = capsys.readouterr().out
    assert f"hint: 2/2 cells done, {12 - len(before)} probes run (0 failed)" in out, out
    after = store.load("probes", "hint")
    assert len(after) == 12 and sorted(set(after["seed"])) == [3, 4]  # the overridden seeds, not the file's 0, 1
    kept = after.set_index("probe_id").loc[before["probe_id"], "invocation_id"]
    assert list(kept) == list(before["invocation_id"]), "a probe recorded before the interrupt ran again"
