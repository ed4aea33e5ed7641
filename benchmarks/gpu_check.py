"""The prepared GPU check: one process, one call, about 7.5 minutes on one H200, numbers out.

No line of factsweep had run on a GPU when this was written, and GPU machines are lent for minutes,
so this script measures every GPU figure the project needs in one go (docs/cluster.md, "First GPU run"):
  1. the device, torch, and the dense float32 matmul rate of this GPU: the ceiling;
  2. the batched GD trainer: model-epochs per second for K models trained at once, against the same
     K models one after another (sequential = the K = 1 rate, measured, times K), and the FLOP rate
     of its logits products (4·K·F·M·d per epoch inside softmax(y·Vᵀ)·V, 2·K·F·M·d per loss check)
     against the ceiling;
  3. the global encoder–decoder build and ρ at F = 16384, d = 128;
  4. one GD probe of the published recipe (10k epochs, lr 1e-3) at d = 128, F = 4096 and F = 16384;
  5. a slice of capacity_isotropic profile=paper (d = 128, F = 2048 and 4096; gd, encoder_decoder,
     hebbian_whitened), searched in this process through the capacity experiment's own contract;
     then the same methods and recipe at CPU scale (d = 32, F = 128 and 256: the same F/d²), searched
     on the GPU and on the CPU so the two columns compare identical cells.
Each step predicts its time first and prints "skipped: budget" when it would pass --budget (450 s),
so one call always ends with its tables and RESULT lines; a skipped RESULT is printed as nan.

It imports only the standard library, numpy, scipy, torch and factmlp: the GPU machine's image has
no Ray, MLflow, OmegaConf or DuckDB (tests/test_gpu_check.py runs --smoke with those blocked).

    python3 benchmarks/gpu_check.py            # on a GPU machine (make gpu-check)
    python3 benchmarks/gpu_check.py --smoke    # the same code paths on the CPU at tiny sizes, seconds
"""
from __future__ import annotations

import time

STARTED = time.perf_counter()  # the budget counts the imports too

import argparse  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from factmlp.constructions.encoder_decoder import codebook  # noqa: E402
from factmlp.decodability import decodability  # noqa: E402
from factmlp.evaluate import evaluate  # noqa: E402
from factmlp.experiments.capacity import EXPERIMENT as CAPACITY  # noqa: E402
from factmlp.device import resolve_device  # noqa: E402
from factmlp.geometries import make_factset  # noqa: E402
from factmlp.methods import build_fact_mlp  # noqa: E402
from factmlp.train import TrainConfig, train_batched  # noqa: E402

METHODS = ("gd", "encoder_decoder", "hebbian_whitened")


@dataclass(frozen=True)
class Sizes:
    """What each part measures. RESULT names keep the full sizes; --smoke fills them from its own."""

    matmul: int  # n of the n×n×n float32 product that sets the ceiling
    throughput: tuple[tuple[int, int], ...]  # (d, F) of the trainer table
    ks: tuple[int, ...]  # models trained at once
    speedup: tuple[int, int, int]  # (K, d, F) of RESULT gpu_batched_speedup_k64_d128_f4096
    seconds_per_row: float  # each trainer row's long run lasts at least this long
    build: tuple[int, int]  # (d, F) of the encoder–decoder build and ρ
    probe: tuple[int, tuple[int, ...]]  # d and the F of the GD probes
    recipe: tuple[int, float]  # GD epochs and lr of the probes and the capacity cells
    paper: tuple[int, tuple[int, ...]]  # d and F of the capacity slice on the GPU
    cpu: tuple[int, tuple[int, ...]]  # the same F/d² at CPU scale, searched on both devices
    search_high: int
    build_guess: float  # seconds the build and ρ are given at least (nothing smaller predicts them)


FULL = Sizes(matmul=8192, throughput=((64, 1024), (128, 4096)), ks=(1, 16, 64, 256), speedup=(64, 128, 4096),
             seconds_per_row=0.5, build=(128, 16384), probe=(128, (4096, 16384)), recipe=(10_000, 1e-3),
             paper=(128, (2048, 4096)), cpu=(32, (128, 256)), search_high=65536, build_guess=30.0)
SMOKE = Sizes(matmul=256, throughput=((8, 64), (16, 128)), ks=(1, 4), speedup=(4, 16, 128),
              seconds_per_row=0.05, build=(16, 256), probe=(16, (64, 128)), recipe=(60, 1e-2),
              paper=(16, (32, 64)), cpu=(8, (8, 16)), search_high=64, build_guess=0.0)


