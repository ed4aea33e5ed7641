"""Where a sweep's output goes never decides how much of it runs: a closed pipe (`| head -2`), a full
device (`> /dev/full`) or a closed stdout drop the output, the sweep runs to the end, and one line on
stderr says the output was dropped. (Before: `run | head -2` stopped after 2 of 8 cells with exit 0.)"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.store import Store

SYNTHETIC = """
name: {name}
experiment: synthetic
fixed: {{num_probes: 2, sleep: {sleep}}}
grid: {{seed: [0, 1, 2, 3, 4, 5, 6, 7]}}
packing: {{probes_per_task: 1}}
storage: {{root: '{root}'}}
"""
REPO = Path(__file__).resolve().parents[1]


def sweep(tmp_path: Path, name: str, sleep: float = 0.0) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SYNTHETIC.format(name=name, sleep=sleep, root=tmp_path / "results"))
    return path


def cells(tmp_path: Path, name: str) -> int:
    return len(Store(tmp_path / "results").load("cells", name, missing_ok=True))


class ClosesAfter:
    """A pipe whose reader went away after ``lines`` lines, as `| head -2` does."""

    def __init__(self, lines: int):
        self.left = lines

    def write(self, text: str) -> int:
        if self.left <= 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.left -= text.count("\n")
        return len(text)

    def flush(self) -> None:
        if self.left <= 0:
            raise BrokenPipeError(32, "Broken pipe")

    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize("stdout", ["closed_pipe", "dev_full", "closed"])
def test_run_whose_output_cannot_be_written_finishes_the_sweep(tmp_path, capsys, monkeypatch, shared_tracking, stdout):
    # monkeypatch after capsys: it puts back capsys's stream before capsys ends (and closes) it
    path = sweep(tmp_path, "out")
    stream = {"closed_pipe": lambda: ClosesAfter(2), "dev_full": lambda: open("/dev/full", "w", buffering=1),
              "closed": lambda: None}[stdout]()
    monkeypatch.setattr(sys, "stdout", stream)
    code = main(["run", str(path), shared_tracking, "--inline"])
    err = capsys.readouterr().err
    assert cells(tmp_path, "out") == 8, f"{cells(tmp_path, 'out')} of 8 cells; exit {code}; {err}"
    assert code == 0 and "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.startswith("factsweep: warning: output dropped ("), err


@pytest.mark.slow  # a real interpreter: the pipe, the exit status and Python's last flush as a shell sees them
def test_run_piped_into_head_finishes_the_sweep(tmp_path, shared_tracking):
    path = sweep(tmp_path, "head", sleep=0.05)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    run = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(path), shared_tracking, "--inline"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        head = [run.stdout.readline() for _ in range(2)]
        run.stdout.close()  # `head -2` exits
        err = run.stderr.read()
        code = run.wait(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert all(line.strip() for line in head), head
    assert cells(tmp_path, "head") == 8 and code == 0, (cells(tmp_path, "head"), code, err)
    assert len(err.splitlines()) == 1 and "output dropped (Broken pipe)" in err, err
