"""Wall time of one capacity sweep three ways, measured in one run, with the minimum widths compared.

1. packed and parallel: factsweep through Ray, k-ary search (3 widths a round) trained as one batched
   model per task, tasks spread over the cores;
2. one probe per task: factsweep through Ray, binary search, one width per task;
3. a plain sequential loop in one process, no Ray/Parquet/MLflow, one width trained at a time, with
   the same k-ary search (so it reaches the same minimum widths: batched and alone training start
   from the same init) and, for reference, with binary search (fewer probes, but on non-monotone
   GD cells it can stop at a different width). Each loop runs with 1 and with 2 torch threads and
   the faster counts, so the baseline is the best a plain loop does on this machine.
Ends with ``RESULT speedup_vs_sequential <ratio>``: the fastest sequential loop whose minimum widths
are identical to the packed run's, divided by the packed run's time.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from orchestrator.search import SmallestSuccess  # noqa: E402
from orchestrator.registry import every  # noqa: E402
from orchestrator.cluster import ensure_ray  # noqa: E402
from orchestrator.runner import run_sweep  # noqa: E402
from orchestrator.spec import load_spec  # noqa: E402
from orchestrator.store import Store  # noqa: E402

SWEEP = """
name: wallclock_{tag}
experiment: capacity
fixed: {{geometry: spherical, gd_epochs: 1000, gd_lr: 1.0e-2}}
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


def sequential(root: Path, arity: int, threads: int) -> tuple[float, dict]:
    """The search loop a researcher would write: each proposed width trained or built alone, in turn."""
    path = root / "sequential.yaml"
    path.write_text(SWEEP.format(tag="sequential", strategy="kary", arity=arity, per_task=1, root=root / "unused"))
    spec, experiment = load_spec(path), every()["capacity"]
    torch.set_num_threads(threads)
    start = time.perf_counter()
    found = {}
    for cell in spec.cells:
        observations: dict[int, bool] = {}
        while True:
            step = SmallestSuccess("width").step(observations, cell["search_low"], cell["search_high"], arity)
            if step.done:
                break
            for width in step.next:
                (result,) = experiment.run_probes(cell, [{"width": width}])
                observations[width] = result["success"]
        found[(cell["method"], cell["d"], cell["num_facts"])] = step.answer
    return time.perf_counter() - start, found


def main() -> None:
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        timings = {}
        for arity, search in ((3, "k-ary"), (1, "binary")):
            for n in (1, 2):
                timings[f"sequential {search}, {n} thread{'s' * (n > 1)}"] = sequential(root, arity, n)
        torch.set_num_threads(threads)
        ensure_ray()
        timings["one probe per task"] = through_factsweep(root, "unpacked", "binary", 1, 1)
        timings["packed and parallel"] = packed = through_factsweep(root, "packed", "kary", 3, 3)
    for name, (seconds, widths) in timings.items():
        same = "identical" if widths == packed[1] else f"DIFFERENT in {sum(widths.get(k) != v for k, v in packed[1].items())} cells"
        print(f"{name:30s} {seconds:7.1f} s   min widths vs packed: {same}")
    fair = [seconds for name, (seconds, widths) in timings.items() if name.startswith("sequential") and widths == packed[1]]
    if not fair:
        print("no sequential loop reached the packed run's minimum widths")
        return
    print(f"RESULT speedup_vs_sequential {min(fair) / packed[0]:.2f}")


if __name__ == "__main__":
    main()