class Budget:
    """Seconds left for the whole check (from the start of the process); a step runs only when its
    predicted time fits."""

    def __init__(self, seconds: float):
        self.end = STARTED + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()

    def allows(self, seconds: float, what: str) -> bool:
        if seconds <= self.left():
            return True
        print(f"  {what}: skipped: budget (needs ~{seconds:.0f} s, {max(self.left(), 0):.0f} s left)", flush=True)
        return False


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device):
    """(fn's result, wall seconds), with the GPU's queue drained before and after."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


PEAKS = [math.nan]  # every peak read, for the whole check's


def peak_gib(device: torch.device) -> float:
    """GPU memory held at most since the last reset_peak (nan, printed "nan" or "—", on the CPU)."""
    PEAKS.append(torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else math.nan)
    return PEAKS[-1]


def table(headers: list[str], rows: list[list]) -> None:
    def cell(v):
        if isinstance(v, float):
            return "—" if math.isnan(v) else f"{v:.4g}"
        return "—" if v is None else str(v)
    text = [headers] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in text) for i in range(len(headers))]
    for i, r in enumerate(text):
        print("  " + "  ".join(v.rjust(w) for v, w in zip(r, widths)))
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))
    sys.stdout.flush()


FAILURES = []  # parts that raised


def attempt(what: str, fn, *args, default=None):
    """Run one part of the check; an exception is printed and recorded, and the rest goes on."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - one broken part must not cost the others their numbers
        FAILURES.append(what)
        print(f"  {what}: FAILED: {type(e).__name__}: {e}")
        traceback.print_exc(limit=-4, file=sys.stdout)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # after an out-of-memory error, give the next part the memory back
        return default


def capacity_width(d: int, num_facts: int) -> int:
    """GD's rule of thumb F ≈ 0.75·d·m (SCIENCE.md §6): about the smallest width that stores."""
    return math.ceil(num_facts / (0.75 * d))


def describe(device: torch.device) -> None:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        name = (f"{p.name} ({p.multi_processor_count} SMs, {p.total_memory / 2 ** 30:.1f} GiB), "
                f"CUDA {torch.version.cuda}")
    else:
        name = f"CPU ({platform.processor() or platform.machine()}): no CUDA device, everything runs on the CPU"
    print(f"device: {name}")
    print(f"torch {torch.__version__}, numpy {np.__version__}, scipy {scipy.__version__}, Python "
          f"{platform.python_version()}; {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads; "
          f"float32 matmul precision '{torch.get_float32_matmul_precision()}'", flush=True)


