"""benchmarks/gpu_check.py runs where the lent GPU machine can run it: no Ray, MLflow, OmegaConf or
DuckDB there (their imports are made to fail here), and its capacity slice is the paper profile's."""
from __future__ import annotations

import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.spec import load_spec

pytestmark = pytest.mark.slow  # the GPU check's smoke run in a subprocess: not in make test-fast


ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
ABSENT = ("ray", "mlflow", "omegaconf", "duckdb")  # not in the GPU machine's image
RESULTS = ("gpu_matmul_tflops_f32", "gpu_batched_speedup_k64_d128_f4096", "gpu_construct_seconds_f16384_d128",
           "gpu_rho_seconds_f16384_d128", "gpu_gd_probe_seconds_f4096_d128", "gpu_gd_probe_seconds_f16384_d128")

# Run the script as __main__ behind a meta-path finder that fails those imports, after checking it does.
BLOCKED = f"""
import importlib.abc, runpy, sys


class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {ABSENT!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not on the GPU machine)", name=name)
        return None

sys.meta_path.insert(0, Absent())
try:
    import omegaconf
    raise SystemExit("the import blocker let omegaconf through")
except ModuleNotFoundError:
    pass
sys.argv[0] = {str(SCRIPT)!r}
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_blocked(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FACTMLP_DEVICE"}
    return subprocess.run([sys.executable, "-c", BLOCKED, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def results(stdout: str) -> dict[str, float]:
    return {m[1]: float(m[2]) for m in re.finditer(r"^RESULT (\S+) (\S+)$", stdout, re.MULTILINE)}


def test_smoke_runs_every_part_without_ray_mlflow_omegaconf_or_duckdb():
    done = run_blocked("--smoke")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = results(done.stdout)
    assert set(found) == set(RESULTS) and all(math.isfinite(v) for v in found.values()), found
    assert "skipped" not in done.stdout and "stopped" not in done.stdout and "FAILED" not in done.stdout
    for part in ("[1] dense float32 matmul", "[2] batched GD trainer", "[3] encoder_decoder", "[4] one GD probe",
                 "[5] capacity_isotropic profile=paper slice"):
        assert part in done.stdout


def test_a_spent_budget_skips_steps_and_still_ends_with_every_result_line():
    done = run_blocked("--smoke", "--budget", "0")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "skipped: budget" in done.stdout and "none yet (stopped: budget)" in done.stdout
    found = results(done.stdout)
    assert set(found) == set(RESULTS) and math.isnan(found["gpu_rho_seconds_f16384_d128"])


def test_the_capacity_slice_is_cells_of_the_paper_profile(monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    check = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", check)  # its dataclasses look their module up there
    monkeypatch.setattr(sys, "path", list(sys.path))  # it puts the repository root first
    spec.loader.exec_module(check)
    paper = load_spec(ROOT / "sweeps" / "capacity_isotropic.yaml", ["profile=paper"]).cells
    slice_ = check.capacity_cells(check.FULL, *check.FULL.paper)
    assert len(slice_) == 6 and all(cell in paper for cell in slice_)
