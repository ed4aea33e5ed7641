"""A failing probe is recorded with its message and never stops the sweep; a dead worker is retried."""
from __future__ import annotations

import pytest

import os
import signal
import threading
import time
from pathlib import Path

from orchestrator.cli import main
from orchestrator.runner import run_sweep
from orchestrator.spec import load_spec
from orchestrator.store import Store

pytestmark = pytest.mark.slow  # real servers, processes, kills or a second Ray: not in make test-fast

SYNTHETIC = """
name: {name}
experiment: synthetic
fixed: {{num_probes: 4, fail_index: {fail_index}, sleep: {sleep}}}
grid: {{failure: {failures}}}
resources: {{max_retries: {retries}}}
packing: {{probes_per_task: 1}}
storage: {{root: {root}}}
"""


def synthetic(tmp_path: Path, name: str, *, failures="[exception]", fail_index=-1, sleep=0.0, retries=3) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SYNTHETIC.format(name=name, failures=failures, fail_index=fail_index, sleep=sleep,
                                     retries=retries, root=tmp_path / "results"))
    return path


def test_raising_probes_are_recorded_and_the_rest_complete(ray_session, tmp_path, capsys):
    path = synthetic(tmp_path, "raising", failures="[exception, nan, singular, oom]", fail_index=2)
    report = run_sweep(load_spec(path), progress=False)
    assert (report.cells, report.cells_done, report.cells_failed, report.probes_failed) == (4, 0, 4, 4)
    probes = Store(tmp_path / "results").load("probes", "raising")
    ok, failed = probes[probes["status"] == "ok"], probes[probes["status"] == "failed"]
    assert len(ok) == 12 and set(failed["index"]) == {2}
    messages = dict(zip(failed["failure"], failed["error"]))
    assert messages["exception"] == "RuntimeError: injected failure"
    assert messages["nan"] == "FloatingPointError: loss is nan"
    assert messages["singular"].startswith("LinAlgError: Singular matrix")
    assert messages["oom"].startswith("MemoryError: Unable to allocate")
    assert main(["status", "raising", "--root", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "probes ok 12, probes failed 4" in out and "MemoryError" in out
    # A deterministic failure fails again on retry, and is not duplicated.
    again = run_sweep(load_spec(path), retry_failed=True, progress=False)
    assert again.probes_run == 4 and again.probes_failed == 4
    assert len(Store(tmp_path / "results").load("probes", "raising")) == 16


def _kill_a_running_worker(timeout: float = 60.0) -> int:
    """SIGKILL one Ray worker of this test session while it executes a probe; return its PID."""
    mine = {os.getpid()}
    deadline = time.time() + timeout
    while time.time() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                ancestry = _ancestors(int(entry.name))
            except OSError:
                continue
            if title.startswith("ray::execute") and mine & ancestry:
                os.kill(int(entry.name), signal.SIGKILL)
                return int(entry.name)
        time.sleep(0.05)
    raise AssertionError("no running Ray worker found")


def _ancestors(pid: int) -> set[int]:
    out = set()
    while pid > 1:
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        out.add(pid)
    return out


def _run_while_killing(path: Path, **kw):
    result = {}
    thread = threading.Thread(target=lambda: result.update(report=run_sweep(load_spec(path), progress=False, **kw)))
    thread.start()
    killed = _kill_a_running_worker()
    thread.join(timeout=120)
    assert not thread.is_alive()
    return killed, result["report"]


def test_killed_worker_is_retried_and_the_sweep_completes(ray_session, tmp_path):
    killed, report = _run_while_killing(synthetic(tmp_path, "retried", sleep=1.0, retries=3))
    assert killed > 0
    assert (report.cells_done, report.probes_failed) == (1, 0)
    probes = Store(tmp_path / "results").load("probes", "retried")
    assert sorted(probes["index"]) == [0, 1, 2, 3] and (probes["status"] == "ok").all()
    print(f"\nworker kill: worker {killed} killed mid-probe; {report.probes_run} probes recorded, 0 failed, "
          f"{len(probes)} rows, 1 cell done in {report.seconds:.1f}s")


def test_worker_death_beyond_retries_is_a_failed_probe_until_retried(ray_session, tmp_path):
    path = synthetic(tmp_path, "dead", sleep=1.0, retries=0)
    _, report = _run_while_killing(path)
    assert report.probes_failed == 1 and report.cells_failed == 1
    probes = Store(tmp_path / "results").load("probes", "dead")
    assert "WorkerCrashedError" in probes[probes["status"] == "failed"]["error"].iloc[0] or \
        "died" in probes[probes["status"] == "failed"]["error"].iloc[0]
    retried = run_sweep(load_spec(path), retry_failed=True, progress=False)
    assert (retried.probes_run, retried.cells_done) == (1, 1)
    probes = Store(tmp_path / "results").load("probes", "dead")
    assert len(probes) == 4 and (probes["status"] == "ok").all()
