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
are identical to the packed run's, divided by the packed run's time; or, when no loop qualifies or
``--budget`` seconds run out (a loaded machine), with one ``FAILED speedup_vs_sequential: <why>`` line
and exit status 1. The packed run goes first, so a run cut short by its budget still reports what
finished; a loop cut short is a lower bound on its time.
"""
from __future__ import annotations

import argparse
import signal
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


class OutOfBudget(BaseException):
    """``--budget`` seconds have passed (a BaseException, so that no ``except Exception`` on the way
    mistakes it for the failure of what it interrupted)."""


def _out_of_budget(signum, frame):
    raise OutOfBudget()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=3600.0,
                        help="seconds after which the run stops and reports what finished (default 3600)")
    args = parser.parse_args()
    if not args.budget > 0:
        print(f"FAILED speedup_vs_sequential: --budget must be positive seconds, got {args.budget}")
        return 2
    threads = torch.get_num_threads()
    timings: dict[str, tuple[float, dict]] = {}
    cut = None  # (name, seconds so far) of the part the budget stopped
    signal.signal(signal.SIGALRM, _out_of_budget)
    signal.setitimer(signal.ITIMER_REAL, args.budget)
    parts = [("packed and parallel", lambda root: through_factsweep(root, "packed", "kary", 3, 3)),
             ("one probe per task", lambda root: through_factsweep(root, "unpacked", "binary", 1, 1))]
    for arity, search in ((3, "k-ary"), (1, "binary")):
        for n in (1, 2):
            parts.append((f"sequential {search}, {n} thread{'s' * (n > 1)}",
                          lambda root, arity=arity, n=n: sequential(root, arity, n)))
    begun = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ensure_ray()
            for name, part in parts:
                started = time.perf_counter()
                try:
                    timings[name] = part(Path(tmp))
                except OutOfBudget:
                    cut = (name, time.perf_counter() - started)
                    break
                finally:
                    torch.set_num_threads(threads)
    except OutOfBudget:  # while Ray started or the folder was cleaned up
        cut = cut or ("starting Ray", time.perf_counter() - begun)
    except Exception as e:  # noqa: BLE001 - Ray did not start, a run broke: one clear line, not a traceback
        signal.setitimer(signal.ITIMER_REAL, 0)
        print(f"FAILED speedup_vs_sequential: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
        return 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return report(timings, cut, args.budget)


def report(timings: dict[str, tuple[float, dict]], cut: tuple[str, float] | None, budget: float) -> int:
    """The table of what finished, then the RESULT line or one FAILED line (exit status 1)."""
    if "packed and parallel" not in timings:
        print(f"FAILED speedup_vs_sequential: the packed run did not finish within --budget {budget:g} s")
        return 1
    packed = timings["packed and parallel"]
    for name, (seconds, widths) in timings.items():
        same = "identical" if widths == packed[1] else f"DIFFERENT in {sum(widths.get(k) != v for k, v in packed[1].items())} cells"
        print(f"{name:30s} {seconds:7.1f} s   min widths vs packed: {same}")
    if cut:
        print(f"{cut[0]:30s} >{cut[1]:6.1f} s   stopped by --budget {budget:g} s")
    fair = [seconds for name, (seconds, widths) in timings.items() if name.startswith("sequential") and widths == packed[1]]
    if not fair:
        why = "no sequential loop reached the packed run's minimum widths"
        if cut:
            why = f"--budget {budget:g} s ran out before a sequential loop with the packed run's widths finished"
        if cut and cut[0].startswith("sequential"):
            why += f" (the cut one ran > {cut[1]:.1f} s: at least {cut[1] / packed[0]:.2f}x the packed run)"
        print(f"FAILED speedup_vs_sequential: {why}")
        return 1
    print(f"RESULT speedup_vs_sequential {min(fair) / packed[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
