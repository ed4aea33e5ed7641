"""Orchestration overhead: 1,000 no-op probes through the whole path (Ray, Parquet, MLflow).

The probes do no work, so the wall time of the sweep is all overhead. Ray is started before the
clock starts, as on a long-lived cluster; its start-up is printed separately. Packed (several
probes per task, the default) and unpacked (one probe per task) are measured in the same run.
Ends with ``RESULT overhead_ms_per_probe <ms>`` for the default packing.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.cluster import ensure_ray  # noqa: E402
from orchestrator.runner import run_sweep  # noqa: E402
from orchestrator.spec import load_spec  # noqa: E402

PROBES = 1000
SWEEP = """
name: overhead_{tag}
experiment: synthetic
fixed: {{num_probes: 100, rounds: 4}}
grid: {{seed: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}}
packing: {{probes_per_task: {per_task}}}
storage: {{root: {root}}}
"""


def measure(root: Path, tag: str, per_task: int) -> float:
    path = root / f"{tag}.yaml"
    path.write_text(SWEEP.format(tag=tag, per_task=per_task, root=root / "results"))
    spec = load_spec(path)
    start = time.perf_counter()
    report = run_sweep(spec, progress=False)
    seconds = time.perf_counter() - start
    assert report.probes_run == PROBES and report.cells_done == 10, report
    return seconds


def main() -> None:
    start = time.perf_counter()
    ensure_ray()
    print(f"ray start-up: {time.perf_counter() - start:.2f} s (not counted below)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        measure(root, "warmup", 25)  # first MLflow database creation and worker start-up
        results = {tag: measure(root, tag, per_task) for tag, per_task in (("packed", 8), ("unpacked", 1))}
    for tag, seconds in results.items():
        print(f"{tag:9s} {PROBES} probes in {seconds:6.2f} s = {1000 * seconds / PROBES:6.2f} ms/probe")
    print(f"RESULT overhead_ms_per_probe {1000 * results['packed'] / PROBES:.2f}")


if __name__ == "__main__":
    main()
