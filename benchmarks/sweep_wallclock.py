"""Wall time of one capacity sweep three ways, measured in one run, with the minimum widths compared.

1. packed and parallel: factsweep through Ray, k-ary search (3 widths a round) trained as one batched
   model per task, tasks spread over the cores;
2. one probe per task: factsweep through Ray, binary search, one width per task;
3. a plain sequential loop in one process: binary search, one width at a time, no Ray/Parquet/MLflow.
Ends with ``RESULT speedup_vs_sequential <ratio>`` (sequential time / packed time).
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from factmlp.capacity import next_widths  # noqa: E402
from factmlp.experiments import REGISTRY  # noqa: E402
from orchestrator.cluster import ensure_ray  # noqa: E402
from orchestrator.runner import run_sweep  # noqa: E402
from orchestrator.spec import load_spec  # noqa: E402
from orchestrator.store import Store  # noqa: E402

SWEEP = """
name: wallclock_{tag}
experiment: capacity
fixed: {{geometry: spherical, epochs: 1000, lr: 1.0e-2}}
grid:
  method: [gd, hebbian_whitened, encoder_decoder]
  d: [32, 64]
  num_facts: [64, 128, 192, 256]
search: {{low: 1, high: 512, strategy: {strategy}, arity: {arity}}}
packing: {{probes_per_task: {per_task}}}
storage: {{root: {root}}}
"""


def through_factsweep(root: Path, tag: str, strategy: str, arity: int, per_task: int) -> tuple[float, dict]:
    path = root / f"{tag}.yaml"
    path.write_text(SWEEP.format(tag=tag, strategy=strategy, arity=arity, per_task=per_task, root=root / "results"))
    start = time.perf_counter()
    run_sweep(load_spec(path), progress=False)
    seconds = time.perf_counter() - start
    cells = Store(root / "results").load("cells", f"wallclock_{tag}")
    return seconds, {(r["method"], r["d"], r["num_facts"]): r["min_width"] for r in cells.to_dict("records")}


def sequential(root: Path) -> tuple[float, dict]:
    path = root / "sequential.yaml"
    path.write_text(SWEEP.format(tag="sequential", strategy="binary", arity=1, per_task=1, root=root / "unused"))
    spec, experiment = load_spec(path), REGISTRY["capacity"]
    start = time.perf_counter()
    found = {}
    for cell in spec.cells:
        observations: dict[int, bool] = {}
        while True:
            step = next_widths(observations, cell["search_low"], cell["search_high"], 1)
            if step.done:
                break
            (result,) = experiment.run_probes(cell, [{"width": step.next_widths[0]}])
            observations[step.next_widths[0]] = result["success"]
        found[(cell["method"], cell["d"], cell["num_facts"])] = step.min_width
    return time.perf_counter() - start, found


def main() -> None:
    ensure_ray()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        timings = {
            "sequential loop": sequential(root),
            "one probe per task": through_factsweep(root, "unpacked", "binary", 1, 1),
            "packed and parallel": through_factsweep(root, "packed", "kary", 3, 3),
        }
    reference = timings["sequential loop"][1]
    for name, (seconds, widths) in timings.items():
        same = "identical" if widths == reference else f"DIFFERENT in {sum(widths.get(k) != v for k, v in reference.items())} cells"
        print(f"{name:20s} {seconds:7.1f} s   min widths {same}")
    print(f"RESULT speedup_vs_sequential {timings['sequential loop'][0] / timings['packed and parallel'][0]:.2f}")


if __name__ == "__main__":
    main()