def matmul_ceiling(device: torch.device, n: int) -> float:
    """FLOP/s of a dense n×n×n float32 product (the trainer's dtype): best of two batches of about 1 s."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    out = torch.empty(n, n, device=device)
    torch.matmul(a, b, out=out)  # warm-up
    one = timed(lambda: torch.matmul(a, b, out=out), device)[1]
    reps = int(min(50, max(1, 1.0 / max(one, 1e-9))))
    best = min(timed(lambda: [torch.matmul(a, b, out=out) for _ in range(reps)], device)[1] for _ in range(2))
    rate = 2 * n ** 3 * reps / best
    print(f"\n[1] dense float32 matmul {n}×{n}×{n}: {rate / 1e12:.2f} TFLOP/s (the ceiling below)", flush=True)
    return rate


def logits_flops(k: int, num_facts: int, d: int, epochs: int, check_every: int) -> float:
    """FLOPs of the F×M products over ``epochs`` epochs: two inside softmax(y·Vᵀ)·V every epoch, one
    (y·Vᵀ) per loss check. Fact sets here have M = F values."""
    per = 2.0 * k * num_facts * num_facts * d
    return per * (2 * epochs + epochs // check_every)


def epoch_seconds(run, budget: Budget, what: str, at_least: float, guess: float) -> tuple[float, int] | None:
    """(seconds per epoch, epochs timed) from runs of 2 and of 8, 32, 128, ... epochs until one lasts
    ``at_least``: their difference drops set-up (init, copies to the device and back). The first run
    warms up. None when a run would not fit the budget (``guess``: predicted seconds per epoch)."""
    if not budget.allows(12 * guess, what):
        return None
    run(2)
    short, epochs = run(2), 8
    seconds = run(epochs)
    while seconds < at_least and epochs < 32_768:
        if not budget.allows(4 * seconds, what):
            return None
        epochs *= 4
        seconds = run(epochs)
    return max(seconds - short, 1e-9) / (epochs - 2), epochs - 2


def trainer_throughput(device: torch.device, sizes: Sizes, budget: Budget, ceiling: float) -> dict:
    """Model-epochs/s per (d, F, K). Early stopping is off: every run does the same work."""
    print("\n[2] batched GD trainer: K copies of one model of width m ≈ F/(0.75·d), trained at once. "
          "sequential = the K = 1 rate (K models one after another take K times as long)")
    rates, rows = {}, []
    for d, num_facts in sizes.throughput:
        factset = make_factset("spherical", d, num_facts, seed=0)
        width = capacity_width(d, num_facts)
        per_model_epoch = 0.0
        for k in sizes.ks:
            config = TrainConfig(loss_stop=0.0, device=str(device))
            run = lambda epochs: timed(lambda: train_batched(factset, [width] * k, replace(config, epochs=epochs)),
                                       device)[1]
            reset_peak(device)
            measured = epoch_seconds(run, budget, f"d={d} F={num_facts} K={k}", sizes.seconds_per_row,
                                     k * per_model_epoch)
            if measured is None:
                continue
            seconds, epochs = measured
            per_model_epoch = seconds / k
            rates[d, num_facts, k] = 1 / per_model_epoch
            achieved = logits_flops(k, num_facts, d, epochs, config.check_every) / (seconds * epochs)
            speedup = rates[d, num_facts, k] / rates[d, num_facts, 1] if (d, num_facts, 1) in rates else math.nan
            rows.append([d, num_facts, width, k, epochs, seconds * 1e3, rates[d, num_facts, k], speedup,
                         achieved / 1e12, 100 * achieved / ceiling, peak_gib(device)])
    table(["d", "F", "m", "K", "epochs", "ms/epoch", "model-epochs/s", "batched/sequential", "logits TFLOP/s",
           "% of matmul", "peak GiB"], rows)
    return rates


def build_and_rho(device: torch.device, sizes: Sizes, budget: Budget) -> tuple[float, float]:
    """Seconds of the global encoder–decoder build (at the design's width c·⌈F/d⌉) and of ρ."""
    d, num_facts = sizes.build
    print(f"\n[3] encoder_decoder (global solve) and ρ at F={num_facts}, d={d}: code table, gate rows and ρ "
          f"run in numpy on the CPU; the F×F Gram and its Cholesky solve in torch on {device.type}")
    build_seconds = rho_seconds = math.nan
    factset = make_factset("spherical", d, num_facts, seed=0)
    if budget.allows(sizes.build_guess, "encoder_decoder build"):
        book, code_seconds = timed(lambda: codebook(factset), device)
        width = book.dim * math.ceil(num_facts / d)
        reset_peak(device)
        model, build_seconds = timed(lambda: build_fact_mlp("encoder_decoder", factset, width, seed=0,
                                                            device=str(device)), device)
        scores, eval_seconds = timed(lambda: evaluate(model, factset), device)
        print(f"  build: {build_seconds:.2f} s (its code table alone: {code_seconds:.2f} s; code dimension "
              f"c={book.dim}, width {width}, {model.param_count()} params, accuracy {scores['accuracy']:.4f}; "
              f"evaluation {eval_seconds:.1f} s more); peak GPU memory {peak_gib(device):.2f} GiB", flush=True)
    if budget.allows(sizes.build_guess, "ρ"):
        result, rho_seconds = timed(lambda: decodability(factset.values), device)
        print(f"  ρ: {rho_seconds:.2f} s on the CPU (decodability is numpy only), ρ={result.rho:.4f} "
              f"gap {result.gap:.1e}", flush=True)
    return build_seconds, rho_seconds


def gd_probes(device: torch.device, sizes: Sizes, budget: Budget) -> dict[int, float]:
    """Seconds of one GD probe of the recipe per F, at the rule-of-thumb width (may stop early)."""
    d, facts = sizes.probe
    epochs, lr = sizes.recipe
    print(f"\n[4] one GD probe of the recipe ({epochs} epochs, lr {lr:g}, cosine, stop at loss 1e-7) at d={d}")
    seconds, rows = {}, []
    for num_facts in facts:
        factset = make_factset("spherical", d, num_facts, seed=0)
        width = capacity_width(d, num_facts)
        config = TrainConfig(epochs=epochs, lr=lr, device=str(device))
        pilot = lambda n: timed(lambda: train_batched(factset, [width], replace(config, epochs=n, loss_stop=0.0)),
                                device)[1]
        per_epoch = epoch_seconds(pilot, budget, f"GD probe F={num_facts} (pilot)", 0.0, 0.0)
        if per_epoch is None or not budget.allows(per_epoch[0] * epochs, f"GD probe F={num_facts}"):
            continue
        reset_peak(device)
        (result,), seconds[num_facts] = timed(lambda: train_batched(factset, [width], config), device)
        accuracy = evaluate(result["model"], factset)["accuracy"]
        rows.append([num_facts, width, result["model"].param_count(), result["epochs"], result["loss"], accuracy,
                     seconds[num_facts], seconds[num_facts] / max(result["epochs"], 1) * 1e3, peak_gib(device)])
    table(["F", "m", "params", "epochs run", "loss", "accuracy", "seconds", "ms/epoch", "peak GiB"], rows)
    return seconds


def capacity_cells(sizes: Sizes, d: int, facts: tuple[int, ...]) -> list[dict]:
    """Cells of capacity_isotropic profile=paper (spherical, tied, permutation, k-ary search of arity 3)."""
    epochs, lr = sizes.recipe
    return [CAPACITY.resolve({"method": method, "geometry": "spherical", "tied": True, "mapping": "permutation",
                              "d": d, "num_facts": num_facts, "gd_epochs": epochs, "gd_lr": lr, "search_low": 1,
                              "search_high": sizes.search_high, "search_arity": 3, "threshold": 1.0})
            for num_facts in facts for method in METHODS]


def search(cell: dict, budget: Budget, first_round: float) -> dict:
    """The minimum-width search as the sweep runner drives it: ask for probes, run them, record, again.
    A round runs only if it fits the budget (guess: 1.5× the longest round so far, else ``first_round``)."""
    results, rounds, status = [], [], "done"
    start = time.perf_counter()
    while probes := CAPACITY.next_round(cell, results):
        need = 1.5 * max(rounds) if rounds else first_round
        if not budget.allows(need, f"{cell['method']} d={cell['d']} F={cell['num_facts']} round {len(rounds) + 1}"):
            status = "stopped: budget"
            break
        t = time.perf_counter()
        rows = CAPACITY.run_probes(cell, probes)
        rounds.append(time.perf_counter() - t)
        results += [{**p, **r} for p, r in zip(probes, rows)]
    summary = CAPACITY.summarize(cell, results)
    return {**summary, "status": status, "rounds": len(rounds), "first_round": rounds[0] if rounds else None,
            "seconds": time.perf_counter() - start}


@contextmanager
def auto_device(name: str | None):
    """Make device 'auto' (what the capacity experiment uses) mean ``name`` for a while (None: unchanged)."""
    before = os.environ.get("FACTMLP_DEVICE")
    if name is not None:
        os.environ["FACTMLP_DEVICE"] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("FACTMLP_DEVICE", None)
        else:
            os.environ["FACTMLP_DEVICE"] = before


def search_cells(cells: list[dict], budget: Budget, devices: dict[str, str | None], firsts: dict) -> dict:
    """Search every cell on every device (label → FACTMLP_DEVICE). A cell's first round is guessed from
    ``firsts``, the same method's first round at the previous F of the same d, times the F ratio squared."""
    found = {}
    for cell in cells:
        for label, name in devices.items():
            key = (label, cell["method"], cell["d"])
            guess = firsts[key][1] * (cell["num_facts"] / firsts[key][0]) ** 2 if key in firsts else 0.0
            what = f"{label}: {cell['method']} d={cell['d']} F={cell['num_facts']}"
            with auto_device(name):
                out = attempt(what, search, cell, budget, guess)
            if out is None:
                continue
            found[label, cell["method"], cell["d"], cell["num_facts"]] = out
            if out["first_round"] is not None:
                firsts[key] = (cell["num_facts"], out["first_round"])
            print(f"  {what}: min width {out['min_width']} ({out['status']}, {out['rounds']} rounds, "
                  f"{out['seconds']:.1f} s)", flush=True)
    return found


def shown(out: dict, high: int) -> str:
    """A search's answer: the min width, 'none ≤ high' when nothing stored, or where a stopped search was."""
    if out["status"] != "done":
        return f"{'≤' + str(out['min_width']) if out['stored'] else 'none yet'} ({out['status']})"
    return str(out["min_width"]) if out["stored"] else f"none ≤ {high}"


def capacity_slice(device: torch.device, sizes: Sizes, budget: Budget) -> None:
    """For each F/d² of the slice: the paper cells on the GPU, then the CPU-scale cells on both devices."""
    epochs, lr = sizes.recipe
    (d, facts), (cpu_d, cpu_facts) = sizes.paper, sizes.cpu
    gpu = "gpu" if device.type == "cuda" else "auto (cpu)"
    print(f"\n[5] capacity_isotropic profile=paper slice: {', '.join(METHODS)}; GD {epochs} epochs lr {lr:g}; "
          f"k-ary search (arity 3) over widths 1..{sizes.search_high}, threshold 1.0. GD and the encoder_decoder "
          f"solve run on device 'auto' ({device.type}), hebbian_whitened in numpy on the CPU. CPU scale: d={cpu_d}, "
          f"F in {list(cpu_facts)} (the same F/d²), searched on {gpu} and on the CPU (FACTMLP_DEVICE=cpu); a "
          "cell's ρ is computed once per process, in its first run", flush=True)
    found, firsts = {}, {}
    for num_facts, small in zip(facts, cpu_facts):
        found |= search_cells(capacity_cells(sizes, d, (num_facts,)), budget, {gpu: None}, firsts)
        found |= search_cells(capacity_cells(sizes, cpu_d, (small,)), budget, {gpu: None, "cpu": "cpu"}, firsts)
    rows = []
    for cell in capacity_cells(sizes, d, facts) + capacity_cells(sizes, cpu_d, cpu_facts):
        key = (cell["method"], cell["d"], cell["num_facts"])
        row = [*key]
        for out in (found.get((gpu, *key)), found.get(("cpu", *key))):
            row += [None, None, None] if out is None else [shown(out, sizes.search_high), out["params"], out["seconds"]]
        rows.append(row)
    table(["method", "d", "F", f"{gpu} min width", "params", "seconds", "cpu min width", "params", "seconds"], rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: the same code paths, seconds")
    parser.add_argument("--budget", type=float, default=None, help="seconds for the whole check (450; smoke 120)")
    args = parser.parse_args()
    sizes = SMOKE if args.smoke else FULL
    budget = Budget(args.budget if args.budget is not None else (120 if args.smoke else 450))
    if args.smoke:
        os.environ["FACTMLP_DEVICE"] = "cpu"
        torch.set_num_threads(1)  # tiny matmuls: a second thread only waits for a busy core
        print("SMOKE: tiny sizes on the CPU; the RESULT names are the full check's, the numbers are not")
    device = resolve_device("auto")
    describe(device)
    reset_peak(device)
    nan2 = (math.nan, math.nan)
    ceiling = attempt("[1] matmul ceiling", matmul_ceiling, device, sizes.matmul, default=math.nan)
    rates = attempt("[2] trainer", trainer_throughput, device, sizes, budget, ceiling, default={})
    build_seconds, rho_seconds = attempt("[3] build and ρ", build_and_rho, device, sizes, budget, default=nan2)
    probe = attempt("[4] GD probes", gd_probes, device, sizes, budget, default={})
    attempt("[5] capacity slice", capacity_slice, device, sizes, budget)
    whole = f"{max(peak_gib(device), *PEAKS[1:]):.2f} GiB" if device.type == "cuda" else "not tracked on the CPU"
    print(f"\npeak GPU memory of the whole check: {whole}; {budget.left():.0f} s of the budget left")
    k, d, num_facts = sizes.speedup
    results = {
        "gpu_matmul_tflops_f32": ceiling / 1e12,
        "gpu_batched_speedup_k64_d128_f4096": rates.get((d, num_facts, k), math.nan) / rates.get((d, num_facts, 1),
                                                                                                 math.nan),
        "gpu_construct_seconds_f16384_d128": build_seconds,
        "gpu_rho_seconds_f16384_d128": rho_seconds,
        **{f"gpu_gd_probe_seconds_{name}_d128": probe.get(f, math.nan)
           for f, name in zip(sizes.probe[1], ("f4096", "f16384"))},
    }
    if FAILURES:
        print(f"FAILED: {', '.join(FAILURES)} (tracebacks above)")
    for name, value in results.items():
        print(f"RESULT {name} {value:.4g}")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
