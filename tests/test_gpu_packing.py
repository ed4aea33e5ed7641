"""GPU packing checked without a GPU: the session's Ray has two logical GPUs (conftest), tasks ask for
0.25 GPU each, and the recorded probe rows say which GPU each task was given and when it ran."""
from __future__ import annotations

import pytest

from pathlib import Path

from orchestrator.runner import run_sweep
from orchestrator.spec import load_spec
from orchestrator.store import Store

pytestmark = pytest.mark.slow  # real servers, processes, kills or a second Ray: not in make test-fast

# 10 tasks of 4 s each, long beside the spread of their start-ups (1.5 s seen at load 12); 0.125 CPU per
# task lets the 2 CPUs run 16 at once, so the GPUs (8 slots) are the limit.
PACKING = """
name: packing
experiment: synthetic
fixed: {{num_probes: 10, sleep: 4.0}}
resources: {{num_cpus: 0.125, num_gpus: 0.25, max_retries: 0}}
packing: {{probes_per_task: 1}}
storage: {{root: {root}}}
"""


def most_at_once(starts, ends) -> int:
    """The largest number of [start, end) intervals that overlap at one moment."""
    events = sorted([(t, 1) for t in starts] + [(t, -1) for t in ends], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_quarter_gpu_tasks_run_four_per_logical_gpu_and_see_their_gpu(ray_session, tmp_path: Path):
    assert ray_session.cluster_resources().get("GPU") == 2
    path = tmp_path / "packing.yaml"
    path.write_text(PACKING.format(root=tmp_path / "results"))
    run_sweep(load_spec(path), progress=False)
    probes = Store(tmp_path / "results").load("probes", "packing")
    seen = probes[["status", "gpu_ids", "cuda_visible_devices", "task_started_at", "task_seconds"]].to_string()
    assert len(probes) == 10 and (probes["status"] == "ok").all(), seen
    assert set(probes["gpu_ids"]) == {"0", "1"}, seen  # each task was given one of the two GPUs ...
    assert (probes["cuda_visible_devices"] == probes["gpu_ids"]).all(), seen  # ... and saw exactly that one
    ends = probes["task_started_at"] + probes["task_seconds"]
    per_gpu = {gpu: most_at_once(rows["task_started_at"], ends[rows.index])
               for gpu, rows in probes.groupby("gpu_ids")}
    assert max(per_gpu.values()) == 4, (per_gpu, seen)  # four tasks shared a GPU at once, never more
    assert most_at_once(probes["task_started_at"], ends) == 8, seen  # two tasks waited for a free quarter


GD = """
name: logical_gpu
experiment: capacity
fixed: {{method: gd, d: 8, num_facts: 8, gd_epochs: 200, gd_lr: 0.02}}
search: {{low: 1, high: 32, strategy: kary, arity: 3}}
resources: {{num_cpus: 1, num_gpus: 0.25}}
storage: {{root: {root}}}
"""


def test_gd_probes_given_a_gpu_that_does_not_exist_run_on_the_cpu(ray_session, tmp_path: Path):
    """Ray sets CUDA_VISIBLE_DEVICES to a logical GPU this machine lacks: device 'auto' is the CPU."""
    path = tmp_path / "logical_gpu.yaml"
    path.write_text(GD.format(root=tmp_path / "results"))
    report = run_sweep(load_spec(path), progress=False)
    assert report.cells_done == 1 and report.probes_failed == 0
    probes = Store(tmp_path / "results").load("probes", "logical_gpu")
    assert (probes["gpu_ids"] != "").all() and (probes["cuda_visible_devices"] == probes["gpu_ids"]).all()
    assert Store(tmp_path / "results").load("cells", "logical_gpu")["min_width"].notna().all()
